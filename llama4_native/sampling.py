"""Next-token selection from one row of logits: greedy, or temperature sampling filtered by
top-k, top-p (nucleus) and min-p, with an optional repetition penalty.

Order (as in transformers' logits processors): repetition penalty -> temperature -> top-k ->
top-p -> min-p -> sample. temperature == 0 is greedy (argmax after the penalty).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_k: int = 0                 # 0: off
    top_p: float = 1.0             # 1: off
    min_p: float = 0.0             # 0: off
    repetition_penalty: float = 1.0  # 1: off

    def __post_init__(self):
        def bad(name, value, why):
            raise ValueError(f"{name} must be {why}, got {value!r}")

        t = self.temperature
        if not isinstance(t, (int, float)) or t != t or t < 0 or t == float("inf"):
            bad("temperature", t, "a finite number >= 0")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0:
            bad("top_k", self.top_k, "an integer >= 0 (0 disables it)")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            bad("top_p", self.top_p, "in (0, 1]")
        if not isinstance(self.min_p, (int, float)) or not 0 <= self.min_p < 1:
            bad("min_p", self.min_p, "in [0, 1)")
        r = self.repetition_penalty
        if not isinstance(r, (int, float)) or r != r or r <= 0 or r == float("inf"):
            bad("repetition_penalty", r, "a finite number > 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def apply_repetition_penalty(logits: torch.Tensor, seen: list[int], penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already in the sequence: positive logits / p, negative * p."""
    if penalty == 1.0 or not seen:
        return logits
    idx = torch.tensor(sorted(set(seen)), dtype=torch.long)
    vals = logits[idx]
    logits = logits.clone()
    logits[idx] = torch.where(vals > 0, vals / penalty, vals * penalty)
    return logits


def filtered_probs(logits: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    """The distribution sampled from: softmax(logits / T) restricted by top-k, top-p, min-p."""
    x = logits.double() / p.temperature
    if p.top_k and p.top_k < x.numel():
        kth = torch.topk(x, p.top_k).values[-1]
        x = x.masked_fill(x < kth, float("-inf"))
    probs = torch.softmax(x, dim=-1)
    if p.top_p < 1.0:
        # Keep the smallest set of most likely tokens whose mass reaches top_p.
        sorted_p, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_p, 0) - sorted_p  # mass of the strictly more likely tokens
        drop = before >= p.top_p
        probs = probs.clone()
        probs[order[drop]] = 0
    if p.min_p > 0:
        probs = torch.where(probs >= p.min_p * probs.max(), probs, torch.zeros_like(probs))
    return probs / probs.sum()


def select_token(logits: torch.Tensor, params: SamplingParams, seen: list[int],
                 generator: torch.Generator | None) -> int:
    """logits: [vocab] float32 -> the next token id."""
    logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.greedy:
        return int(torch.argmax(logits))
    probs = filtered_probs(logits, params)
    return int(torch.multinomial(probs, 1, generator=generator))
