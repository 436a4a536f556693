"""The one thread that owns the model. HTTP handlers hand it Jobs through a thread-safe inbox and
receive events through each Job's `emit` callback; nothing else touches the model or the
scheduler's step().

Per iteration: admit the inbox's new jobs (prompt -> ids and image features, here because the
vision tower is the model's too; then Scheduler.add_request) and apply cancellations; run one
Scheduler.step() (continuous batching: all running requests together); turn each output into text
with the same per-sample state generate() uses (generate._Sample / advance: detokenizing, stop
strings, logprobs); publish the engine's state to the metrics. Idle, it sleeps until woken.

Events a job receives, in order: Accepted (or Failed), then Output per step per sample, the last
of each sample with its finish_reason; or Failed at any point (the request is over then)."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import _C
from ..attention import CacheFullError
from ..generate import TokenLogprobs, _fallback, _Sample, advance
from ..prompts import encode_with_images, prompt_images
from ..sampling_params import SamplingParams
from .metrics import Metrics

MAX_ERROR_CHARS = 300  # error messages never echo kilobytes of the request


class QueueFull(RuntimeError):
    """More requests in flight than the server admits (-> 503 with Retry-After)."""


@dataclass
class Accepted:
    prompt_tokens: int


@dataclass
class Output:
    sample: int
    token_ids: list[int]
    text: str
    logprobs: list[TokenLogprobs] | None
    finish_reason: str | None


@dataclass
class Failed:
    status: int
    message: str


@dataclass(eq=False)
class Job:
    prompt: Any                       # a string, token ids, or chat messages (images inside)
    params: SamplingParams            # the request's (unset fields: the model's defaults)
    emit: Callable[[object], None]    # called from the loop thread; must not block
    max_tokens: int | None = None     # None: up to max_model_len
    arrival: float = field(default_factory=time.perf_counter)
    # loop-thread state
    rid: int | None = None
    samples: list = field(default_factory=list)
    done: int = 0
    closed: bool = False


def _short(msg: str) -> str:
    return msg if len(msg) <= MAX_ERROR_CHARS else msg[:MAX_ERROR_CHARS] + f"... ({len(msg)} characters)"


class EngineLoop:
    def __init__(self, model, metrics: Metrics, *, max_num_seqs: int, max_waiting: int, max_model_len: int):
        self.model, self.metrics, self.max_model_len = model, metrics, max_model_len
        self.scheduler = _C.Scheduler(model._engine, max_batch=max_num_seqs)
        self.capacity = max_num_seqs + max_waiting
        self._defaults = _fallback(model, {})  # generation_config.json, then greedy
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0               # submitted and not yet over (any thread reads it)
        self._jobs: dict[int, Job] = {}   # admitted, by request id (loop thread only)
        self._stopping = False
        self.fatal: str | None = None     # set when step() failed: the server is unhealthy then
        self._thread = threading.Thread(target=self._run, name="llama4-engine-loop", daemon=True)

    # ---- any thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)

    @property
    def healthy(self) -> bool:
        return self._thread.is_alive() and self.fatal is None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, job: Job) -> None:
        with self._lock:
            if self.fatal is not None:
                raise RuntimeError(f"the engine loop has stopped: {self.fatal}")
            if self._in_flight >= self.capacity:
                raise QueueFull(f"the server has {self._in_flight} requests in flight (its limit)")
            self._in_flight += 1
        self._inbox.put(("add", job))
        self._wake.set()

    def cancel(self, job: Job) -> None:
        """Ends the job (a client went away): its pages are freed at the next step."""
        self._inbox.put(("cancel", job))
        self._wake.set()

    # ---- the loop thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            if not self.scheduler.has_unfinished() and self._inbox.empty():
                self._publish()
                self._wake.wait()
                self._wake.clear()
            self._drain_inbox()
            if not self.scheduler.has_unfinished():  # (a pending cancellation counts: it frees pages)
                continue
            try:
                outputs = self.scheduler.step()
            except Exception as e:  # the engine itself failed: every request ends, /health says so
                self.fatal = _short(f"{type(e).__name__}: {e}")
                for job in list(self._jobs.values()):
                    self._close(job, Failed(500, f"the engine failed: {self.fatal}"))
                self._publish()
                return
            for out in outputs:
                self._route(*out)
            self._publish()
        for job in list(self._jobs.values()):
            self._close(job, Failed(503, "the server is shutting down"))

    def _drain_inbox(self) -> None:
        while True:
            try:
                what, job = self._inbox.get_nowait()
            except queue.Empty:
                return
            if what == "add":
                self._admit(job)
            elif not job.closed:
                if job.rid is not None:
                    self._cancel_request(job.rid)
                self._close(job, None)

    def _admit(self, job: Job) -> None:
        try:
            (images,) = prompt_images([job.prompt], None, batched=False)  # a chat's image items
            ids, features = encode_with_images(self.model, job.prompt, images)
            params = self._checked(job, len(ids))
            kw = params.engine_kwargs()
            job.rid = self.scheduler.add_request(ids, image_features=features, **kw)
        except (ValueError, TypeError, CacheFullError) as e:
            self._close(job, Failed(400, _short(str(e))))
            return
        except Exception as e:  # a request must never take the loop down
            self._close(job, Failed(500, _short(f"{type(e).__name__}: {e}")))
            return
        job.samples = [_Sample(self.model, 0, k, len(ids), kw["stop_token_ids"], params.stop_strings, job.arrival)
                       for k in range(kw["n"])]
        self._jobs[job.rid] = job
        self.metrics.prompt_tokens.labels(self.metrics.name).inc(len(ids))
        job.emit(Accepted(len(ids)))

    def _checked(self, job: Job, prompt_len: int) -> SamplingParams:
        room = self.max_model_len - prompt_len
        if room < 1:
            raise ValueError(f"the prompt has {prompt_len} tokens; this server's max_model_len is "
                             f"{self.max_model_len}, leaving no room for new tokens")
        if job.max_tokens is not None and job.max_tokens > room:
            raise ValueError(f"max_tokens is {job.max_tokens}, but the prompt has {prompt_len} tokens and "
                             f"max_model_len is {self.max_model_len}: at most {room} new tokens fit")
        max_new = job.max_tokens if job.max_tokens is not None else room
        return SamplingParams(max_new_tokens=max_new).merged(job.params.merged(self._defaults))

    def _route(self, rid, k, tokens, logprobs, logits, finish, error) -> None:
        job = self._jobs.get(rid)
        if job is None or job.closed:
            return
        s = job.samples[k]
        if s.finish:  # ended by a stop string already; the scheduler's "cancelled" echo
            return
        if finish == "error":
            self._cancel_request(rid)
            self._close(job, Failed(500, _short(f"generation failed: {error}")))
            return
        now = time.perf_counter()
        name = self.metrics.name
        if s.t_first is None:
            self.metrics.ttft.labels(name).observe(now - job.arrival)
        else:
            self.metrics.itl.labels(name).observe(now - s.t_last)
        s.t_last = now
        piece, finish = advance(self.scheduler, rid, s, tokens, logprobs, logits, finish)
        self.metrics.generation_tokens.labels(name).inc(len(tokens))
        job.emit(Output(k, list(tokens), piece, s.logprobs[-len(tokens):] if logprobs else None,
                        finish or None))
        if finish:
            self.metrics.finished.labels(name, finish).inc()
            job.done += 1
            if job.done == len(job.samples):
                self.metrics.e2e.labels(name).observe(now - job.arrival)
                self._close(job, None)

    def _cancel_request(self, rid: int) -> None:
        self.scheduler.cancel(rid)

    def _close(self, job: Job, event) -> None:
        """The job is over (finished, failed or cancelled): no more events after `event`."""
        if job.closed:
            return
        job.closed = True
        if job.rid is not None:
            self._jobs.pop(job.rid, None)
        with self._lock:
            self._in_flight -= 1
        if event is not None:
            job.emit(event)

    def _publish(self) -> None:
        engine = self.model._engine
        self.metrics.engine_state(self.scheduler.stats(), self._inbox.qsize(),
                                  [engine.free_pages(g) for g in (0, 1)], [engine.total_pages(g) for g in (0, 1)])
