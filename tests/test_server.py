"""`llama4-native serve` through the official openai client, against a server on 127.0.0.1 (a free
port; loopback only, bounded request counts). References come from in-process generate() on a
second Model of the same checkpoint, so the server's engine is never driven from two threads."""
from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import json
import time

import httpx
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

import llama4_native as l4
from server_harness import ServerThread

N_NEW = 6
MSG = [{"role": "user", "content": "Say something."}]


@pytest.fixture(scope="module")
def checkpoint(real_vocab_checkpoint):
    return real_vocab_checkpoint


@pytest.fixture(scope="module")
def reference(checkpoint):
    return l4.load(checkpoint, dtype="bfloat16")


@pytest.fixture(scope="module")
def server(checkpoint):
    with ServerThread(l4.load(checkpoint, dtype="bfloat16"), max_model_len=4096) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def greedy(reference, prompt, n=N_NEW, **kw):
    return reference.generate(prompt, max_new_tokens=n, temperature=0.0, **kw)


def png_data_url(seed: int = 0) -> tuple[str, bytes]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode(), data


def metrics(server) -> dict:
    """{sample name with labels: value} of /metrics, read with prometheus_client's parser."""
    out = {}
    for fam in text_string_to_metric_families(httpx.get(server.url + "/metrics").text):
        for s in fam.samples:
            key = s.name + "".join(f"[{k}={v}]" for k, v in sorted(s.labels.items()) if k != "model_name")
            out[key] = s.value
    return out


def wait_idle(server, timeout=30):
    """Until no request runs and every KV page is free again (the engine loop publishes both)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = metrics(server)
        if (m["llama4_native_num_requests_running"] == 0 and
                all(m[f"llama4_native_kv_cache_free_pages[group={g}]"] ==
                    m[f"llama4_native_kv_cache_total_pages[group={g}]"] for g in (0, 1))):
            return m
        time.sleep(0.05)
    raise AssertionError(f"the server did not become idle: {metrics(server)}")


def test_chat_matches_generate_with_usage(client, reference):
    ref = greedy(reference, MSG)
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=N_NEW, temperature=0)
    assert r.choices[0].message.content == ref.text
    assert r.choices[0].finish_reason == ref.finish_reason
    prompt_len = len(reference.tokenizer.apply_chat_template(MSG, add_generation_prompt=True))
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt_len, len(ref.token_ids))
    assert r.usage.total_tokens == prompt_len + len(ref.token_ids)
    assert r.object == "chat.completion" and r.model == "tiny"


def test_streaming_chat_pieces_join_to_the_answer_and_end_with_done(server, client, reference):
    ref = greedy(reference, MSG)
    chunks = list(client.chat.completions.create(model="tiny", messages=MSG, max_tokens=N_NEW, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ref.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == N_NEW
    # The wire format itself: SSE events, the last one [DONE].
    body = {"model": "tiny", "messages": MSG, "max_tokens": 2, "temperature": 0, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_completions_text_and_token_prompts(client, reference):
    ids = [200000, 1000, 2000, 3000]
    ref = reference.generate(input_ids=ids, max_new_tokens=N_NEW, temperature=0.0)
    r = client.completions.create(model="tiny", prompt=ids, max_tokens=N_NEW, temperature=0)
    assert r.choices[0].text == ref.text and r.usage.prompt_tokens == len(ids)
    refs = [greedy(reference, p) for p in ("Hello", "The sky is")]
    r = client.completions.create(model="tiny", prompt=["Hello", "The sky is"], max_tokens=N_NEW, temperature=0)
    assert [c.text for c in sorted(r.choices, key=lambda c: c.index)] == [x.text for x in refs]
    assert r.usage.completion_tokens == sum(len(x.token_ids) for x in refs)


def test_image_as_data_url(client, reference):
    url, data = png_data_url()
    ref = greedy(reference, [{"role": "user", "content": [{"type": "image", "image": data},
                                                         {"type": "text", "text": "What is this?"}]}])
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": "What is this?"}]}]
    r = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=N_NEW, temperature=0)
    assert r.choices[0].message.content == ref.text
    assert r.usage.prompt_tokens == ref.prompt_tokens  # the image's patch tokens are prompt tokens
    text_only = greedy(reference, [{"role": "user", "content": "What is this?"}])
    assert ref.prompt_tokens > text_only.prompt_tokens + 100


def test_n_samples_and_seed_reproducibility(client, reference):
    kw = dict(model="tiny", messages=MSG, max_tokens=N_NEW, temperature=1.0, n=2, seed=7)
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    texts = [c.message.content for c in sorted(a.choices, key=lambda c: c.index)]
    assert texts == [c.message.content for c in sorted(b.choices, key=lambda c: c.index)]
    ref = reference.generate(MSG, max_new_tokens=N_NEW, temperature=1.0, n=2, seed=7)
    assert texts == [s.text for s in ref.samples]
    assert texts[0] != texts[1]  # two draws from a 202k-token random model
    assert a.usage.completion_tokens == sum(len(s.token_ids) for s in ref.samples)
    other = client.chat.completions.create(**{**kw, "seed": 8})
    assert [c.message.content for c in sorted(other.choices, key=lambda c: c.index)] != texts


def test_several_completion_prompts_draw_with_seed_plus_index_as_generate_does(client, reference):
    r = client.completions.create(model="tiny", prompt=["Hello", "Hello"], max_tokens=N_NEW, temperature=1.0,
                                  seed=11)
    texts = [c.text for c in sorted(r.choices, key=lambda c: c.index)]
    ref = reference.generate(["Hello", "Hello"], max_new_tokens=N_NEW, temperature=1.0, seed=11)
    assert texts == [x.text for x in ref]
    assert texts[0] != texts[1]  # equal prompts, different seeds (11 and 12)


def test_logprobs_chat_and_completions(client, reference):
    ref = greedy(reference, MSG, logprobs=3)
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=N_NEW, temperature=0,
                                       logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == len(ref.logprobs)
    tok = reference.tokenizer
    for got, want in zip(content, ref.logprobs):
        assert bytes(got.bytes) == tok.token_bytes(want.token_id)
        assert got.logprob == pytest.approx(want.logprob, abs=1e-6)
        assert [bytes(t.bytes) for t in got.top_logprobs] == [tok.token_bytes(i) for i, _ in want.top]
        assert [t.logprob for t in got.top_logprobs] == pytest.approx([lp for _, lp in want.top], abs=1e-6)
        assert got.top_logprobs[0].logprob == pytest.approx(got.logprob, abs=1e-6)  # greedy: the best
        assert got.logprob < 0
    c = client.completions.create(model="tiny", prompt="Hello", max_tokens=3, temperature=0, logprobs=2)
    lp = c.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 3
    assert all(len(t) <= 2 for t in lp.top_logprobs) and "".join(lp.tokens) == c.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(3)]


def test_stop_string_cuts_the_answer(client, reference):
    full = greedy(reference, "The", n=12).text
    stop = full[5:8]
    assert stop and full.find(stop) >= 1
    r = client.completions.create(model="tiny", prompt="The", max_tokens=12, temperature=0, stop=[stop])
    assert r.choices[0].text == full[:full.find(stop)] and r.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(model="tiny", prompt="The", max_tokens=12, temperature=0, stop=stop,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == full[:full.find(stop)]


def test_16_concurrent_streams_equal_each_prompt_alone(server, client, reference):
    prompts = [[{"role": "user", "content": f"Request number {i}: tell me about {i * 7}."}] for i in range(16)]
    alone = [greedy(reference, p).text for p in prompts]

    def stream(p):
        chunks = client.chat.completions.create(model="tiny", messages=p, max_tokens=N_NEW, temperature=0,
                                                stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    wait_idle(server)
    with cf.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(stream, prompts))
    assert got == alone
    assert len(set(alone)) > 1


def test_malformed_requests_get_4xx_and_the_server_keeps_serving(server, client):
    url = server.url + "/v1/chat/completions"
    good = {"model": "tiny", "messages": MSG, "max_tokens": 2}
    cases = [
        (b"{not json", 400), (b"[1, 2]", 400), (b"\xff\xfe", 400),
        ({"messages": MSG}, 400),                                  # no model
        ({**good, "model": "gpt-4"}, 404),                         # unknown model
        ({**good, "messages": []}, 400),
        ({**good, "messages": [{"role": "wizard", "content": "x"}]}, 400),
        ({**good, "temperature": -1}, 400), ({**good, "temperature": "hot"}, 400),
        ({**good, "top_p": 0}, 400), ({**good, "n": 0}, 400), ({**good, "max_tokens": 0}, 400),
        ({**good, "presence_penalty": 3}, 400), ({**good, "top_logprobs": 3}, 400),
        ({**good, "top_logprobs": 50, "logprobs": True}, 400), ({**good, "stop": ["a"] * 5}, 400),
        ({**good, "seed": -1}, 400), ({**good, "max_tokens": 10**6}, 400),
        ({**good, "messages": [{"role": "user", "content": "x " * 4200}]}, 400),  # past max_model_len
        ({**good, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, 400),
        ({**good, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 400),
    ]
    for body, status in cases:
        r = httpx.post(url, content=body) if isinstance(body, bytes) else httpx.post(url, json=body, timeout=60)
        assert r.status_code == status, (body, r.text)
        err = r.json()["error"]
        assert err["message"] and err["type"] and len(err["message"]) < 1000
    r = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": [10**9], "max_tokens": 2})
    assert r.status_code == 400 and "vocabulary" in r.json()["error"]["message"]
    assert httpx.get(server.url + "/v1/nothing").status_code == 404
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=MSG, max_tokens=2, temperature=5)
    assert client.chat.completions.create(model="tiny", messages=MSG, max_tokens=2).choices[0].message.content
    assert httpx.get(server.url + "/health").status_code == 200
    wait_idle(server)


def test_dropped_client_frees_its_pages(server):
    before = wait_idle(server)
    generated0 = before['llama4_native_generation_tokens_total']
    body = {"model": "tiny", "messages": MSG, "max_tokens": 4000, "temperature": 0, "stream": True,
            "ignore_eos": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]  # a few tokens in
        assert any('"content"' in line for line in got)
        mid = metrics(server)
        assert mid["llama4_native_num_requests_running"] == 1
        assert mid["llama4_native_kv_cache_free_pages[group=1]"] < mid["llama4_native_kv_cache_total_pages[group=1]"]
    after = wait_idle(server)  # every page back in the pool
    assert after['llama4_native_generation_tokens_total'] - generated0 < 4000  # cancelled, not run to the end
    # A non-streaming client that gives up is noticed too.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=1.0)
    final = wait_idle(server)
    assert final['llama4_native_generation_tokens_total'] - after['llama4_native_generation_tokens_total'] < 4000


def test_metrics_parse_and_count(server, client):
    client.chat.completions.create(model="tiny", messages=MSG, max_tokens=2)
    m = metrics(server)
    assert m["llama4_native_requests_total[endpoint=/v1/chat/completions][status=200]"] >= 1
    assert m["llama4_native_requests_total[endpoint=/v1/chat/completions][status=400]"] >= 1  # the malformed ones
    assert m["llama4_native_prompt_tokens_total"] > 0 and m["llama4_native_generation_tokens_total"] >= 2
    assert m["llama4_native_time_to_first_token_seconds_count"] >= 1
    assert m["llama4_native_inter_token_latency_seconds_count"] >= 1
    assert 0.0 <= m["llama4_native_kv_cache_usage_ratio"] <= 1.0
    assert "llama4_native_num_requests_waiting" in m


def test_models_and_health(server, client):
    models = client.models.list()
    assert [x.id for x in models.data] == ["tiny"]
    assert httpx.get(server.url + "/health").status_code == 200
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "chat.js" in page.text
    assert "EventSource" not in page.text and "http" not in page.text.split("<body>")[1].replace("http-equiv", "")


def test_api_key(checkpoint):
    with ServerThread(l4.load(checkpoint, dtype="bfloat16"), api_key="sekret") as s:
        bad = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="tiny", messages=MSG, max_tokens=2)
        r = httpx.post(s.url + "/v1/completions", json={"model": "tiny", "prompt": "x"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert httpx.get(s.url + "/v1/models").status_code == 401
        good = openai.OpenAI(base_url=s.url + "/v1", api_key="sekret", max_retries=0)
        assert good.chat.completions.create(model="tiny", messages=MSG, max_tokens=2).usage.completion_tokens == 2
        assert httpx.get(s.url + "/health").status_code == 200


def test_full_queue_answers_503_with_retry_after(checkpoint):
    with ServerThread(l4.load(checkpoint, dtype="bfloat16"), max_num_seqs=1, max_waiting=0) as s:
        body = {"model": "tiny", "messages": MSG, "max_tokens": 300, "stream": True, "ignore_eos": True}
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=60) as first:
            lines = first.iter_lines()  # held: a dropped iterator would close the stream
            next(lines)
            r = httpx.post(s.url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 2})
            assert r.status_code == 503 and r.headers["retry-after"] == "1", (s.engine.in_flight, r.text)
            assert r.json()["error"]["code"] == "queue_full"
        wait_idle(s)
        ok = httpx.post(s.url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 2}, timeout=60)
        assert ok.status_code == 200
