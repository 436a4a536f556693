"""One HTTP request's life on the engine loop: submit its jobs (one per prompt; choice i*n + k is
sample k of prompt i), wait until the loop admitted them (so that a bad prompt still gets a 400,
not a broken stream), then stream SSE chunks or collect the whole response. A client that goes
away cancels its jobs, which frees their KV pages at the loop's next step."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .engine_loop import Accepted, EngineLoop, Failed, Job, Output
from .event_relay import EventRelay
from .protocol import ProtocolError, error_body
from .responses import Choice, ChunkWriter, chat_response, completion_response, new_id, sse

DISCONNECT_POLL_S = 0.5


class Exchange:
    def __init__(self, engine: EngineLoop, relay: EventRelay, prompts: list, params, max_tokens: int | None):
        self.engine = engine
        self.events: asyncio.Queue = asyncio.Queue()

        def emitter(i: int):
            def emit(event) -> None:  # runs on the engine loop thread; the relay wakes the event loop
                relay.post(self.events.put_nowait, (i, event))
            return emit

        # several prompts share the request's parameters; a seed becomes seed + i, as in generate()
        self.jobs = [Job(p, params.for_prompt(i), emitter(i), max_tokens) for i, p in enumerate(prompts)]
        self.n = params.n or 1
        self.prompt_tokens = 0
        self._early: list = []
        self._checked = time.monotonic()  # the last disconnect check

    def submit(self) -> None:
        """QueueFull propagates (nothing stays submitted then)."""
        done = []
        try:
            for job in self.jobs:
                self.engine.submit(job)
                done.append(job)
        except BaseException:
            for job in done:
                self.engine.cancel(job)
            raise

    def cancel(self) -> None:
        for job in self.jobs:
            self.engine.cancel(job)

    async def admitted(self) -> None:
        """Waits for every job's Accepted; a Failed one cancels the rest and raises ProtocolError."""
        pending = set(range(len(self.jobs)))
        while pending:
            i, event = await self.events.get()
            if isinstance(event, Accepted):
                self.prompt_tokens += event.prompt_tokens
                pending.discard(i)
            elif isinstance(event, Failed):
                self.cancel()
                raise ProtocolError(_prompt_label(i, len(self.jobs)) + event.message, status=event.status,
                                    kind="invalid_request_error" if event.status < 500 else "server_error")
            else:  # an output of a prompt admitted already: handed out first by next_event
                self._early.append((i, event))

    def choices(self) -> list[Choice]:
        return [Choice(i) for i in range(len(self.jobs) * self.n)]

    async def next_event(self, request: Request | None):
        """The next (prompt index, event). With `request`, checks at least every DISCONNECT_POLL_S
        whether the client is still there (ConnectionResetError when it is not), also while events
        keep coming."""
        if self._early:
            return self._early.pop(0)
        while True:
            if request is not None and time.monotonic() - self._checked > DISCONNECT_POLL_S:
                self._checked = time.monotonic()
                if await request.is_disconnected():
                    raise ConnectionResetError("the client went away")
            try:
                return await asyncio.wait_for(self.events.get(), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                pass


def _prompt_label(i: int, count: int) -> str:
    return f"prompt {i}: " if count > 1 else ""


async def respond(ex: Exchange, request: Request, *, chat: bool, stream: bool, include_usage: bool,
                  model_name: str, tokenizer, want_logprobs: bool):
    """Submitted and admitted already: the whole response, or the SSE stream."""
    rid = new_id("chatcmpl" if chat else "cmpl")
    if stream:
        return _SSEResponse(ex, _stream(ex, chat, rid, model_name, tokenizer, include_usage))
    choices = ex.choices()
    try:
        finished = 0
        while finished < len(choices):
            i, event = await ex.next_event(request)
            if isinstance(event, Failed):
                return JSONResponse(error_body(_prompt_label(i, len(ex.jobs)) + event.message,
                                               "server_error" if event.status >= 500 else "invalid_request_error"),
                                    status_code=event.status)
            c = choices[i * ex.n + event.sample]
            c.text += event.text
            c.tokens += len(event.token_ids)
            if event.logprobs:
                c.logprobs += event.logprobs
            if event.finish_reason:
                c.finish_reason = event.finish_reason
                finished += 1
    except ConnectionResetError:  # nobody is listening: the jobs are cancelled below
        return Response(status_code=499)
    finally:
        ex.cancel()  # no-op for finished jobs; frees the pages of abandoned ones
    build = chat_response if chat else completion_response
    return JSONResponse(build(rid, model_name, choices, ex.prompt_tokens, tokenizer, want_logprobs))


class _SSEResponse(StreamingResponse):
    """Cancels the exchange's jobs however the response ends, even when the client went away
    before the stream's first chunk (the generator's own `finally` never runs then)."""

    def __init__(self, ex: Exchange, body: AsyncIterator[str]):
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.exchange = ex

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.exchange.cancel()


async def _stream(ex: Exchange, chat: bool, rid: str, model_name: str, tokenizer,
                  include_usage: bool) -> AsyncIterator[str]:
    """Starlette cancels this generator when the client disconnects; `finally` then cancels the jobs."""
    writer = ChunkWriter(chat, rid, model_name, tokenizer)
    total = len(ex.jobs) * ex.n
    completion_tokens = finished = 0
    try:
        if chat:
            for index in range(total):
                yield writer.role(index)
        while finished < total:
            i, event = await ex.next_event(None)
            if isinstance(event, Failed):
                yield sse(error_body(_prompt_label(i, len(ex.jobs)) + event.message,
                                     "server_error" if event.status >= 500 else "invalid_request_error"))
                break
            assert isinstance(event, Output)
            completion_tokens += len(event.token_ids)
            if event.finish_reason:
                finished += 1
            if event.text or event.logprobs or event.finish_reason:
                yield writer.piece(i * ex.n + event.sample, event.text, event.logprobs, event.finish_reason)
        if include_usage:
            yield writer.usage(ex.prompt_tokens, completion_tokens)
        yield sse("[DONE]")
    finally:
        ex.cancel()
