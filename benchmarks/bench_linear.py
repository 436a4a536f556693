"""Dense CPU linear layer: llama4_native.ops.linear against this machine's limits and against
torch (oneDNN / MKL through torch.nn.functional.linear and torch.matmul), same inputs, same thread
count, in one run, at 1 and 2 threads (or --threads).

Decode (M <= 8 rows) is bound by weight bandwidth: GB/s of weights read, against the AVX-512 read
probe of a 1 GiB buffer (benchmarks/roofline.py), timed in the same rounds (interleaved, so load
from other processes hits both alike). Each call reads a different copy of the weights, the copies
together 512 MB (16x the L3), so every call streams from DRAM as a decode step does. "same" is
the probe run over those same weight copies, call by call: the kernel's speed against a plain
read with the same call sizes (one OpenMP region per call), which on a busy machine costs more
than the 1 GiB probe's single region.
Prefill (M 64..2048) is compute bound: GFLOP/s against the vdpbf16ps peak of the cores in use
(bf16), measured by a register-only probe interleaved with each shape's rounds, and the speed ratio
to torch.matmul (oneDNN's avx512_core_bf16 GEMM for bf16). fp32 prefill runs OpenBLAS sgemm.
With --cpu-time the prefill rates are per CPU-second of all threads (the peak probe's too), which
a shared machine's load does not dilute: per-core efficiency rather than wall speed.

    python benchmarks/bench_linear.py [--threads 1 2] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roofline  # noqa: E402

import llama4_native as l4  # noqa: E402
from llama4_native import _C, ops  # noqa: E402

DECODE = [  # (label, M, N, K): the bench_text model (hidden 1024) and Scout's widths
    ("qkv 1024", 1, 1536, 1024),
    ("expert gate_up 1024", 1, 4096, 1024),
    ("expert down 1024", 1, 1024, 2048),
    ("lm_head 1024", 1, 202048, 1024),
    ("Scout expert down", 1, 5120, 8192),
    ("batch 2 gate_up", 2, 4096, 1024),
    ("batch 4 gate_up", 4, 4096, 1024),
    ("batch 8 gate_up", 8, 4096, 1024),
]
PREFILL = [
    ("qkv 1024", 64, 1536, 1024),
    ("expert gate_up 1024", 128, 4096, 1024),
    ("expert down 1024", 256, 1024, 2048),
    ("o_proj 1024", 512, 1024, 1024),
    ("qkv 1024", 2048, 1536, 1024),
    ("Scout expert gate_up", 512, 16384, 5120),
    ("Scout expert down", 1024, 5120, 8192),
]
QUICK_PREFILL = PREFILL[:5]
ROTATE_BYTES = 512 << 20


def bench_decode(dtype, shapes, rounds):
    probe = roofline.read_probe_fn()
    for label, M, N, K in shapes:
        g = torch.Generator().manual_seed(0)
        esize = torch.empty((), dtype=dtype).element_size()
        copies = max(1, ROTATE_BYTES // (N * K * esize))
        ws = [torch.randn(N, K, generator=g).to(dtype) for _ in range(copies)]
        x = torch.randn(M, K, generator=g).to(dtype)

        def ours():
            for w in ws:
                ops.linear(x, w)

        def ref():
            for w in ws:
                torch.nn.functional.linear(x, w)

        def probe_same():
            for w in ws:
                _C.cpu_read_probe(w)

        t_ours, t_ref, t_probe, t_same = roofline.median_s([ours, ref, probe, probe_same], rounds)
        t_ours, t_ref, t_same = t_ours / copies, t_ref / copies, t_same / copies
        bw = roofline.READ_BYTES / t_probe / 1e9
        gb = N * K * esize / 1e9
        print(f"  {label:22s} {M:5d} {N:7d} {K:5d}  {gb / t_ours:8.1f} {100 * gb / t_ours / bw:6.0f}% "
              f"{gb / t_ref:8.1f} {t_ref / t_ours:7.2f}x   GB/s (probe {bw:.1f}; same {gb / t_same:.1f}, "
              f"ours {100 * t_same / t_ours:.0f}% of it; load {os.getloadavg()[0]:.1f})")
        del ws


def bench_prefill(dtype, shapes, rounds, clock):
    """Per shape: ours, torch.matmul and the vdpbf16ps peak probe (sized to about the same flops)
    interleaved in every round, so the three medians see the same load from other processes and
    "roof" is the fraction of the peak measured beside it."""
    per_iter = _C.cpu_bf16_peak_probe(1)  # flops of one probe iteration on all threads in use
    unit = "GFLOP/s" if clock is time.perf_counter else "GFLOP per CPU-second"
    for label, M, N, K in shapes:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(N, K, generator=g).to(dtype)
        x = torch.randn(M, K, generator=g).to(dtype)
        gf = 2 * M * N * K / 1e9
        iters = max(1000, int(gf * 1e9 / per_iter))
        fns = [lambda: ops.linear(x, w), lambda: torch.matmul(x, w.T)]
        if dtype == torch.bfloat16:
            fns.append(lambda: _C.cpu_bf16_peak_probe(iters))
        t_ours, t_ref, *t_peak = roofline.median_s(fns, rounds, clock=clock)
        peak = per_iter * iters / t_peak[0] / 1e9 if t_peak else float("nan")
        pct = (lambda t: f"{100 * gf / t / peak:.0f}%") if dtype == torch.bfloat16 else (lambda t: "-")
        print(f"  {label:22s} {M:5d} {N:7d} {K:5d}  {gf / t_ours:8.1f} {pct(t_ours):>6s} {gf / t_ref:8.1f} "
              f"{t_ref / t_ours:7.2f}x   {unit} (torch {pct(t_ref)} of the peak {peak:.0f} beside them; "
              f"load {os.getloadavg()[0]:.1f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="fewer shapes and rounds")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds per shape (medians)")
    ap.add_argument("--prefill-only", action="store_true", help="skip the decode shapes")
    ap.add_argument("--cpu-time", action="store_true",
                    help="prefill in GFLOP per CPU-second of the process (all threads; set "
                         "OMP_WAIT_POLICY=PASSIVE): per-core efficiency, robust to other processes' load")
    args = ap.parse_args()
    if not roofline.available():
        raise SystemExit("this benchmark's roofline probes need AVX512-BF16")
    rounds = 3 if args.quick else args.rounds
    for threads in args.threads:
        torch.set_num_threads(threads)
        l4.set_cpu_threads(threads)
        bw, peak = roofline.read_gbps(rounds), roofline.bf16_peak_gflops(rounds)
        print(f"\n{threads} thread(s): read probe {bw:.1f} GB/s, vdpbf16ps peak {peak:.0f} GFLOP/s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"  {'shape':22s} {'M':>5s} {'N':>7s} {'K':>5s}  {'ours':>8s} {'roof':>7s} {'torch':>8s} "
              f"{'ratio':>8s}")
        for dtype in (torch.bfloat16, torch.float32):
            name = str(dtype).split(".")[-1]
            if not args.prefill_only:
                print(f"  -- decode {name} (roof: % of read probe)")
                bench_decode(dtype, DECODE[:4] if args.quick else DECODE, rounds)
            print(f"  -- prefill {name} (roof: % of bf16 peak; torch: torch.matmul)")
            bench_prefill(dtype, QUICK_PREFILL if args.quick or dtype == torch.float32 else PREFILL, rounds,
                          time.process_time if args.cpu_time else time.perf_counter)


if __name__ == "__main__":
    main()
