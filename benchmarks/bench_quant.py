"""Quantized weights and KV cache on the CPU: decode speed against the machine's read bandwidth.

1. Experts: decode tokens/s of an expert-heavy random model (4 layers, hidden 1024, 8 experts of
   width 4096, top-6 + the shared expert, vocabulary 8192: the routed experts are >= 80% of the
   bytes a decode token reads) with bf16 experts, FP8 routed experts and INT4 (W4A16, group 128)
   routed experts and shared expert (all quantized at load: quantization="int4" quantizes the shared
   expert too, as llm-compressor's W4A16 checkpoints store it), each as bytes read per second
   against the AVX-512 read probe of a 1 GiB
   buffer (benchmarks/roofline.py) timed in the same rounds, and the FP8 and INT4 speed-ups over
   bf16 (INT4 target: >= 3x). The models take turns for --rounds rounds (so load from other
   processes hits all of them alike); each number is the median over rounds of the median step,
   printed with the load average.
2. KV cache: one decode step of paged attention over a long context (Scout's head shapes: 40 query
   / 8 KV heads of 128, global layer) from a bf16 and from an FP8 cache: K/V bytes read per second
   against the probe, and the FP8 speed-up (it reads 132 / 256 of the bytes).

    python benchmarks/bench_quant.py [--threads 1 2] [--new 16] [--rounds 5] [--context 32768]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roofline  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "build", "bench-quant-ckpt")
TEXT = dict(vocab_size=8192, hidden_size=1024, intermediate_size=4096, intermediate_size_mlp=4096,
            num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
            num_local_experts=8, num_experts_per_tok=6, interleave_moe_layer_step=1,
            attention_chunk_size=8192, rope_theta=500000.0, use_qk_norm=True, max_position_embeddings=16384,
            bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)


def make_checkpoint(path: str) -> None:
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    if os.path.exists(os.path.join(path, ".complete")):
        return
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = Llama4ForCausalLM(Llama4TextConfig(**TEXT))
    finally:
        torch.set_default_dtype(torch.float32)
    model.save_pretrained(path)
    open(os.path.join(path, ".complete"), "w").close()


def decode_bytes(model) -> tuple[int, int]:
    """(bytes one decode token reads from the weights, of which routed experts): every tensor but one
    embedding row and top-k / E of the routed experts, from the loaded engine tensors."""
    k, E = TEXT["num_experts_per_tok"], TEXT["num_local_experts"]
    total = experts = 0
    for name, t in model._checkpoint.text_weights.items():
        t = torch.from_dlpack(t)
        n = t.numel() * t.element_size()
        if name == "embed_tokens":
            n //= t.shape[0]
        elif ".moe.gate_up" in name or ".moe.down" in name:
            n = n * k // E
            experts += n
        total += n
    return total, experts


def bench_decode(model, n_new: int, probe) -> tuple[float, float]:
    """Median decode step seconds and median probe seconds (the probe after each step)."""
    seq = model._new_sequence()
    tok = int(model._step([(seq, list(range(3, 35)), False)])[0].argmax())
    steps, probes = [], []
    for _ in range(n_new):
        t0 = time.perf_counter()
        tok = int(model._step([(seq, [tok], False)])[0].argmax())
        steps.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        probe()
        probes.append(time.perf_counter() - t0)
    model._free_sequence(seq)
    return statistics.median(steps), statistics.median(probes)


def bench_kv(context: int, probe):
    """Decode attention over `context` keys from a bf16 and an FP8 cache (one sequence)."""
    from llama4_native import attention as attn

    H, KV, d, P = 40, 8, 128, 16
    pages = context // P
    g = torch.Generator().manual_seed(0)
    k = torch.randn(pages, P, KV, d, generator=g).bfloat16()
    v = torch.randn(pages, P, KV, d, generator=g).bfloat16()
    q = torch.randn(1, H, d, generator=g).bfloat16()
    table = torch.randperm(pages, generator=g).to(torch.int32)[None]
    qs, qp = torch.zeros(1, dtype=torch.int32), torch.full((1,), context - 1, dtype=torch.int32)
    k8, v8 = torch.empty_like(k, dtype=torch.float8_e4m3fn), torch.empty_like(v, dtype=torch.float8_e4m3fn)
    ks, vs = torch.empty(pages, P, KV), torch.empty(pages, P, KV)
    slots = torch.arange(pages * P, dtype=torch.int32)
    attn.cache_write(k8, v8, k.view(-1, KV, d), v.view(-1, KV, d), slots, ks, vs)
    runs = {"bf16": lambda: attn.paged_attention(q, k, v, table, qs, qp),
            "fp8": lambda: attn.paged_attention(q, k8, v8, table, qs, qp, k_scale=ks, v_scale=vs)}
    nbytes = {"bf16": 2 * k.numel() * 2, "fp8": 2 * (k8.numel() + ks.numel() * 4)}
    t_bf16, t_fp8, t_probe = roofline.median_s([runs["bf16"], runs["fp8"], probe], rounds=9)
    return {name: (nbytes[name], t) for name, t in (("bf16", t_bf16), ("fp8", t_fp8))}, t_probe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--new", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--context", type=int, default=32768)
    ap.add_argument("--dir", default=DEFAULT_DIR)
    args = ap.parse_args()

    import llama4_native as l4

    path = os.path.abspath(args.dir)
    make_checkpoint(path)
    models = {"bf16": l4.load(path, dtype="bfloat16"), "fp8": l4.load(path, dtype="bfloat16", quantization="fp8"),
              "int4": l4.load(path, dtype="bfloat16", quantization="int4")}
    for threads in args.threads:
        l4.set_cpu_threads(threads)
        probe = roofline.read_probe_fn()
        print(f"--- {threads} thread(s), load average before {os.getloadavg()[0]:.2f} ---")
        steps = {name: [] for name in models}
        probes = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                step, probe_s = bench_decode(model, args.new, probe)
                steps[name].append(step)
                probes[name].append(probe_s)
        tok_s, read = {}, {}
        for name, model in models.items():
            total, experts = decode_bytes(model)
            read[name] = total
            step, probe_s = statistics.median(steps[name]), statistics.median(probes[name])
            tok_s[name] = 1 / step
            frac = (total / step) / (roofline.READ_BYTES / probe_s)
            print(f"experts {name:>4}: decode {1 / step:6.1f} tok/s, {total / 2**20:6.1f} MiB/token "
                  f"(routed experts {experts / total:.0%}), {total / step / 1e9:5.2f} GB/s = {frac:.2f} x read probe "
                  f"({roofline.READ_BYTES / probe_s / 1e9:.2f} GB/s); rounds {' '.join(f'{1 / s:.1f}' for s in steps[name])} tok/s")
        print(f"FP8 experts / bf16 experts decode speed-up: {tok_s['fp8'] / tok_s['bf16']:.2f}x")
        print(f"INT4 (experts + shared expert) / bf16 decode speed-up: {tok_s['int4'] / tok_s['bf16']:.2f}x "
              f"(target >= 3x; "
              f"bytes read per token {read['bf16'] / read['int4']:.2f}x fewer: the speed-up at equal GB/s); "
              f"load average after {os.getloadavg()[0]:.2f}")
        kv, t_probe = bench_kv(args.context, probe)
        probe_gbs = roofline.READ_BYTES / t_probe / 1e9
        for name, (nbytes, t) in kv.items():
            print(f"KV {name:>4} decode attention over {args.context} tokens: {t * 1e3:7.2f} ms, "
                  f"{nbytes / t / 1e9:5.2f} GB/s = {nbytes / t / 1e9 / probe_gbs:.2f} x read probe")
        print(f"FP8 KV / bf16 KV decode attention speed-up: {kv['bf16'][1] / kv['fp8'][1]:.2f}x")


if __name__ == "__main__":
    main()
