"""The text model's CUDA kernels against limits measured in the same run (GPU only).

Baselines, measured first:
  copy     torch `copy_` between two 1 GiB device buffers: bytes read + written per second, the
           practical HBM limit of a memory-bound kernel;
  matmul   torch.matmul (cuBLAS) on the same shapes and dtype.
Cases:
  linear, decode shapes (M = 1, 16) at Llama 4 Scout sizes: GB/s of weights streamed, vs copy and
           vs torch.matmul (time ratio, > 1 = we are faster);
  linear, batched-decode and prefill shapes (M = 32 .. 2048; the CUTLASS sm_90a GEMMs on an H100):
           TFLOP/s, vs torch.matmul (target >= 0.95 at prefill);
  paged decode attention (40 / 8 heads, head_dim 128, pages of 64) at batch 1 and 32 over 4k-32k
           keys: GB/s of K/V read, vs copy and vs torch scaled_dot_product_attention on contiguous
           K/V of the same sizes;
  paged prefill attention (40 / 8 heads, head_dim 128, pages of 64, one sequence of 1k-16k tokens,
           causal): TFLOP/s with the causal half counted (4 H d L (L + 1) / 2), vs torch
           scaled_dot_product_attention's flash backend on contiguous K/V in the same run;
  end-to-end decode of a Scout-shaped model cut to 4 layers (hidden 5120, 40/8 heads, 16 experts
           top-1, expert width 8192, vocab 202048; random bf16 weights on the GPU) at batch 1 and
           32: tok/s with CUDA graphs (the default) and with enforce_eager=True side by side, and
           each one's fraction of the weight-bytes roofline (bytes a step must read / copy
           bandwidth). The step includes the host's work (plan upload, logits copy).
Every figure is a median of CUDA-event timed batches of several milliseconds; problems are sized
well beyond the 50-60 MB L2 where the point is bandwidth.

    python benchmarks/bench_cuda_text.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

import llama4_native as l4
from llama4_native import attention as attn
from llama4_native import ops
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_timing import cuda_ms  # noqa: E402


def copy_gbps() -> float:
    n = 1 << 30
    a, b = torch.empty(n, dtype=torch.uint8, device="cuda"), torch.empty(n, dtype=torch.uint8, device="cuda")
    ms = cuda_ms(lambda: b.copy_(a))
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
            ours = cuda_ms(lambda: ops.linear(x, w, out_dtype))
            ref = cuda_ms(lambda: torch.matmul(x, w.T).float() if out_dtype == "float32" else torch.matmul(x, w.T))
            gbps = w.numel() * 2 / ours / 1e6
            print(f"{name + f' M={M} {N}x{K}':>28} {ours:9.4f} {gbps:8.0f} {gbps / copy:8.1%} "
                  f"{ref:9.4f} {ref / ours:10.2f}")
            del w, x
    print("\n== linear, prefill and batched decode (bf16 in and out; TFLOP/s; kernel: linear_kernel's choice)")
    print(f"{'shape':>28} {'kernel':>16} {'ours ms':>9} {'TFLOP/s':>8} {'torch TF':>9} {'ours/torch':>10}")
    major, minor = torch.cuda.get_device_capability()
    ratios = []
    for M in ((64, 2048) if quick else (32, 64, 128, 512, 2048)):
        for name, N, K in shapes[:3] if not quick else shapes[:1]:
            w = torch.randn(N, K, device="cuda").bfloat16()
            x = torch.randn(M, K, device="cuda").bfloat16()
            kernel = ops.linear_kernel(major * 10 + minor, "bfloat16", "bfloat16", M, N, K)
            ours = cuda_ms(lambda: ops.linear(x, w))
            ref = cuda_ms(lambda: torch.matmul(x, w.T))
            flop = 2 * M * N * K
            ratios.append((M, ref / ours))
            print(f"{name + f' M={M} {N}x{K}':>28} {kernel:>16} {ours:9.3f} {flop / ours / 1e9:8.1f} "
                  f"{flop / ref / 1e9:9.1f} {ref / ours:10.2f}")
            del w, x
    prefill = [r for M, r in ratios if M >= 512]
    if prefill:
        print(f"prefill (M >= 512) worst ours/torch: {min(prefill):.2f} (target >= 0.95: "
              f"{'met' if min(prefill) >= 0.95 else 'missed'})")


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
        ours = cuda_ms(lambda: attn.paged_attention(q, k_cache, v_cache, table, qseq, qpos))
        kv_bytes = 2 * B * L * KV * d * 2
        gbps = kv_bytes / ours / 1e6
        # torch on contiguous K/V of the same sizes (GQA through enable_gqa).
        kq = torch.randn(B, KV, L, d, device="cuda").bfloat16()
        vq = torch.randn(B, KV, L, d, device="cuda").bfloat16()
        q4 = q.view(B, H, 1, d)
        sdpa = cuda_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q4, kq, vq, enable_gqa=True))
        print(f"{f'{B} x {L}':>18} {ours:9.4f} {gbps:8.0f} {gbps / copy:8.1%} {sdpa:9.4f} {sdpa / ours:9.2f}")
        del k_cache, v_cache, kq, vq


def sdpa_flash(q4, k4, v4):
    """torch's flash backend, causal, GQA through enable_gqa, or K/V expanded to every query head
    when this torch's flash kernel does not take GQA."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    F = torch.nn.functional
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        try:
            F.scaled_dot_product_attention(q4, k4, v4, is_causal=True, enable_gqa=True)
            return lambda: F.scaled_dot_product_attention(q4, k4, v4, is_causal=True, enable_gqa=True), "gqa"
        except RuntimeError:
            R = q4.shape[1] // k4.shape[1]
            ke, ve = k4.repeat_interleave(R, dim=1), v4.repeat_interleave(R, dim=1)
            return lambda: F.scaled_dot_product_attention(q4, ke, ve, is_causal=True), "expanded K/V"


def bench_prefill_attention(quick: bool) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from llama4_native import _C

    print("\n== paged prefill attention (H 40, KV 8, d 128, page 64, bf16, causal; TFLOP/s, causal half)")
    print(f"{'tokens':>7} {'kernel':>9} {'ours ms':>9} {'TFLOP/s':>8} {'sdpa ms':>9} {'sdpa TF':>8} "
          f"{'ours/sdpa':>9}")
    H, KV, d, P = 40, 8, 128, 64
    for L in ((4096, 16384) if quick else (1024, 2048, 4096, 8192, 16384)):
        pages = L // P
        k_cache = torch.randn(pages, P, KV, d, device="cuda").bfloat16()
        v_cache = torch.randn(pages, P, KV, d, device="cuda").bfloat16()
        table = torch.randperm(pages, device="cuda").to(torch.int32).view(1, pages)
        q = torch.randn(L, H, d, device="cuda").bfloat16()
        qseq = torch.zeros(L, dtype=torch.int32, device="cuda")
        qpos = torch.arange(L, dtype=torch.int32, device="cuda")
        kernel = _C._attention_kernel_choice(L, 1, H, KV, d, P, pages, 0, "bfloat16", "bfloat16")
        ours = cuda_ms(lambda: attn.paged_attention(q, k_cache, v_cache, table, qseq, qpos))
        flop = 4.0 * H * d * L * (L + 1) / 2
        # torch on contiguous K/V of the same values: [1, heads, L, d]
        pos = torch.arange(L, device="cuda")
        k4 = k_cache[table[0].long()[pos // P], pos % P].permute(1, 0, 2).unsqueeze(0).contiguous()
        v4 = v_cache[table[0].long()[pos // P], pos % P].permute(1, 0, 2).unsqueeze(0).contiguous()
        q4 = q.permute(1, 0, 2).unsqueeze(0).contiguous()
        fn, how = sdpa_flash(q4, k4, v4)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            ref = cuda_ms(fn)
        print(f"{L:>7} {kernel:>9} {ours:9.3f} {flop / ours / 1e9:8.1f} {ref:9.3f} {flop / ref / 1e9:8.1f} "
              f"{ref / ours:9.2f}" + ("" if how == "gqa" else f"  (sdpa: {how})"))
        if L == 16384:  # Llama 4's RoPE layers: 8192-token chunks, half the causal work
            ours_c = cuda_ms(lambda: attn.paged_attention(q, k_cache, v_cache, table, qseq, qpos, chunk_size=8192))
            flop_c = 4.0 * H * d * 2 * 8192 * 8193 / 2
            print(f"{'16384 chunked 8192':>26} {ours_c:9.3f} {flop_c / ours_c / 1e9:8.1f}")
        del k_cache, v_cache, q, k4, v4, q4


# ---- end to end: a Scout-shaped model cut to 4 layers ---------------------------------------------

SCOUT4 = dict(vocab_size=202048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16384,
              num_hidden_layers=4, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
              num_local_experts=16, num_experts_per_tok=1, moe_layers=[0, 1, 2, 3],
              no_rope_layers=[1, 1, 1, 0], attention_chunk_size=8192, rope_theta=500000.0,
              rope_type="default", use_qk_norm=True, attn_temperature_tuning=True, floor_scale=8192.0,
              attn_scale=0.1, rms_norm_eps=1e-5, max_position_embeddings=16384)


def scout4_weights(c: dict) -> dict:
    """Random bf16 weights (std 0.02) with the engine's names, on the GPU."""
    D, V, H, KV, d = c["hidden_size"], c["vocab_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    E, I = c["num_local_experts"], c["intermediate_size"]

    def rnd(*shape):
        return torch.empty(*shape, dtype=torch.bfloat16, device="cuda").normal_(0.0, 0.02)

    w = {"embed_tokens": rnd(V, D), "norm": torch.ones(D, dtype=torch.bfloat16, device="cuda"), "lm_head": rnd(V, D)}
    for i in range(c["num_hidden_layers"]):
        p = f"layers.{i}."
        w[p + "input_layernorm"] = torch.ones(D, dtype=torch.bfloat16, device="cuda")
        w[p + "post_attention_layernorm"] = torch.ones(D, dtype=torch.bfloat16, device="cuda")
        w[p + "attn.qkv"] = rnd((H + 2 * KV) * d, D)
        w[p + "attn.o"] = rnd(D, H * d)
        w[p + "moe.router"] = rnd(E, D)
        w[p + "moe.gate_up"] = rnd(E, 2 * I, D)
        w[p + "moe.down"] = rnd(E, D, I)
        w[p + "moe.shared_gate_up"] = rnd(2 * I, D)
        w[p + "moe.shared_down"] = rnd(D, I)
    torch.cuda.synchronize()
    return w


def decode_bytes(c: dict, batch: int) -> float:
    """Weight bytes one decode step must read (bf16): attention, router, shared expert, the routed
    experts the batch is expected to touch (top-1 of E uniformly: E (1 - (1 - 1/E)^B)), lm_head."""
    D, V, H, KV, d = c["hidden_size"], c["vocab_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    E, I = c["num_local_experts"], c["intermediate_size"]
    expert = 3 * I * D
    touched = E * (1 - (1 - 1 / E) ** batch)
    layer = (H + 2 * KV) * d * D + D * H * d + E * D + expert + touched * expert
    return 2.0 * (c["num_hidden_layers"] * layer + V * D)


def decode_tok_s(c: dict, weights: dict, batch: int, steps: int, enforce_eager: bool) -> tuple[float, dict]:
    """ms per decode step of `batch` sequences after a 128-token prompt each, and the engine's decode
    graph statistics. Every measured step replays the graph (the warm-up step captured it)."""
    from llama4_native import _C

    engine = _C.Engine(c, "bfloat16", weights,
                       {"page_size": 64, "kv_cache_bytes": 8 << 30, "max_sequences": 32,
                        "max_step_tokens": 256, "enforce_eager": enforce_eager})
    g = torch.Generator().manual_seed(0)
    seqs = [engine.add_sequence() for _ in range(batch)]
    prompts = [torch.randint(3, c["vocab_size"], (128,), generator=g).tolist() for _ in seqs]
    last = engine.step([(s, p, False) for s, p in zip(seqs, prompts)])
    nxt = torch.from_dlpack(last).argmax(-1).tolist()

    def step():
        return engine.step([(s, [t], False) for s, t in zip(seqs, nxt)])

    step()  # the layout's first step: eager, then (graphs on) its capture
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    end.synchronize()
    stats = engine.decode_graph_stats()
    del engine
    return start.elapsed_time(end) / steps, stats


def bench_engine_decode(copy: float, quick: bool) -> None:
    print("\n== end-to-end decode: Scout shape cut to 4 layers (bf16, 16 experts top-1, vocab 202048)")
    print("   CUDA graphs (default) vs enforce_eager=True; roofline = weight bytes a step reads / copy bandwidth")
    c = SCOUT4
    weights = scout4_weights(c)
    print(f"{'batch':>6} {'graph ms':>9} {'graph tok/s':>12} {'eager ms':>9} {'eager tok/s':>12} "
          f"{'graph/eager':>12} {'roofline tok/s':>15} {'graph of roof':>14} {'eager of roof':>14}")
    steps = 8 if quick else 32
    for batch in (1, 32):
        g_ms, g_stats = decode_tok_s(c, weights, batch, steps, enforce_eager=False)
        e_ms, _ = decode_tok_s(c, weights, batch, steps, enforce_eager=True)
        if g_stats["error"] or g_stats["replays"] < steps:
            print(f"   graphs were not replayed: {g_stats}")
        roof = batch / (decode_bytes(c, batch) / (copy * 1e9))
        g_tok, e_tok = batch / g_ms * 1e3, batch / e_ms * 1e3
        print(f"{batch:>6} {g_ms:9.3f} {g_tok:12.1f} {e_ms:9.3f} {e_tok:12.1f} {g_tok / e_tok:12.2f}x "
              f"{roof:15.1f} {g_tok / roof:14.1%} {e_tok / roof:14.1%}")
        print(f"   graph memory pool: {g_stats['graph_memory_bytes'] / 2**20:.1f} MiB")
    del weights
    torch.cuda.empty_cache()


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
    bench_prefill_attention(args.quick)
    bench_engine_decode(copy, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
