"""Continuous batching on one engine: requests join as soon as there is room, every engine step
runs all active sequences at once (new prompts' prefill mixed with others' decode), and a
sequence leaves as soon as it stops, freeing its KV pages for the next request.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from ._C import CacheFullError
from .sampling import SamplingParams, select_token


@dataclass
class Request:
    prompt: list[int]
    max_new_tokens: int
    params: SamplingParams
    stop_ids: frozenset
    stop_check: Callable[[list[int]], str | None] | None = None  # stop strings: -> reason or None
    generator: torch.Generator | None = None
    return_logits: bool = False
    image_features: torch.Tensor | None = None  # [n, D] rows for the prompt's <|patch|> tokens
    # filled while running
    seq: int = -1
    output: list[int] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    finish_reason: str | None = None
    t_start: float = 0.0
    t_first: float | None = None
    t_end: float = 0.0


class Scheduler:
    """Runs Requests on a Model; at most `max_batch` sequences are live at once."""

    def __init__(self, model, max_batch: int):
        self.model = model
        self.max_batch = max(1, int(max_batch))

    def run(self, requests: list[Request]) -> Iterator[tuple[Request, int | None]]:
        """Yields (request, new token) after every token, and (request, None) when it finishes."""
        waiting = deque(requests)
        active: list[Request] = []
        try:
            while waiting or active:
                joined = self._admit(waiting, active)
                # Prefill carries the prompt's image features; decode steps never do.
                batch = [(r.seq, r.prompt, False, r.image_features) if r in joined
                         else (r.seq, [r.output[-1]], False) for r in active]
                try:
                    logits = self.model._step(batch)
                except CacheFullError:
                    if len(active) == len(joined):  # nothing else would ever free pages
                        raise
                    for r in joined:  # retry them once running sequences have finished
                        active.remove(r)
                        self.model._free_sequence(r.seq)
                        waiting.appendleft(r)
                    self.max_batch = max(1, len(active))
                    continue
                now = time.perf_counter()
                for r, row in zip(list(active), logits):
                    tok = self._sample(r, row)
                    r.t_first = r.t_first or now
                    yield r, tok
                    reason = self._finished(r, tok)
                    if reason:
                        r.finish_reason, r.t_end = reason, time.perf_counter()
                        active.remove(r)
                        self.model._free_sequence(r.seq)
                        yield r, None
        finally:
            for r in active:
                self.model._free_sequence(r.seq)

    def _admit(self, waiting: deque, active: list) -> list[Request]:
        joined = []
        while waiting and len(active) < self.max_batch:
            r = waiting.popleft()
            if r.max_new_tokens == 0:
                r.finish_reason, r.t_start = "length", time.perf_counter()
                r.t_end = r.t_start
                continue
            r.seq, r.t_start = self.model._new_sequence(), time.perf_counter()
            active.append(r)
            joined.append(r)
        return joined

    @staticmethod
    def _sample(r: Request, row: torch.Tensor) -> int:
        if r.return_logits:
            r.logits.append(row.clone())
        # The token history only matters to the repetition penalty: don't rebuild it otherwise.
        seen = r.prompt + r.output if r.params.repetition_penalty != 1.0 else []
        tok = select_token(row, r.params, seen, r.generator)
        r.output.append(tok)
        return tok

    @staticmethod
    def _finished(r: Request, tok: int) -> str | None:
        if tok in r.stop_ids:
            return "stop"
        if r.stop_check is not None and r.stop_check(r.output):
            return "stop"
        if len(r.output) >= r.max_new_tokens:
            return "length"
        return None
