"""Text decoder speed: llama4_native's CPU engine vs transformers, same checkpoint, prompt, threads.

Builds (once, cached) a random Llama 4 checkpoint with the real vocabulary size — hidden 1024,
8 layers, 8 experts top-1 — then measures prefill and decode tokens/s of both and prints ratios, at 1 and 2 threads (or
--threads) in one run. transformers runs its own fastest path here: a manual loop with its KV
cache (no generate() overhead), sdpa attention, torch's CPU kernels, the same thread count, and
prefill with logits_to_keep=1 (the lm_head for the last prompt token only, as ours). Prefill
tok/s are medians of --prefill-rounds prefills each.

Prefill against the machine's limit: the prefill's matmul and attention flops (prefill_flops) per
second, as a fraction of the vdpbf16ps peak of the cores in use (benchmarks/roofline.py; bf16).

Decode against the machine's limit: a decode step reads every weight it uses once (all of them
but the embedding table, of which one row, and top-k of the E experts per layer), so its floor is
those bytes / the read bandwidth. After each of our decode steps the AVX-512 read probe of a 1 GiB
buffer (benchmarks/roofline.py, same thread pool) is timed, so both medians see the same load from
other processes; the bench prints bytes per token / median step time as a fraction of the probe.

    python benchmarks/bench_text.py [--dtype bfloat16] [--prompt 128] [--new 32] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roofline  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "build", "bench-ckpt")

TEXT = dict(vocab_size=202048, hidden_size=1024, intermediate_size=2048, intermediate_size_mlp=4096,
            num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2, head_dim=128,
            num_local_experts=8, num_experts_per_tok=1, interleave_moe_layer_step=1,
            attention_chunk_size=8192, rope_theta=500000.0, use_qk_norm=True,
            rope_scaling={"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 1.0, "original_max_position_embeddings": 8192},
            max_position_embeddings=16384, bos_token_id=200000, eos_token_id=[200001, 200007, 200008],
            pad_token_id=200018, tie_word_embeddings=False)


def make_checkpoint(path: str, dtype: torch.dtype) -> None:
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        return
    torch.manual_seed(0)
    cfg = Llama4TextConfig(**TEXT)
    with torch.device("cpu"):
        torch.set_default_dtype(dtype)
        try:
            model = Llama4ForCausalLM(cfg)
        finally:
            torch.set_default_dtype(torch.float32)
    model.save_pretrained(path)
    open(marker, "w").close()


def bench_transformers(path, dtype, prompt, n_new, prefill_rounds):
    """Prefill tok/s (median of prefill_rounds, last-token logits only: logits_to_keep=1, as ours
    computes one row of the lm_head), decode tok/s and the tokens."""
    from transformers import DynamicCache, Llama4ForCausalLM

    model = Llama4ForCausalLM.from_pretrained(path, dtype=dtype).eval()
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        model(ids[:, :8], logits_to_keep=1)  # warm-up
        times = []
        for _ in range(prefill_rounds):
            t0 = time.perf_counter()
            cache = DynamicCache(config=model.config)
            out = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            times.append(time.perf_counter() - t0)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        toks = []
        t1 = time.perf_counter()
        for _ in range(n_new):
            out = model(tok, past_key_values=cache, use_cache=True)
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
            toks.append(int(tok))
        t2 = time.perf_counter()
    del model
    return len(prompt) / statistics.median(times), n_new / (t2 - t1), toks


def decode_bytes_per_token(path: str) -> int:
    """Weight bytes one decode token reads, from the safetensors headers: every tensor, but one
    row of the embedding table and top-k / E of each fused expert tensor."""
    k, experts, vocab = TEXT["num_experts_per_tok"], TEXT["num_local_experts"], TEXT["vocab_size"]
    total = 0
    for file in glob.glob(os.path.join(path, "*.safetensors")):
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            size = meta["data_offsets"][1] - meta["data_offsets"][0]
            if "embed_tokens" in name:
                size //= vocab
            elif ".experts." in name:
                size = size * k // experts
            total += size
    return total


def prefill_flops(tokens: int) -> float:
    """Multiply-adds x 2 of a prefill's matmuls: per token the attention projections, the router,
    one routed and the shared expert (SwiGLU: gate, up, down), q.k and p.v over the causal prefix
    (tokens / 2 on average), and the lm_head for the last token only."""
    D, H, KV, hd = TEXT["hidden_size"], TEXT["num_attention_heads"], TEXT["num_key_value_heads"], TEXT["head_dim"]
    inter, E, k = TEXT["intermediate_size"], TEXT["num_local_experts"], TEXT["num_experts_per_tok"]
    proj = D * (H + 2 * KV) * hd + H * hd * D
    moe = D * E + (k + 1) * 3 * D * inter
    attn = 2 * H * hd * tokens / 2
    return 2.0 * (tokens * TEXT["num_hidden_layers"] * (proj + moe + attn) + D * TEXT["vocab_size"])


def bench_ours(path, dtype, prompt, n_new, prefill_rounds):
    """Prefill tok/s (median of prefill_rounds), decode tok/s (whole loop), the tokens, and the
    median decode step and median read-probe time, the probe timed after each step."""
    import llama4_native as l4

    model = l4.load(path, dtype=dtype)
    model.logits(prompt[:8])  # warm-up
    probe = roofline.read_probe_fn() if roofline.available() else None
    times = []
    for _ in range(prefill_rounds):
        seq = model._new_sequence()
        t0 = time.perf_counter()
        logits = model._step([(seq, prompt, False)])
        times.append(time.perf_counter() - t0)
        model._free_sequence(seq)
    seq = model._new_sequence()
    logits = model._step([(seq, prompt, False)])
    tok = int(logits[0].argmax())
    toks, steps, probes = [], [], []
    for _ in range(n_new):
        ts = time.perf_counter()
        logits = model._step([(seq, [tok], False)])
        tok = int(logits[0].argmax())
        steps.append(time.perf_counter() - ts)
        toks.append(tok)
        if probe is not None:
            tp = time.perf_counter()
            probe()
            probes.append(time.perf_counter() - tp)
    model._free_sequence(seq)
    probe_s = statistics.median(probes) if probes else float("nan")
    return len(prompt) / statistics.median(times), n_new / sum(steps), toks, statistics.median(steps), probe_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dir", default=DEFAULT_DIR)
    ap.add_argument("--no-transformers", action="store_true", help="only our engine and the probe")
    ap.add_argument("--prefill-rounds", type=int, default=5, help="prefills timed (medians)")
    args = ap.parse_args()

    import llama4_native as l4

    tdtype = getattr(torch, args.dtype)
    path = os.path.abspath(f"{args.dir}-{args.dtype}")
    make_checkpoint(path, tdtype)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 200000, (args.prompt,), generator=g).tolist()
    nbytes = decode_bytes_per_token(path)
    print(f"checkpoint: hidden 1024, 8 layers, 8 experts top-1, vocab 202048, {args.dtype}; "
          f"prompt {args.prompt}, {args.new} new tokens; decode reads {nbytes / 1e6:.1f} MB of weights per token")

    for threads in args.threads:
        torch.set_num_threads(threads)
        l4.set_cpu_threads(threads)
        ours = bench_ours(path, args.dtype, prompt, args.new, args.prefill_rounds)
        print(f"\n{threads} thread(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'':14s}{'prefill tok/s':>15s}{'decode tok/s':>15s}")
        print(f"{'llama4_native':14s}{ours[0]:15.1f}{ours[1]:15.2f}")
        if not args.no_transformers:
            ref = bench_transformers(path, tdtype, prompt, args.new, args.prefill_rounds)
            same = sum(a == b for a, b in zip(ours[2], ref[2]))
            print(f"{'transformers':14s}{ref[0]:15.1f}{ref[1]:15.2f}")
            print(f"{'ratio':14s}{ours[0] / ref[0]:14.2f}x{ours[1] / ref[1]:14.2f}x")
            print(f"greedy tokens identical: {same}/{args.new}")
        if args.dtype == "bfloat16" and roofline.available():
            peak = roofline.bf16_peak_gflops()
            gf = prefill_flops(len(prompt)) / 1e9 * ours[0] / len(prompt)
            print(f"prefill vs the bf16 peak: {gf:.1f} GFLOP/s of matmuls and attention, "
                  f"{100 * gf / peak:.0f}% of the measured vdpbf16ps peak {peak:.0f} GFLOP/s")
        step_s, probe_s = ours[3], ours[4]
        probe_gbps = roofline.READ_BYTES / probe_s / 1e9
        print(f"decode vs read bandwidth: median step {1e3 * step_s:.2f} ms -> {nbytes / step_s / 1e9:.1f} GB/s "
              f"of weights; read probe {probe_gbps:.1f} GB/s (median, timed after each step); "
              f"floor {1e3 * nbytes / probe_gbps / 1e9:.2f} ms/token; ratio {nbytes / step_s / 1e9 / probe_gbps:.2f}")


if __name__ == "__main__":
    main()
