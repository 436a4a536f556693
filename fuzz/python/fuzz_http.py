"""atheris target: HTTP request bodies through the server's request parsing, in process (the
FastAPI app over httpx's ASGI transport; no socket). Bodies are raw bytes or JSON objects built
from the OpenAI fields with random values, sent to /v1/chat/completions and /v1/completions of a
server on a tiny checkpoint (real tokenizer, random weights; short generations). Every answer is a
200 or a 4xx/503 with OpenAI's error body whose message is not empty; never a 500 or a hang."""
from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import tempfile

import atheris

import httpx
import torch

with atheris.instrument_imports(include=["llama4_native"]):
    import llama4_native as l4
    from llama4_native.server.app import ServerConfig, create_app
    from llama4_native.tiny import make_tiny

from structures import MESSAGE_KEYS, messages, text, value
from typed_errors import run

FIELDS = ("model", "messages", "prompt", "n", "temperature", "top_p", "top_k", "min_p", "seed", "stop",
          "stop_token_ids", "max_tokens", "max_completion_tokens", "stream", "stream_options", "logprobs",
          "top_logprobs", "ignore_eos", "repetition_penalty", "presence_penalty", "logit_bias", "echo",
          "include_usage", "tools", "response_format")
ROUTES = ("/v1/chat/completions", "/v1/completions")

torch.set_num_threads(1)
_folder = tempfile.mkdtemp(prefix="llama4_fuzz_http_")
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
make_tiny(_folder)
APP = create_app(l4.load(_folder, dtype="float32"), ServerConfig(served_model_name="tiny", max_model_len=48))
LOOP = asyncio.new_event_loop()
LOOP.run_until_complete(APP.router.lifespan_context(APP).__aenter__())  # the engine loop and its relay
CLIENT = httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://fuzz")


def body_from(fdp: atheris.FuzzedDataProvider) -> bytes:
    """A JSON object of OpenAI fields with random values (kept short where it costs time)."""
    body = {"model": "tiny" if fdp.ConsumeIntInRange(0, 7) else value(fdp)}
    if fdp.ConsumeBool():
        body["messages"] = messages(fdp)
    else:
        body["prompt"] = text(fdp) if fdp.ConsumeBool() else value(fdp)
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        body[FIELDS[fdp.ConsumeIntInRange(0, len(FIELDS) - 1)]] = value(fdp, MESSAGE_KEYS)
    if isinstance(body.get("max_tokens"), int):  # keep generations short: the parsing is under test
        body["max_tokens"] = min(body["max_tokens"], 4)
    if isinstance(body.get("n"), int):
        body["n"] = min(body["n"], 4)
    try:
        return json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return b"{}"


def test_one_input(data: bytes) -> None:
    """data[0]: bit 0 the route, bit 1 the body: the raw bytes data[1:] (seeds are requests as sent)
    or a JSON object built from them."""
    if not data:
        return
    route = ROUTES[data[0] & 1]
    body = body_from(atheris.FuzzedDataProvider(data[1:])) if data[0] & 2 else data[1:]
    r = LOOP.run_until_complete(asyncio.wait_for(
        CLIENT.post(route, content=body, headers={"content-type": "application/json"}), 60))
    if r.status_code == 200:
        return
    assert r.status_code in (400, 404, 413, 422, 503), (r.status_code, r.text[:300], body[:300])
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"], (r.text[:300], body[:300])


if __name__ == "__main__":
    run(test_one_input)
