"""The Python sampler generate() used before the C++ one (kept as a reference for the tests):
next-token selection from one row of logits: greedy, or temperature sampling filtered by
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


_PREFIX = 1024  # top-p / min-p first look among this many most likely tokens


def candidate_probs(logits: torch.Tensor, p: SamplingParams):
    """The tokens that survive top-k / top-p / min-p and their renormalized probabilities,
    most likely first: (ids [n] long, probs [n] float32). (None, probs [vocab]) when no filter is
    set. Top-p and min-p look at the 1024 most likely tokens first and fall back to a full sort
    only when that prefix cannot decide (its mass is below top_p, or min-p could keep more)."""
    x = logits.float() / p.temperature
    V = x.numel()
    if p.top_k and p.top_k < V:
        vals, ids = torch.topk(x, p.top_k)  # sorted, most likely first
        base = torch.softmax(vals, 0)     # top-p then sees the top-k distribution (as HF orders it)
    elif p.top_p < 1.0 or p.min_p > 0:
        full = torch.softmax(x, 0)
        base, ids = torch.topk(full, min(V, _PREFIX))
        undecided = base.numel() < V and (
            (p.top_p < 1.0 and float(base.sum()) < p.top_p)
            or (p.min_p > 0 and float(base[-1]) >= p.min_p * float(base[0])))
        if undecided:
            base, ids = torch.sort(full, descending=True)
    else:
        return None, torch.softmax(x, 0)
    keep = torch.ones_like(base, dtype=torch.bool)
    if p.top_p < 1.0:
        # Keep the smallest set of most likely tokens whose mass reaches top_p.
        keep &= (torch.cumsum(base, 0) - base) < p.top_p
    if p.min_p > 0:
        keep &= base >= p.min_p * base[0]
    probs = base * keep
    return ids, probs / probs.sum()


def filtered_probs(logits: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    """The full distribution [vocab] sampled from: softmax(logits / T) restricted by top-k,
    top-p, min-p (zeros elsewhere)."""
    ids, probs = candidate_probs(logits, p)
    if ids is None:
        return probs
    return torch.zeros(logits.numel(), dtype=probs.dtype).index_put_((ids,), probs)


def select_token(logits: torch.Tensor, params: SamplingParams, seen: list[int],
                 generator: torch.Generator | None) -> int:
    """logits: [vocab] float32 -> the next token id."""
    logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.greedy:
        return int(torch.argmax(logits))
    ids, probs = candidate_probs(logits, params)
    pick = _draw(probs, generator)
    return pick if ids is None else int(ids[pick])


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One index with probability probs[i] (inverse CDF: a few times cheaper than
    torch.multinomial over a 200k vocabulary). Zero-probability entries are never drawn."""
    cdf = torch.cumsum(probs.double(), 0)
    u = torch.rand((), generator=generator, dtype=torch.float64) * cdf[-1]
    return min(int(torch.searchsorted(cdf, u, right=True)), probs.numel() - 1)
