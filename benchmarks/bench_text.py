"""Text decoder speed: llama4_native's CPU engine vs transformers, same checkpoint, prompt, threads.

Builds (once, cached) a random Llama 4 checkpoint with the real vocabulary size — hidden 1024,
8 layers, 8 experts top-1 — then measures prefill and decode tokens/s of both and prints ratios.
transformers runs its own fastest path here: a manual loop with its KV cache (no generate()
overhead), sdpa attention, torch's CPU kernels, the same thread count.

    python benchmarks/bench_text.py [--dtype bfloat16] [--prompt 128] [--new 32] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

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


def bench_transformers(path, dtype, prompt, n_new):
    from transformers import DynamicCache, Llama4ForCausalLM

    model = Llama4ForCausalLM.from_pretrained(path, dtype=dtype).eval()
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        model(ids[:, :8])  # warm-up
        t0 = time.perf_counter()
        cache = DynamicCache(config=model.config)
        out = model(ids, past_key_values=cache, use_cache=True)
        t1 = time.perf_counter()
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        toks = []
        for _ in range(n_new):
            out = model(tok, past_key_values=cache, use_cache=True)
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
            toks.append(int(tok))
        t2 = time.perf_counter()
    del model
    return len(prompt) / (t1 - t0), n_new / (t2 - t1), toks


def bench_ours(path, dtype, prompt, n_new):
    import llama4_native as l4

    model = l4.load(path, dtype=dtype)
    model.logits(prompt[:8])  # warm-up
    seq = model._new_sequence()
    t0 = time.perf_counter()
    logits = model._step([(seq, prompt, False)])
    t1 = time.perf_counter()
    tok = int(logits[0].argmax())
    toks = []
    for _ in range(n_new):
        logits = model._step([(seq, [tok], False)])
        tok = int(logits[0].argmax())
        toks.append(tok)
    t2 = time.perf_counter()
    model._free_sequence(seq)
    return len(prompt) / (t1 - t0), n_new / (t2 - t1), toks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dir", default=DEFAULT_DIR)
    args = ap.parse_args()

    import llama4_native as l4

    torch.set_num_threads(args.threads)
    l4.set_cpu_threads(args.threads)
    tdtype = getattr(torch, args.dtype)
    path = os.path.abspath(f"{args.dir}-{args.dtype}")
    make_checkpoint(path, tdtype)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 200000, (args.prompt,), generator=g).tolist()

    ours = bench_ours(path, args.dtype, prompt, args.new)
    ref = bench_transformers(path, tdtype, prompt, args.new)
    same = sum(a == b for a, b in zip(ours[2], ref[2]))
    print(f"checkpoint: hidden 1024, 8 layers, 8 experts top-1, vocab 202048, {args.dtype}; "
          f"prompt {args.prompt}, {args.new} new tokens, {args.threads} threads")
    print(f"{'':14s}{'prefill tok/s':>15s}{'decode tok/s':>15s}")
    print(f"{'llama4_native':14s}{ours[0]:15.1f}{ours[1]:15.2f}")
    print(f"{'transformers':14s}{ref[0]:15.1f}{ref[1]:15.2f}")
    print(f"{'ratio':14s}{ours[0] / ref[0]:14.2f}x{ours[1] / ref[1]:14.2f}x")
    print(f"greedy tokens identical: {same}/{args.new}")


if __name__ == "__main__":
    main()
