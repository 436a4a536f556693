"""Paged attention (CPU): decode and prefill throughput at Llama 4 shapes (H=40, KV=8, d=128).

Decode is memory bound: it prints the K/V bytes read per second (the roofline number) and the
ratio to PyTorch in the same run: scaled_dot_product_attention(enable_gqa=True) on the same K/V
already laid out dense per sequence ([S, KV, ctx, d], built outside the timing; a paged layout
would add a gather). Prefill prints GFLOP/s of QK^T + PV (causal half).

    PYTHONPATH=. python benchmarks/bench_paged_attention.py [--threads N] [--ctx 2048] [--seqs 8]

Both libraries use OpenMP; if they run different OpenMP runtimes, one's spinning workers can slow
the other right after it ran, so each case times ours first, then torch.
"""
from __future__ import annotations

import argparse
import time

import torch

import llama4_native as l4
from llama4_native import attention as attn


def best_of(fn, reps):
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def paged(seqs, ctx, n_q, H, KV, d, P, dtype, gen):
    """seqs sequences of length ctx in shuffled pages; the last n_q positions of each query."""
    pages = (ctx + P - 1) // P
    k = torch.randn(seqs, pages * P, KV, d, generator=gen).to(dtype)
    v = torch.randn(seqs, pages * P, KV, d, generator=gen).to(dtype)
    perm = torch.randperm(seqs * pages, generator=gen)
    k_cache = torch.empty(seqs * pages, P, KV, d, dtype=dtype)
    v_cache = torch.empty_like(k_cache)
    k_cache[perm] = k.reshape(seqs * pages, P, KV, d)
    v_cache[perm] = v.reshape(seqs * pages, P, KV, d)
    table = perm.to(torch.int32).view(seqs, pages)
    qseq = torch.arange(seqs, dtype=torch.int32).repeat_interleave(n_q)
    qpos = torch.arange(ctx - n_q, ctx, dtype=torch.int32).repeat(seqs)
    q = torch.randn(seqs * n_q, H, d, generator=gen).to(dtype)
    dense_k = k[:, :ctx].permute(0, 2, 1, 3).contiguous()  # [S, KV, ctx, d]
    dense_v = v[:, :ctx].permute(0, 2, 1, 3).contiguous()
    return (q, k_cache, v_cache, table, qseq, qpos), (dense_k, dense_v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if a.threads:
        l4.set_cpu_threads(a.threads)
        torch.set_num_threads(a.threads)
    H, KV, d, P = 40, 8, 128, 16
    gen = torch.Generator().manual_seed(0)
    print(f"threads: ours {l4.build_info()['cpu_threads']}, torch {torch.get_num_threads()}")
    for dtype in (torch.bfloat16, torch.float32):
        esz = torch.finfo(dtype).bits // 8
        for seqs, ctx in ((a.seqs, a.ctx), (1, 4 * a.ctx)):  # a batch; one long sequence (kv splits)
            args, (dk, dv) = paged(seqs, ctx, 1, H, KV, d, P, dtype, gen)
            q = args[0]
            ours = best_of(lambda: attn.paged_attention(*args), a.reps)
            qd = q.view(seqs, 1, H, d).transpose(1, 2)
            base = best_of(lambda: torch.nn.functional.scaled_dot_product_attention(qd, dk, dv, enable_gqa=True),
                           a.reps)
            gbs = 2 * seqs * ctx * KV * d * esz / ours / 1e9
            print(f"decode  {str(dtype)[6:]:9s} seqs={seqs:2d} ctx={ctx:5d}: {ours * 1e3:7.2f} ms, "
                  f"{gbs:5.2f} GB/s of K/V | torch sdpa (dense) {base * 1e3:7.2f} ms -> x{base / ours:.1f}")
        n = a.prefill
        args, (dk, dv) = paged(1, n, n, H, KV, d, P, dtype, gen)
        q = args[0]
        ours = best_of(lambda: attn.paged_attention(*args, chunk_size=8192), a.reps)
        qd = q.view(1, n, H, d).transpose(1, 2)
        base = best_of(lambda: torch.nn.functional.scaled_dot_product_attention(
            qd, dk, dv, is_causal=True, enable_gqa=True), a.reps)
        flops = 4 * H * d * n * (n + 1) / 2
        print(f"prefill {str(dtype)[6:]:9s} n={n:5d}:             {ours * 1e3:7.2f} ms, "
              f"{flops / ours / 1e9:5.1f} GFLOP/s  | torch sdpa (dense) {base * 1e3:7.2f} ms -> x{base / ours:.1f}")


if __name__ == "__main__":
    main()
