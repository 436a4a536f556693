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
