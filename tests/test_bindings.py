# The pybind11 module as a Python user meets it: engine outputs cross to torch and numpy through
# DLPack without a copy and stay valid after the engine object is gone; inputs come from torch
# tensors and numpy arrays (also read-only, memory-mapped, non-contiguous, requiring grad);
# build_info() / cuda_available() describe this build; and repeated calls release their memory.
from __future__ import annotations

import gc
import os
import sys

import numpy as np
import pytest
import torch

import llama4_native
from llama4_native import _C, ops


def address(a) -> int:
    return a.data_ptr() if isinstance(a, torch.Tensor) else a.__array_interface__["data"][0]


# ---- outputs: zero-copy, shared, and owned by whoever holds them --------------------------------

def test_output_is_shared_by_torch_and_numpy_without_copy():
    out = _C.rms_norm(torch.randn(4, 8), None, 1e-5)  # a DLPackTensor owned by the engine
    assert isinstance(out, _C.DLPackTensor) and out.shape == (4, 8)
    assert out.__dlpack_device__() == (1, 0)  # kDLCPU, device 0
    t, a, t2 = torch.from_dlpack(out), np.from_dlpack(out), torch.from_dlpack(out)
    assert address(t) == address(a) == address(t2)  # one buffer, three views
    t[0, 0] = 123.0
    assert a[0, 0] == 123.0 and t2[0, 0] == 123.0


def test_output_outlives_the_engine_object():
    out = _C.silu_gate(torch.ones(3, 5), torch.full((3, 5), 2.0))
    t, a = torch.from_dlpack(out), np.from_dlpack(out)
    expected = 2.0 / (1.0 + np.exp(-1.0))
    del out
    gc.collect()
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(a, expected, rtol=1e-6)
    del t
    gc.collect()
    np.testing.assert_allclose(a, expected, rtol=1e-6)  # the numpy view alone keeps it alive


def test_ops_answer_in_the_framework_they_were_asked_in():
    x = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    got_np = ops.rms_norm(x)
    got_torch = ops.rms_norm(torch.from_numpy(x))
    assert isinstance(got_np, np.ndarray) and isinstance(got_torch, torch.Tensor)
    np.testing.assert_array_equal(got_np, got_torch.numpy())  # same kernel, same bits


# ---- inputs: any __dlpack__ producer, any layout, never copied by the caller -------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_numpy_and_torch_inputs_agree(dtype):
    rng = np.random.default_rng(1)
    gate = rng.standard_normal((7, 33)).astype(dtype)
    up = rng.standard_normal((7, 33)).astype(dtype)
    np.testing.assert_array_equal(ops.silu_gate(gate, up),
                                  ops.silu_gate(torch.from_numpy(gate), torch.from_numpy(up)).numpy())


def test_non_contiguous_numpy_views():
    base = np.random.default_rng(2).standard_normal((16, 40)).astype(np.float32)
    view = base[::2, 3:35:2]  # strided in both dimensions
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(ops.rms_norm(view), ops.rms_norm(np.ascontiguousarray(view)))


def test_read_only_and_memory_mapped_inputs(tmp_path):
    """Checkpoints arrive memory-mapped read-only; numpy only exports those as DLPack >= 1.0
    capsules carrying the read-only flag, which the bridge must ask for."""
    x = np.random.default_rng(3).standard_normal((5, 12)).astype(np.float32)
    frozen = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(5, 12)
    assert not frozen.flags.writeable
    path = tmp_path / "x.bin"
    x.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=(5, 12))
    expected = ops.rms_norm(x)
    np.testing.assert_array_equal(ops.rms_norm(frozen), expected)
    np.testing.assert_array_equal(ops.rms_norm(mapped), expected)
    del mapped


def test_parameters_that_require_grad_are_read():
    """HF modules hold nn.Parameters; torch refuses to export tensors that require grad, so the
    bridge reads a detached alias (same memory) instead."""
    weight = torch.nn.Parameter(torch.full((8,), 2.0))
    x = torch.randn(3, 8)
    torch.testing.assert_close(ops.rms_norm(x, weight), ops.rms_norm(x, weight.detach()), rtol=0, atol=0)


# ---- build information ----------------------------------------------------------------------------

def test_build_info():
    info = llama4_native.build_info()
    expected_keys = {"version", "backends", "cuda_runtime_version", "cuda_archs", "cutlass_version",
                     "blas", "compiler", "cpu_threads", "cuda_available"}
    assert expected_keys <= set(info)
    assert info["version"] == llama4_native.__version__
    assert "cpu" in info["backends"]
    assert info["blas"] and info["compiler"] and info["cpu_threads"] >= 1
    assert isinstance(info["cuda_available"], bool)


def test_cuda_available_without_the_cuda_backend():
    """Never raises; False whenever the CUDA backend was not compiled (this CPU-only build)."""
    available = llama4_native.cuda_available()
    assert isinstance(available, bool)
    if "cuda" not in llama4_native.build_info()["backends"]:
        assert available is False and _C.cuda_device_count() == 0
        assert llama4_native.build_info()["cuda_runtime_version"] == ""


def test_set_cpu_threads():
    before = llama4_native.build_info()["cpu_threads"]
    try:
        llama4_native.set_cpu_threads(1)
        assert llama4_native.build_info()["cpu_threads"] == 1
    finally:
        llama4_native.set_cpu_threads(before)
    with pytest.raises(ValueError, match="n must be >= 1"):
        llama4_native.set_cpu_threads(0)


# ---- memory is released ---------------------------------------------------------------------------

def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# 128 KiB in and out per call, so leaking either over 1000 calls is 125 MiB; small enough to stay
# below the kernels' OpenMP threshold, which keeps the loop cheap on a busy machine.
X = torch.randn(32, 1024)
LOOPS = {
    "torch_consumer": lambda: ops.rms_norm(X),
    "numpy_consumer": lambda: ops.rms_norm(X.numpy()),
    "never_consumed": lambda: _C.rms_norm(X, None, 1e-5),           # our capsule never made
    "capsule_dropped": lambda: _C.rms_norm(X, None, 1e-5).__dlpack__(),  # made, not consumed
    "two_outputs": lambda: ops.quantize_fp8_rowwise(X),
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("name", list(LOOPS))
def test_repeated_calls_release_memory(name):
    call = LOOPS[name]
    for _ in range(20):  # warm up allocator pools and caches
        call()
    gc.collect()
    before = rss_bytes()
    for _ in range(1000):
        call()
    gc.collect()
    grown = rss_bytes() - before
    assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB over 1000 calls"
