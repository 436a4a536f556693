"""The text model's CUDA kernels against limits measured in the same run (GPU only).

Baselines, measured first:
  copy     torch `copy_` between two 1 GiB device buffers: bytes read + written per second, the
           practical HBM limit of a memory-bound kernel;
  matmul   torch.matmul (cuBLAS) on the same shapes and dtype.
Cases:
  linear, decode shapes (M = 1, 16) at Llama 4 Scout sizes: GB/s of weights streamed, vs copy and
           vs torch.matmul (time ratio, > 1 = we are faster);
  linear, prefill shapes (M = 2048): TFLOP/s, vs torch.matmul;
  paged decode attention (40 / 8 heads, head_dim 128, pages of 64) at batch 1 and 32 over 4k-32k
           keys: GB/s of K/V read, vs copy and vs torch scaled_dot_product_attention on contiguous
           K/V of the same sizes.
Every figure is a median of CUDA-event timed batches of several milliseconds; problems are sized
well beyond the 50-60 MB L2 where the point is bandwidth.

    python benchmarks/bench_cuda_text.py [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

import llama4_native as l4
from llama4_native import attention as attn
from llama4_native import ops


def time_ms(fn, batch_ms: float = 20.0, reps: int = 5) -> float:
    """Median ms per call of fn over `reps` batches of about batch_ms each."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    one = max(start.elapsed_time(end), 1e-3)
    n = max(1, min(1000, int(batch_ms / one)))
    samples = []
    for _ in range(reps):
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / n)
    return statistics.median(samples)


def copy_gbps() -> float:
    n = 1 << 30
    a, b = torch.empty(n, dtype=torch.uint8, device="cuda"), torch.empty(n, dtype=torch.uint8, device="cuda")
    ms = time_ms(lambda: b.copy_(a))
    return 2 * n / ms / 1e6


def bench_linear(copy: float, quick: bool) -> None:
    print("\n== linear, decode (bf16 weights streamed once; GB/s of weights)")
    print(f"{'shape':>28} {'ours ms':>9} {'GB/s':>8} {'vs copy':>8} {'torch ms':>9} {'torch/ours':>10}")
    shapes = [("qkv", 7168, 5120), ("o", 5120, 5120), ("shared gate_up", 16384, 5120),
              ("lm_head", 202048, 5120)]
    if quick:
        shapes = shapes[1:2] + shapes[3:]
    for M in (1, 16):
        for name, N, K in shapes:
            w = torch.randn(N, K, device="cuda").bfloat16()
            x = torch.randn(M, K, device="cuda").bfloat16()
            out_dtype = "float32" if name == "lm_head" else "bfloat16"
            ours = time_ms(lambda: ops.linear(x, w, out_dtype))
            ref = time_ms(lambda: torch.matmul(x, w.T).float() if out_dtype == "float32" else torch.matmul(x, w.T))
            gbps = w.numel() * 2 / ours / 1e6
            print(f"{name + f' M={M} {N}x{K}':>28} {ours:9.4f} {gbps:8.0f} {gbps / copy:8.1%} "
                  f"{ref:9.4f} {ref / ours:10.2f}")
            del w, x
    print("\n== linear, prefill (M = 2048, bf16; TFLOP/s)")
    print(f"{'shape':>28} {'ours ms':>9} {'TFLOP/s':>8} {'torch TF':>9} {'ours/torch':>10}")
    for name, N, K in shapes[:3] if not quick else shapes[:1]:
        M = 2048
        w = torch.randn(N, K, device="cuda").bfloat16()
        x = torch.randn(M, K, device="cuda").bfloat16()
        ours = time_ms(lambda: ops.linear(x, w))
        ref = time_ms(lambda: torch.matmul(x, w.T))
        flop = 2 * M * N * K
        print(f"{name + f' {N}x{K}':>28} {ours:9.3f} {flop / ours / 1e9:8.1f} {flop / ref / 1e9:9.1f} "
              f"{ref / ours:10.2f}")


def bench_decode_attention(copy: float, quick: bool) -> None:
    print("\n== paged decode attention (H 40, KV 8, d 128, page 64, bf16; GB/s of K/V read)")
    print(f"{'batch x context':>18} {'ours ms':>9} {'GB/s':>8} {'vs copy':>8} {'sdpa ms':>9} {'sdpa/ours':>9}")
    H, KV, d, P = 40, 8, 128, 64
    cases = [(1, 4096), (1, 32768), (32, 4096), (32, 16384)]
    if quick:
        cases = [(1, 32768), (32, 4096)]
    for B, L in cases:
        pages_per_seq = L // P
        num_pages = B * pages_per_seq
        k_cache = torch.randn(num_pages, P, KV, d, device="cuda").bfloat16()
        v_cache = torch.randn(num_pages, P, KV, d, device="cuda").bfloat16()
        perm = torch.randperm(num_pages, device="cuda").to(torch.int32)
        table = perm.view(B, pages_per_seq)
        q = torch.randn(B, H, d, device="cuda").bfloat16()
        qseq = torch.arange(B, dtype=torch.int32, device="cuda")
        qpos = torch.full((B,), L - 1, dtype=torch.int32, device="cuda")
        ours = time_ms(lambda: attn.paged_attention(q, k_cache, v_cache, table, qseq, qpos))
        kv_bytes = 2 * B * L * KV * d * 2
        gbps = kv_bytes / ours / 1e6
        # torch on contiguous K/V of the same sizes (GQA through enable_gqa).
        kq = torch.randn(B, KV, L, d, device="cuda").bfloat16()
        vq = torch.randn(B, KV, L, d, device="cuda").bfloat16()
        q4 = q.view(B, H, 1, d)
        sdpa = time_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q4, kq, vq, enable_gqa=True))
        print(f"{f'{B} x {L}':>18} {ours:9.4f} {gbps:8.0f} {gbps / copy:8.1%} {sdpa:9.4f} {sdpa / ours:9.2f}")
        del k_cache, v_cache, kq, vq


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes (the GPU check)")
    args = ap.parse_args()
    if not (l4.cuda_available() and torch.cuda.is_available()):
        print("bench_cuda_text: needs the CUDA backend and a GPU; nothing to measure here")
        return 0
    print(f"device: {torch.cuda.get_device_name()}")
    copy = copy_gbps()
    print(f"copy: {copy:.0f} GB/s (read + write)")
    bench_linear(copy, args.quick)
    bench_decode_attention(copy, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
