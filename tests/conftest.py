# Shared pytest setup: tiny HF checkpoints built once per session (tests/tiny_checkpoints.py),
# and the `cuda` marker (tests that need an NVIDIA GPU and the CUDA backend) is
# registered here as well as in pyproject.toml, so it works whichever config pytest picks up, and
# every test carrying it is skipped when llama4_native.cuda_available() is False: on CPU-only
# builds, on machines without a GPU, and when the module itself failed to import.
from __future__ import annotations

import pytest

import tiny_checkpoints as tc


def _cuda_available() -> tuple[bool, str]:
    try:
        import llama4_native
    except Exception as e:  # a broken build must not turn CUDA tests into errors: other tests say why
        return False, f"llama4_native does not import ({type(e).__name__}: {e})"
    try:
        if llama4_native.cuda_available():
            return True, ""
    except Exception as e:  # cuda_available() promises never to raise; report it if it does
        return False, f"llama4_native.cuda_available() raised {type(e).__name__}: {e}"
    return False, "needs the CUDA backend and a GPU (llama4_native.cuda_available() is False)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs an NVIDIA GPU (skipped without one)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda_items = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not cuda_items:
        return  # don't import the module just to answer a question nobody asked
    available, reason = _cuda_available()
    if available:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in cuda_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """tiny_checkpoint(name) -> (folder, transformers model): save_pretrained once per session."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            folder = tmp_path_factory.mktemp(f"tiny_{name}")
            cache[name] = (folder, tc.save_tiny(name, folder))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def real_vocab_checkpoint(tmp_path_factory):
    """A `llama4-native make-tiny` checkpoint: real layout, real tokenizer, random weights."""
    from llama4_native.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("make_tiny"), dtype="bfloat16", processor_files=False)
