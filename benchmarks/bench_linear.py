"""Dense CPU linear layer: llama4_native.ops.linear vs torch.nn.functional.linear (oneDNN/MKL),
same inputs, same thread count, side by side. Decode shapes are weight-bandwidth bound (GB/s of
weights read); prefill shapes are compute bound (GFLOP/s).

    python benchmarks/bench_linear.py [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

import llama4_native as l4
from llama4_native import ops

SHAPES = [  # (label, M, N, K)
    ("decode qkv", 1, 1536, 1024),
    ("decode expert up", 1, 4096, 1024),
    ("decode lm_head", 1, 202048, 1024),
    ("decode batch 8", 8, 4096, 1024),
    ("prefill 128 expert", 128, 4096, 1024),
    ("prefill 512 o_proj", 512, 1024, 1024),
]


def _time(fn, min_s=0.3):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_s:
            return dt / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    l4.set_cpu_threads(args.threads)
    print(f"{'shape':22s}{'dtype':>10s}{'ours':>12s}{'torch':>12s}{'ratio':>8s}   unit")
    for dtype in (torch.bfloat16, torch.float32):
        for label, M, N, K in SHAPES:
            x = torch.randn(M, K).to(dtype)
            w = torch.randn(N, K).to(dtype)
            t_ours = _time(lambda: ops.linear(x, w))
            t_ref = _time(lambda: torch.nn.functional.linear(x, w))
            if M <= 8:
                unit, f = "GB/s", w.numel() * w.element_size() / 1e9
            else:
                unit, f = "GFLOP/s", 2 * M * N * K / 1e9
            print(f"{label:22s}{str(dtype).split('.')[-1]:>10s}{f / t_ours:12.1f}{f / t_ref:12.1f}"
                  f"{t_ref / t_ours:7.2f}x   {unit}")


if __name__ == "__main__":
    main()
