"""The generation loop: prefill, then one engine step per new token, sampling in Python.

Greedy when temperature == 0; otherwise softmax(logits / temperature) sampling with an optional
seed (same seed -> same tokens).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class GenerationResult:
    token_ids: list[int]                 # the new tokens (prompt excluded)
    finish_reason: str                   # "length" or "stop"
    logits: torch.Tensor | None = None   # [steps, vocab] float32 when return_logits=True
    prompt_tokens: int = 0
    timings: dict = field(default_factory=dict)


def _check_params(max_new_tokens, temperature):
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not (isinstance(temperature, (int, float)) and temperature >= 0 and temperature == temperature):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")


def generate(model, input_ids=None, max_new_tokens: int = 32, temperature: float = 0.0,
             return_logits: bool = False, stop_token_ids=None, seed: int | None = None
             ) -> GenerationResult:
    from .engine import _as_id_list

    _check_params(max_new_tokens, temperature)
    prompt = _as_id_list(input_ids, "input_ids")
    if len(prompt) + max_new_tokens > model.max_context:
        raise ValueError(f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds "
                         f"the context length {model.max_context}")
    stops = set(int(t) for t in (stop_token_ids or []))
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    seq = model._new_sequence()
    out: list[int] = []
    rows: list[torch.Tensor] = []
    finish = "length"
    t0 = time.perf_counter()
    t_first = None
    try:
        pending = prompt
        for _ in range(max_new_tokens):
            logits = model._step([(seq, pending, False)])[0]
            if t_first is None:
                t_first = time.perf_counter()
            if return_logits:
                rows.append(logits.clone())
            if temperature == 0:
                tok = int(torch.argmax(logits))
            else:
                probs = torch.softmax(logits.double() / float(temperature), dim=-1)
                tok = int(torch.multinomial(probs, 1, generator=gen))
            out.append(tok)
            if tok in stops:
                finish = "stop"
                break
            pending = [tok]
    finally:
        model._free_sequence(seq)
    t1 = time.perf_counter()
    timings = {"prefill_s": (t_first or t1) - t0, "decode_s": t1 - (t_first or t1), "total_s": t1 - t0}
    return GenerationResult(token_ids=out, finish_reason=finish,
                            logits=torch.stack(rows) if return_logits and rows else
                            (torch.empty(0, model.vocab_size) if return_logits else None),
                            prompt_tokens=len(prompt), timings=timings)
