"""What this machine can do, measured in the same run as the benchmarks that compare against it.

  read_gbps(threads)   a read of a 1 GiB buffer (32x the 32 MB L3 here) with AVX-512 loads on the
                       engine's own OpenMP threads, each thread one contiguous slice
                       (llama4_native._C.cpu_read_probe): the bandwidth a weight-streaming decode
                       step can reach at most.
  bf16_peak_gflops()   a register-only loop of independent vdpbf16ps on every thread
                       (_C.cpu_bf16_peak_probe): the bf16 dot-product peak of the cores in use.
  median_s(fns)        medians of wall (or CPU) times, the functions interleaved within each round
                       so load from other processes on a shared machine hits them alike.
"""
from __future__ import annotations

import statistics
import time

import torch

from llama4_native import _C

READ_BYTES = 1 << 30


def median_s(fns, rounds: int = 7, warmup: int = 1, clock=time.perf_counter) -> list[float]:
    """Median seconds of each function, interleaved round by round: wall seconds, or with
    clock=time.process_time the CPU seconds of all this process's threads (on a machine shared
    with busy processes, time spent descheduled does not count; spinning idle threads do, so use
    OMP_WAIT_POLICY=PASSIVE)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = clock()
            fn()
            times[i].append(clock() - t0)
    return [statistics.median(t) for t in times]


_buffer = None


def read_probe_fn():
    """A callable reading the 1 GiB buffer once (allocated and touched on first use)."""
    global _buffer
    if _buffer is None:
        _buffer = torch.ones(READ_BYTES, dtype=torch.uint8)
    buf = _buffer
    return lambda: _C.cpu_read_probe(buf)


def read_gbps(rounds: int = 7) -> float:
    """Median read bandwidth of the probe, GB/s, with the engine's current thread count."""
    (t,) = median_s([read_probe_fn()], rounds)
    return READ_BYTES / t / 1e9


def bf16_peak_gflops(rounds: int = 5, iterations: int = 2_000_000) -> float:
    """Median vdpbf16ps peak, GFLOP/s, with the engine's current thread count."""
    flops = _C.cpu_bf16_peak_probe(1) * iterations  # flops per call scale with iterations
    (t,) = median_s([lambda: _C.cpu_bf16_peak_probe(iterations)], rounds)
    return flops / t / 1e9


def available() -> bool:
    return bool(_C.cpu_has_avx512_bf16())
