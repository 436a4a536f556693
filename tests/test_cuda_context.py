"""The execution context from Python: streams through the DLPack handshake, and the stream-ordered
caching allocator behind the ops' CUDA temporaries.

An op called from Python runs on torch's current stream. Its inputs are requested with
__dlpack__(stream=that stream), so torch orders its pending writes first; its outputs, when torch
imports them, make torch's consuming stream wait for the op's stream. These tests build inputs
with a long chain of torch kernels on one stream and read them on another: without the handshake
the op would read half-written memory. Marked `cuda` (skipped without a GPU).
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
from llama4_native import _C, ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (l4.cuda_available() and torch.cuda.is_available()),
        reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch",
    ),
]


def _slow_fill(n: int, value: float, stream: torch.cuda.Stream) -> torch.Tensor:
    """[n, 4096] float32 equal to `value`, written on `stream` at the end of ~100 ms of work."""
    with torch.cuda.stream(stream):
        a = torch.randn(2048, 2048, device="cuda")
        for _ in range(40):  # a queue the GPU needs a while to drain
            a = (a @ a).clamp_(-1, 1)
        x = torch.empty(n, 4096, device="cuda")
        x.copy_((a[:1, :1] * 0 + value).expand(n, 4096))
    return x


def test_inputs_from_another_stream_are_waited_for():
    producer = torch.cuda.Stream()
    x = _slow_fill(64, 3.0, producer)
    consumer = torch.cuda.Stream()
    with torch.cuda.stream(consumer):  # the op runs here; x is still being written on `producer`
        y = ops.rms_norm(x, None, eps=0.0)
    torch.cuda.current_stream().wait_stream(consumer)
    torch.cuda.synchronize()
    assert torch.equal(y.cpu(), torch.ones(64, 4096)), "the op read x before its producer finished"


def test_outputs_are_waited_for_by_the_consumer_stream():
    side = torch.cuda.Stream()
    x = _slow_fill(64, -2.0, side)
    with torch.cuda.stream(side):
        raw = _C.rms_norm(x, None, 0.0)  # queued on `side` behind the slow fill
    # Imported on the default stream: it must wait for `side` before reading the output.
    y = torch.from_dlpack(raw)
    z = y * 2
    assert torch.equal(z.cpu(), torch.full((64, 4096), -2.0))


def test_op_on_torch_side_stream_matches_cpu():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(19, 5120, generator=g).bfloat16()
    w = torch.randn(5120, generator=g).bfloat16()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        got = ops.rms_norm(x.cuda(), w.cuda(), eps=1e-5)
        got_cpu = got.cpu()  # .cpu() on `s` waits for the op through the handshake
    want = ops.rms_norm(x, w, eps=1e-5)
    torch.testing.assert_close(got_cpu.float(), want.float(), rtol=2.0**-6, atol=1e-6)


def test_temporaries_reuse_pool_memory():
    """After a warm-up call, repeating the same op takes nothing new from the driver: its outputs
    and temporaries come back out of the pool (no cudaMalloc per call)."""
    x = torch.randn(333, 2047, device="cuda")[:, ::2]  # strided: the op makes a contiguous temporary
    for _ in range(2):
        ops.rms_norm(x, None)
    torch.cuda.synchronize()
    before = _C.cuda_memory_stats(0)
    for _ in range(20):
        ops.rms_norm(x, None)
    torch.cuda.synchronize()
    after = _C.cuda_memory_stats(0)
    assert after["reserved_bytes"] == before["reserved_bytes"]
    assert after["used_bytes"] == before["used_bytes"], "temporaries were not returned to the pool"
    assert before["reserved_bytes"] > 0
