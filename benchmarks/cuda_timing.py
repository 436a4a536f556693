"""The GPU benchmarks' one timer: median milliseconds per call of back-to-back calls, timed with
CUDA events in batches of about batch_ms each (so launch gaps and clock ramps average out)."""
from __future__ import annotations

import statistics

import torch


def cuda_ms(fn, batch_ms: float = 20.0, reps: int = 3, max_calls: int = 1000) -> float:
    fn()  # warm-up: first-call setup (CUTLASS arguments, allocator growth) stays out of the timing
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    n = max(1, min(max_calls, int(batch_ms / max(start.elapsed_time(end), 1e-3))))
    samples = []
    for _ in range(reps):
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / n)
    return statistics.median(samples)
