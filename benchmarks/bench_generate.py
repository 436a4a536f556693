"""Generation speed: what the serving loop (C++ scheduler + sampler, Python driver) costs on top of
the bare engine step, and batch throughput.

Builds (once, cached) a random 6-layer bf16 Llama 4 with the real vocabulary (hidden 512, 8 experts
top-1: the model of the serving-core issue), then prints, from one run, medians of repeated runs:
  - the bare C++ decode step (Engine.step on one token; no sampling, no Python loop)  tok/s
  - generate() greedy and top-p (temperature 0.7, top_p 0.9) decode tok/s, batch 1
  - ratios: top-p / greedy (target >= 0.95), generate() greedy / bare step (target >= 0.95)
  - throughput of generate() at batch 1, 8 and 32 (generated tokens / wall time), greedy

    python benchmarks/bench_generate.py [--threads 2] [--new 64] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "build", "bench-generate-ckpt")

TEXT = dict(vocab_size=202048, hidden_size=512, intermediate_size=1024, intermediate_size_mlp=2048,
            num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
            num_local_experts=8, num_experts_per_tok=1, interleave_moe_layer_step=1,
            attention_chunk_size=8192, rope_theta=500000.0, use_qk_norm=True,
            max_position_embeddings=16384, bos_token_id=200000, eos_token_id=[200001, 200007, 200008],
            pad_token_id=200018, tie_word_embeddings=False)


def make_checkpoint(path: str) -> None:
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        return
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = Llama4ForCausalLM(Llama4TextConfig(**TEXT))
    finally:
        torch.set_default_dtype(torch.float32)
    model.save_pretrained(path)
    open(marker, "w").close()


def bare_step_rate(model, prompt: list[int], n_new: int) -> float:
    """Decode tokens/s of Engine.step alone (argmax in torch between steps, outside the timing)."""
    seq = model._new_sequence()
    try:
        tok = int(model._step([(seq, prompt, False)])[0].argmax())
        elapsed = 0.0
        for _ in range(n_new):
            t0 = time.perf_counter()
            logits = model._step([(seq, [tok], False)])
            elapsed += time.perf_counter() - t0
            tok = int(logits[0].argmax())
        return n_new / elapsed
    finally:
        model._free_sequence(seq)


def decode_rate(model, prompt: list[int], n_new: int, **sampling) -> float:
    res = model.generate(input_ids=prompt, max_new_tokens=n_new + 1, stop_token_ids=[], **sampling)
    return res.timings["decode_tokens_per_s"]


def throughput(model, batch: int, n_new: int) -> float:
    prompts = [torch.randint(1000, 200000, (16,), generator=torch.Generator().manual_seed(i)).tolist()
               for i in range(batch)]
    t0 = time.perf_counter()
    outs = model.generate(prompts, max_new_tokens=n_new, temperature=0.0, stop_token_ids=[], max_batch=batch)
    return sum(len(o.token_ids) for o in outs) / (time.perf_counter() - t0)


def median(f, repeat: int) -> float:
    return statistics.median(f() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=DEFAULT_DIR)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--new", type=int, default=64, help="decode tokens per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import llama4_native as l4

    torch.set_num_threads(args.threads)
    l4.set_cpu_threads(args.threads)
    make_checkpoint(args.checkpoint)
    model = l4.load(args.checkpoint, dtype="bfloat16", max_sequences=32)
    prompt = torch.randint(1000, 200000, (32,), generator=torch.Generator().manual_seed(0)).tolist()
    decode_rate(model, prompt, 4, temperature=0.0)  # warm-up (tokenizer, first-touch of the weights)

    bare = median(lambda: bare_step_rate(model, prompt, args.new), args.repeat)
    greedy = median(lambda: decode_rate(model, prompt, args.new, temperature=0.0), args.repeat)
    top_p = median(lambda: decode_rate(model, prompt, args.new, temperature=0.7, top_p=0.9, seed=0), args.repeat)
    print(f"model: 6 layers bf16, hidden 512, vocab 202048, 8 experts top-1; threads {args.threads}")
    print(f"bare C++ decode step      {bare:8.1f} tok/s  ({1e3 / bare:.2f} ms/token)")
    print(f"generate() greedy         {greedy:8.1f} tok/s  ratio to the bare step {greedy / bare:.3f} (target >= 0.95)")
    print(f"generate() top-p 0.9      {top_p:8.1f} tok/s  ratio to greedy {top_p / greedy:.3f} (target >= 0.95)")
    for batch in (1, 8, 32):
        tput = median(lambda: throughput(model, batch, args.new // 2), args.repeat)
        print(f"throughput batch {batch:2d}       {tput:8.1f} tok/s  ({tput / greedy:.2f}x batch-1 decode)")


if __name__ == "__main__":
    main()
