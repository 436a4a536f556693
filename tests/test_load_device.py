"""load(device=...) is checked before anything is read: a bad name, or CUDA where this build or
machine has none, is a ValueError naming the device."""
from __future__ import annotations

import pytest

import llama4_native as l4


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:-1", "cpu:0"])
def test_bad_device_names(tiny_checkpoint, device):
    folder, _ = tiny_checkpoint("scout_text")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        l4.load(folder, device=device)


@pytest.mark.skipif(l4.cuda_available(), reason="this machine has a usable GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    with pytest.raises(ValueError, match="no CUDA backend or sees no GPU"):
        l4.load(folder, device="cuda")


@pytest.mark.parametrize("utilization, device, kv, match", [
    (0.5, "cpu", None, "sizes the KV cache on a GPU"),
    (1.5, "cuda:0", None, r"must be a number in \(0, 1\]"),
    (0.0, "cuda:0", None, r"must be a number in \(0, 1\]"),
    (True, "cuda:0", None, r"must be a number in \(0, 1\]"),
    (0.5, "cuda:0", 1 << 20, "kv_cache_bytes or gpu_memory_utilization, not both"),
])
def test_gpu_memory_utilization_rules(utilization, device, kv, match):
    from llama4_native.gpu_memory import check_utilization

    with pytest.raises(ValueError, match=match):
        check_utilization(utilization, device, kv)


def test_gpu_memory_utilization_on_cpu_fails_before_loading(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    with pytest.raises(ValueError, match="sizes the KV cache on a GPU"):
        l4.load(folder, gpu_memory_utilization=0.5)


@pytest.mark.cuda
def test_gpu_memory_utilization_fills_the_share_and_no_more(tiny_checkpoint):
    from llama4_native import _C
    from llama4_native.plan import step_workspace_bytes

    folder, _ = tiny_checkpoint("scout_text")
    _, total = _C.cuda_memory_info(0)
    share = 0.3
    model = l4.load(folder, device="cuda", dtype="bfloat16", gpu_memory_utilization=share)
    free, _ = _C.cuda_memory_info(0)
    used = total - free  # weights + KV cache (+ this process's context and other processes)
    reserve = step_workspace_bytes(model.config.text, "bfloat16", model.max_sequences)
    assert used <= share * total - reserve + (64 << 20)  # the pool rounds to whole pages
    assert used >= share * total - reserve - (256 << 20)  # and the KV cache took the rest
    assert model.generate([1, 5, 9], max_new_tokens=2, temperature=0.0).token_ids
