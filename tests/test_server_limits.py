"""The server's request-body bounds, in process (the app over httpx's ASGI transport): a body over
max_body_bytes is refused with 413 whether it declares its length or streams chunks without one,
a body nested too deeply for Python's JSON parser is a 400 (the serve flag --max-request-bytes:
test_server_cli)."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import llama4_native as l4
from llama4_native.server.app import ServerConfig, create_app

LIMIT = 4096


@pytest.fixture(scope="module")
def post(real_vocab_checkpoint):
    """post(body, route=..., **headers) -> Response, on one event loop that runs the app's lifespan
    (the engine loop and the event relay live as long as the module's tests)."""
    app = create_app(l4.load(real_vocab_checkpoint, dtype="float32"),
                     ServerConfig(served_model_name="tiny", max_model_len=64, max_body_bytes=LIMIT))
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    def send(body, route="/v1/completions", **headers) -> httpx.Response:
        return loop.run_until_complete(
            client.post(route, content=body, headers={"content-type": "application/json", **headers}))

    yield send
    loop.run_until_complete(client.aclose())
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
    loop.close()


def small_request(pad: int = 0) -> bytes:
    # padded in a field the prompt does not see (OpenAI's end-user id)
    return json.dumps({"model": "tiny", "prompt": "Hi", "max_tokens": 1, "user": "u" * pad}).encode()


def test_body_at_the_limit_is_served_one_byte_over_is_413(post):
    base = len(small_request())
    at = small_request(LIMIT - base)
    assert len(at) == LIMIT
    assert post(at).status_code == 200
    r = post(small_request(LIMIT - base + 1))
    assert r.status_code == 413
    assert r.json()["error"] == {"message": f"the request body is larger than this server's limit of {LIMIT} bytes",
                                 "type": "invalid_request_error", "param": None, "code": "request_too_large"}


def test_declared_length_is_refused_before_reading(post):
    async def never():  # a body that would block forever if it were read
        await asyncio.Event().wait()
        yield b""
    r = post(never(), **{"content-length": str(LIMIT + 1)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_chunked_body_without_length_is_cut_at_the_limit(post):
    sent = []

    async def chunks():
        for _ in range(100):  # 100 x 1 kB: the server must stop reading after ~4 kB
            sent.append(1)
            yield b"x" * 1024
    r = post(chunks())
    assert r.status_code == 413
    assert "content-length" not in r.request.headers  # really streamed (transfer-encoding: chunked)
    assert len(sent) <= LIMIT // 1024 + 2, len(sent)  # it stopped reading just past the limit


def test_deeply_nested_body_is_a_400_not_a_500(post):
    r = post(b"[" * 4000)  # under the byte limit; deeper than Python's recursion limit
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "the request body is not valid JSON (nested too deeply)"

