"""Shared fixtures: tiny HF checkpoints (tests/tiny_checkpoints.py), built once per session."""
from __future__ import annotations

import pytest

import tiny_checkpoints as tc


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
