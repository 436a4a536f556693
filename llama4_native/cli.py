"""The `llama4-native` command line: generate, chat, serve, plan, make-tiny, info, bench, demo."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy (default: checkpoint's)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="checkpoint folder (Hugging Face layout)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--quantization", default=None, choices=["fp8", "int4"],
                   help="fp8: e4m3 MoE experts, int4: W4A16 MoE experts, shared expert and dense MLPs (group 128), "
                        "quantized at load unless the checkpoint is")
    p.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8"],
                   help="fp8: e4m3 KV cache with a scale per token and head (~1.94x the tokens)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--enforce-eager", action="store_true",
                   help="on a GPU, run decode steps without CUDA graphs (same results, more launch overhead)")


def _sampling_kwargs(a) -> dict:
    return dict(max_new_tokens=a.max_new_tokens, temperature=a.temperature, top_k=a.top_k,
                top_p=a.top_p, min_p=a.min_p, repetition_penalty=a.repetition_penalty,
                seed=a.seed, stop_strings=a.stop)


def _load(a):
    import llama4_native as l4

    if a.threads:
        l4.set_cpu_threads(a.threads)
    t0 = time.perf_counter()
    model = l4.load(a.model, dtype=a.dtype, progress=True, quantization=a.quantization,
                    kv_cache_dtype=a.kv_cache_dtype, enforce_eager=a.enforce_eager)
    print(f"[loaded {a.model} ({a.dtype}) in {time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    return model


def _messages(prompt: str, images: list[str] | None, system: str | None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    content = [{"type": "image", "image": p} for p in images or []] + [{"type": "text", "text": prompt}]
    msgs.append({"role": "user", "content": content if images else prompt})
    return msgs


def _run_one(model, prompt, images, kwargs, stream: bool) -> None:
    t0 = time.perf_counter()
    if stream:
        n = 0
        for piece in model.generate(prompt, images=images, stream=True, **kwargs):
            print(piece, end="", flush=True)
            n += 1
        print()
        dt = time.perf_counter() - t0
        print(f"[{n} pieces in {dt:.2f} s]", file=sys.stderr)
        return
    res = model.generate(prompt, images=images, **kwargs)
    print(res.text)
    t = res.timings
    print(f"[{len(res.token_ids)} tokens, finish: {res.finish_reason}; prompt {res.prompt_tokens} "
          f"tokens in {t['prefill_s']:.2f} s; decode {t['decode_tokens_per_s']:.1f} tokens/s]",
          file=sys.stderr)


def _check_sampling(a) -> None:
    """Bad sampling values fail here, before minutes of loading a real checkpoint."""
    from .sampling_params import SamplingParams

    SamplingParams(**_sampling_kwargs(a)).check()


def cmd_generate(a) -> int:
    _check_sampling(a)
    model = _load(a)
    prompt = a.prompt if a.raw else _messages(a.prompt, a.image, a.system)
    _run_one(model, prompt, a.image if a.raw and a.image else None, _sampling_kwargs(a), a.stream)
    return 0


def cmd_chat(a) -> int:
    _check_sampling(a)
    model = _load(a)
    history = [{"role": "system", "content": a.system}] if a.system else []
    print("Chat with the model. Empty line or Ctrl-D to quit; /reset clears the history.", file=sys.stderr)
    kwargs = _sampling_kwargs(a)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            print()
            return 0
        if not line.strip():
            return 0
        if line.strip() == "/reset":
            history = history[:1] if a.system else []
            continue
        history.append({"role": "user", "content": line})
        print("assistant> ", end="", flush=True)
        pieces = []
        for piece in model.generate(list(history), stream=True, **kwargs):
            print(piece, end="", flush=True)
            pieces.append(piece)
        print()
        history.append({"role": "assistant", "content": "".join(pieces)})


def cmd_make_tiny(a) -> int:
    from .tiny import make_tiny

    path = make_tiny(a.dir, dtype=a.dtype, seed=a.seed, processor_files=not a.no_processor_files)
    print(f"wrote a tiny random Llama 4 checkpoint (random weights) to {path}")
    return 0


def cmd_info(a) -> int:
    import llama4_native as l4

    info = l4.build_info()
    print(json.dumps(info, indent=2))
    return 0


def cmd_bench(a) -> int:
    import llama4_native as l4

    from .tiny import demo_checkpoint

    path = a.model or demo_checkpoint()
    if a.threads:
        l4.set_cpu_threads(a.threads)
    model = l4.load(path, dtype=a.dtype, quantization=a.quantization, kv_cache_dtype=a.kv_cache_dtype,
                    enforce_eager=a.enforce_eager)
    prompt = list(range(1000, 1000 + a.prompt_tokens))
    seq = model._new_sequence()
    t0 = time.perf_counter()
    logits = model._step([(seq, prompt, False)])
    t1 = time.perf_counter()
    tok = int(logits[0].argmax())
    for _ in range(a.new_tokens):
        tok = int(model._step([(seq, [tok], False)])[0].argmax())
    t2 = time.perf_counter()
    model._free_sequence(seq)
    print(f"prefill: {a.prompt_tokens / (t1 - t0):.1f} tokens/s ({a.prompt_tokens} tokens)")
    print(f"decode:  {a.new_tokens / (t2 - t1):.1f} tokens/s ({a.new_tokens} tokens)")
    return 0


def cmd_demo(a) -> int:
    import llama4_native as l4

    from .tiny import demo_checkpoint

    print("llama4-native demo: a small built-in Llama 4 checkpoint with RANDOM weights (real "
          "architecture, real tokenizer), so the text below is meaningless; it shows the engine "
          "running end to end.", file=sys.stderr)
    t0 = time.perf_counter()
    path = demo_checkpoint()
    model = l4.load(path, dtype="bfloat16")
    print(f"[checkpoint {path} ready in {time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    from .tiny import bundled_dog_image

    image = bundled_dog_image()
    print(f"[prompt: a chat message with the image {image} and a question]", file=sys.stderr)
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": "What is in this picture?"}]}]
    _run_one(model, messages, None, dict(max_new_tokens=a.max_new_tokens, temperature=0.6,
                                         top_p=0.9, seed=0), stream=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llama4-native", description="Llama 4 on the native engine")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("generate", help="generate from a prompt")
    _model_args(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--image", action="append", default=None, help="image file (repeatable)")
    p.add_argument("--system", default=None, help="system message")
    p.add_argument("--raw", action="store_true", help="no chat template: complete the raw text")
    p.add_argument("--stream", action="store_true")
    _sampling_args(p)
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("chat", help="interactive multi-turn chat")
    _model_args(p)
    p.add_argument("--system", default=None)
    _sampling_args(p)
    p.set_defaults(fn=cmd_chat)

    p = sub.add_parser("make-tiny", help="write a small random checkpoint (real layout and tokenizer)")
    p.add_argument("dir")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-processor-files", action="store_true",
                   help="skip tokenizer.json and the other files transformers' AutoProcessor reads")
    p.set_defaults(fn=cmd_make_tiny)

    p = sub.add_parser("info", help="build and device information")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("bench", help="prefill/decode tokens/s (default: the demo checkpoint)")
    _model_args(p, required=False)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=32)
    p.set_defaults(fn=cmd_bench)

    from .server.serve import add_parser as add_serve_parser

    add_serve_parser(sub)

    from .plan import add_parser as add_plan_parser

    add_plan_parser(sub)

    p = sub.add_parser("demo", help="generate with the built-in tiny random checkpoint")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.set_defaults(fn=cmd_demo)

    a = ap.parse_args(argv)
    if argv is None and a.cmd == "serve":  # the program itself (not a call from Python)
        from .server.serve import reexec_with_passive_openmp

        reexec_with_passive_openmp()
    try:
        return a.fn(a)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"llama4-native: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
