"""`SamplingParams`: how one prompt is sampled (vLLM's names). The C++ sampler (llama4/sampling.h)
does the work and checks the values; this class gives them Python types and defaults.

A field left as None is unset: `generate()`'s keyword arguments fill it, then the checkpoint's
generation_config.json, then the defaults below (greedy, no filters, no penalties).

    temperature         0 = greedy (argmax after the penalties)
    top_k / top_p / min_p        0 / 1 / 0 turn them off
    repetition_penalty  CTRL/transformers style over prompt and generated tokens (1 = off)
    presence_penalty / frequency_penalty   OpenAI style over generated tokens, in [-2, 2]
    seed                draws depend only on (seed, sample index, token index): not on the batch
    n                   samples drawn from the prompt (its prefill is shared)
    logprobs            None, or k in 0..20: the chosen token's logprob and the k most likely
    max_new_tokens, stop_token_ids, stop_strings   per prompt, as generate()'s arguments
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

_FLOATS = ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty")
_INTS = ("top_k", "seed", "n", "logprobs", "max_new_tokens")

DEFAULTS = dict(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, presence_penalty=0.0,
                frequency_penalty=0.0, seed=None, n=1, logprobs=None, max_new_tokens=128, stop_token_ids=None,
                stop_strings=None)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    n: int | None = None
    logprobs: int | None = None
    max_new_tokens: int | None = None
    stop_token_ids: tuple[int, ...] | None = None
    stop_strings: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in _FLOATS:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)):
                raise ValueError(f"{name} must be a number, got {v!r}")
        for name in _INTS:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_new_tokens is not None and self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {self.max_new_tokens}")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.stop_token_ids is not None:
            ids = (self.stop_token_ids,) if isinstance(self.stop_token_ids, int) else self.stop_token_ids
            if isinstance(ids, (str, bytes)) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
                raise TypeError(f"stop_token_ids must be an integer or a list of integers, got {self.stop_token_ids!r}")
            object.__setattr__(self, "stop_token_ids", tuple(ids))
        if self.stop_strings is not None:
            stops = (self.stop_strings,) if isinstance(self.stop_strings, str) else self.stop_strings
            if not all(isinstance(s, str) and s for s in stops):
                raise ValueError(f"stop_strings must be non-empty strings, got {self.stop_strings!r}")
            object.__setattr__(self, "stop_strings", tuple(stops))

    def merged(self, fallback: "SamplingParams") -> "SamplingParams":
        """These parameters, with the unset ones taken from `fallback`."""
        return replace(self, **{f.name: getattr(fallback, f.name) for f in fields(self)
                                if getattr(self, f.name) is None})

    def for_prompt(self, index: int) -> "SamplingParams":
        """These parameters for prompt `index` of a batch that shares them: a seed becomes
        seed + index, so that equal prompts in one batch still draw differently (generate() and
        the server's several-prompt completions both use this rule)."""
        if self.seed is None or index == 0:
            return self
        return replace(self, seed=(self.seed + index) % 2**64)

    def check(self) -> None:
        """ValueError naming the field when the C++ sampler would refuse these values (its rules,
        llama4/sampling.h, checked without a model: the CLI calls this before loading)."""
        from . import _C

        kw = self.engine_kwargs()
        _C.SamplingParams(**{k: kw[k] for k in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                                                "presence_penalty", "frequency_penalty", "seed", "logprobs")})

    def engine_kwargs(self) -> dict:
        """The C++ Scheduler.add_request keywords (every field set; checked there)."""
        full = self.merged(SamplingParams(**DEFAULTS))
        return dict(temperature=float(full.temperature), top_k=full.top_k, top_p=float(full.top_p),
                    min_p=float(full.min_p), repetition_penalty=float(full.repetition_penalty),
                    presence_penalty=float(full.presence_penalty),
                    frequency_penalty=float(full.frequency_penalty), seed=full.seed, n=full.n,
                    logprobs=-1 if full.logprobs is None else full.logprobs,
                    max_new_tokens=full.max_new_tokens, stop_token_ids=list(full.stop_token_ids or ()))
