"""Random operations on the C++ scheduler (tests/test_soak.py runs a bounded count in CI,
benchmarks/soak.py a long one): add requests (greedy or seeded sampling, n 1-3, prompt lengths
across chunk boundaries, some too large for the cache), cancel them or one of their samples (a
stream abandoned mid-way), and step, in phases with batch limits from 1 to 32, in a KV cache small
enough that decode preempts. Every request that ends normally is a survivor; its tokens must equal
the same request run alone (draws are keyed by seed, sample and token index, so this holds for
sampled requests too)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import llama4_native as l4
from llama4_native import _C


@dataclass
class Request:
    prompt: list[int]
    max_new_tokens: int
    n: int
    temperature: float
    seed: int | None
    stop_token_ids: list[int]
    tokens: dict[int, list[int]] = field(default_factory=dict)   # sample -> tokens so far
    finish: dict[int, str] = field(default_factory=dict)         # sample -> finish reason
    cancelled: set[int] = field(default_factory=set)             # samples cancelled (-1: all)

    def kwargs(self) -> dict:
        return dict(max_new_tokens=self.max_new_tokens, n=self.n, temperature=self.temperature,
                    seed=self.seed, stop_token_ids=self.stop_token_ids)


@dataclass
class SoakStats:
    operations: int = 0
    added: int = 0
    refused: int = 0        # CacheFullError at add_request (too large alone): nothing queued
    cancelled: int = 0
    abandoned: int = 0      # one sample cancelled after it produced tokens
    steps: int = 0
    preemptions: int = 0
    max_running: int = 0


class Soak:
    def __init__(self, model, seed: int, vocab: int, chunk: int):
        self.model, self.rng, self.vocab, self.chunk = model, random.Random(seed), vocab, chunk
        self.requests: dict[tuple[int, int], Request] = {}  # (phase, request id): ids restart per scheduler
        self.phase_index = 0
        self.stats = SoakStats()

    def _new_request(self) -> Request:
        rng = self.rng
        # Prompt lengths around multiples of the attention chunk (the chunked-local layers' edges).
        length = max(1, rng.choice([1, 2, 3]) * self.chunk + rng.randint(-2, 2)) if rng.random() < 0.6 \
            else rng.randint(1, 5 * self.chunk)
        if rng.random() < 0.03:
            length = 10_000  # never fits: CacheFullError (or the context length): refused, nothing changes
        sampled = rng.random() < 0.4
        return Request(prompt=[rng.randrange(3, self.vocab) for _ in range(length)],
                       max_new_tokens=rng.randint(1, 24), n=rng.choice([1, 1, 1, 2, 3]),
                       temperature=0.8 if sampled else 0.0, seed=rng.randrange(1 << 32) if sampled else None,
                       stop_token_ids=[rng.randrange(3, self.vocab)] if rng.random() < 0.3 else [])

    def _add(self, sched) -> None:
        r = self._new_request()
        try:
            rid = sched.add_request(r.prompt, **r.kwargs())
        except (l4.CacheFullError, ValueError):
            self.stats.refused += 1
            return
        self.requests[(self.phase_index, rid)] = r
        self.stats.added += 1

    def _live(self) -> list[tuple[int, Request]]:
        return [(rid, r) for (phase, rid), r in self.requests.items() if phase == self.phase_index
                and -1 not in r.cancelled and len(r.finish) + len(r.cancelled) < r.n]

    def _cancel(self, sched) -> None:
        live = self._live()
        if not live:
            return
        rid, r = self.rng.choice(live)
        started = [k for k in r.tokens if k not in r.finish and k not in r.cancelled]
        if started and self.rng.random() < 0.5:  # a stream abandoned mid-way: one sample only
            k = self.rng.choice(started)
            if sched.cancel(rid, k):
                r.cancelled.add(k)
                self.stats.abandoned += 1
        elif sched.cancel(rid):
            r.cancelled.add(-1)
            self.stats.cancelled += 1

    def _step(self, sched) -> None:
        for rid, k, tokens, _lp, _logits, finish, error in sched.step():
            r = self.requests[(self.phase_index, rid)]
            assert finish != "error", error
            assert k not in r.finish, f"request {rid} sample {k}: output after it finished"
            r.tokens.setdefault(k, []).extend(tokens)
            if finish:
                r.finish[k] = finish
        self.stats.steps += 1
        s = sched.stats()
        self.stats.max_running = max(self.stats.max_running, s["running"])

    def phase(self, operations: int, max_batch: int) -> None:
        """`operations` random operations on a fresh scheduler, then drain it."""
        self.phase_index += 1
        sched = _C.Scheduler(self.model._engine, max_batch=max_batch)
        for _ in range(operations):
            u = self.rng.random()
            if u < 0.3:
                self._add(sched)
            elif u < 0.38:
                self._cancel(sched)
            else:
                self._step(sched)
            self.stats.operations += 1
        guard = 0
        while sched.has_unfinished():
            self._step(sched)
            guard += 1
            assert guard < 100_000, "the scheduler makes no progress"
        self.stats.preemptions += sched.stats()["preemptions"]

    def unfinished(self) -> int:
        """Samples neither cancelled nor finished (after a drain: must be none)."""
        return sum(1 for r in self.requests.values() if -1 not in r.cancelled
                   for k in range(r.n) if k not in r.finish and k not in r.cancelled)

    def survivors(self) -> list[tuple[Request, int]]:
        """(request, sample) pairs that ended by themselves ("stop" or "length")."""
        return [(r, k) for r in self.requests.values() if -1 not in r.cancelled
                for k, f in r.finish.items() if f in ("stop", "length") and k not in r.cancelled]

    def alone(self, r: Request) -> list[list[int]]:
        """The request's samples run alone on a scheduler of their own."""
        sched = _C.Scheduler(self.model._engine)
        sched.add_request(r.prompt, **r.kwargs())
        out: dict[int, list[int]] = {k: [] for k in range(r.n)}
        while sched.has_unfinished():
            for _rid, k, tokens, *_ in sched.step():
                out[k] += tokens
        return [out[k] for k in range(r.n)]
