"""The FastAPI app: OpenAI-compatible routes over one EngineLoop, the metrics, and the chat page.

  POST /v1/chat/completions, POST /v1/completions   (API key when configured)
  GET  /v1/models                                   (API key when configured)
  GET  /health, GET /metrics, GET / (the chat page; static/)
Errors always carry OpenAI's body {"error": {"message", "type", "param", "code"}}: 400 for a bad
request, 401 for a wrong or missing key, 404 for an unknown model or route, 413 for a body over
max_body_bytes (read no further), 503 with Retry-After when the queue is full."""
from __future__ import annotations

import asyncio
import hmac
import json
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine_loop import EngineLoop, QueueFull
from .event_relay import EventRelay
from .lifecycle import Exchange, respond
from .media import MediaError, MediaPolicy, fetch_image
from .metrics import Metrics
from .protocol import (ChatCompletionRequest, CompletionRequest, ProtocolError, error_body, image_urls,
                       messages_for_template)

STATIC = os.path.join(os.path.dirname(__file__), "static")
RETRY_AFTER_S = 1


@dataclass
class ServerConfig:
    served_model_name: str
    max_model_len: int
    api_key: str | None = None
    max_num_seqs: int = 16
    max_waiting: int = 64          # requests queued beyond max_num_seqs before 503
    media: MediaPolicy = field(default_factory=MediaPolicy)
    max_body_bytes: int = 64 << 20  # a request body larger than this is refused with 413


def _validation_message(e: ValidationError) -> tuple[str, str | None]:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()) if not str(x).startswith("function-after"))
    msg = str(err.get("msg", "invalid value"))
    text = f"{loc}: {msg}" if loc else msg
    if len(e.errors()) > 1:
        text += f" (and {len(e.errors()) - 1} more problems)"
    return text[:500], loc or None


def create_app(model, config: ServerConfig) -> FastAPI:
    metrics = Metrics(config.served_model_name)
    engine = EngineLoop(model, metrics, max_num_seqs=config.max_num_seqs, max_waiting=config.max_waiting,
                        max_model_len=config.max_model_len)

    relays: list[EventRelay] = []  # the one relay, created on the event loop it wakes

    @asynccontextmanager
    async def lifespan(app):
        relays.append(EventRelay(asyncio.get_running_loop()))
        relays[0].start()
        engine.start()
        yield
        engine.stop()
        relays[0].stop()

    app = FastAPI(title="llama4_native", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.metrics, app.state.config = engine, metrics, config
    started = int(time.time())

    def error(status: int, message: str, kind: str = "invalid_request_error", param=None, code=None,
              headers=None) -> JSONResponse:
        return JSONResponse(error_body(message, kind, param, code), status_code=status, headers=headers)

    @app.exception_handler(ProtocolError)
    async def _protocol_error(request, e: ProtocolError):
        return error(e.status, str(e), e.kind, e.param, e.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        return error(e.status_code, str(e.detail), "not_found_error" if e.status_code == 404 else
                     "invalid_request_error")

    async def read_body(request: Request) -> bytes:
        """The body, or 413 as soon as it is known to exceed the limit (Content-Length first, then
        while reading: a chunked body has none), so memory never grows with what a client sends."""
        limit = config.max_body_bytes
        too_large = ProtocolError(f"the request body is larger than this server's limit of {limit} bytes",
                                  status=413, code="request_too_large")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    async def parse(request: Request, kind):
        raw = await read_body(request)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ProtocolError(f"the request body is not valid JSON ({type(e).__name__})") from None
        except RecursionError:
            raise ProtocolError("the request body is not valid JSON (nested too deeply)") from None
        if not isinstance(body, dict):
            raise ProtocolError("the request body must be a JSON object")
        try:
            req = kind.model_validate(body)
        except ValidationError as e:
            message, param = _validation_message(e)
            raise ProtocolError(message, param=param) from None
        if req.model != config.served_model_name:
            raise ProtocolError(f"the model {req.model[:100]!r} does not exist; this server serves "
                                f"{config.served_model_name!r}", status=404, param="model",
                                code="model_not_found", kind="not_found_error")
        return req

    async def run(request: Request, req, prompts: list, chat: bool):
        try:
            params = req.sampling(req.logprob_count(), None, model.default_stop_ids())
        except (ValueError, TypeError) as e:
            raise ProtocolError(str(e)[:500]) from None
        ex = Exchange(engine, relays[0], prompts, params, req.token_limit())
        try:
            ex.submit()
        except QueueFull as e:
            return error(503, f"{e}; retry later", "server_error", code="queue_full",
                         headers={"Retry-After": str(RETRY_AFTER_S)})
        except RuntimeError as e:
            return error(503, str(e), "server_error")
        await ex.admitted()
        return await respond(ex, request, chat=chat, stream=req.stream, include_usage=req.include_usage,
                             model_name=config.served_model_name, tokenizer=model.tokenizer,
                             want_logprobs=req.logprob_count() is not None)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await parse(request, ChatCompletionRequest)
        images = {}
        for k, url in enumerate(image_urls(req.messages)):
            try:
                images[k] = await fetch_image(url, config.media)
            except MediaError as e:
                raise ProtocolError(str(e), param="messages") from None
        return await run(request, req, [messages_for_template(req.messages, images)], chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = await parse(request, CompletionRequest)
        return await run(request, req, req.prompts(), chat=False)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": config.served_model_name, "object": "model", "created": started,
                                            "owned_by": "llama4_native", "root": model.path,
                                            "max_model_len": config.max_model_len}]}

    @app.get("/health")
    async def health():
        if engine.healthy:
            return Response(status_code=200)
        return error(503, f"the engine loop is not running: {engine.fatal or 'stopped'}", "server_error")

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/")
    async def page():
        return FileResponse(os.path.join(STATIC, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_Guard, api_key=config.api_key, metrics=metrics)
    return app


class _Guard:
    """Plain ASGI middleware on /v1/: the API key check (401) and the request counter by endpoint
    and status. (Not BaseHTTPMiddleware, which would get between a stream and its client.)"""

    ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/models")

    def __init__(self, app, api_key: str | None, metrics: Metrics):
        self.app, self.metrics = app, metrics
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in self.ENDPOINTS else "other"
        if self.expected is not None:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                self.metrics.requests.labels(endpoint, "401").inc()
                response = JSONResponse(error_body("invalid or missing API key (Authorization: Bearer KEY)",
                                                   "authentication_error", code="invalid_api_key"),
                                        status_code=401)
                return await response(scope, receive, send)

        async def counted(message):
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(endpoint, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)
