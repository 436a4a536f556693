"""The C++ scheduler (llama4/scheduler.h) through generate() and _C.Scheduler: preemption by
recompute when the KV cache fills during decode, requests too large for the cache, chunked
prefill, n samples sharing a prefill, cancellation, and that nothing leaks."""
from __future__ import annotations

import json

import pytest
import torch

import llama4_native as l4
from llama4_native import _C

import tiny_checkpoints as tc


def _ids(seed, n, vocab=512):
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.fixture(scope="module")
def short_context(tmp_path_factory):
    """scout_text with the issue's context: 64 positions, chunk 32."""
    folder = tmp_path_factory.mktemp("short_context")
    tc.save_tiny("scout_text", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(max_position_embeddings=64, attention_chunk_size=32)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.fixture(scope="module")
def scout(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    return l4.load(folder, dtype="float32", max_sequences=4)


def _free(model):
    return [model._engine.free_pages(g) for g in (0, 1)]


def test_cache_filling_during_decode_preempts_and_completes(short_context):
    """Four 21-token prompts, 40 new tokens each, in a cache that holds about 100 tokens: the
    batch completes (no endless loop), with each request's greedy tokens equal to running it alone."""
    model = l4.load(short_context, dtype="float32", kv_cache_bytes=163840)
    prompts = [_ids(100 + i, 21) for i in range(4)]
    kw = dict(max_new_tokens=40, temperature=0.0, stop_token_ids=[])
    alone = [model.generate(input_ids=p, **kw).token_ids for p in prompts]
    free_before = _free(model)
    sched = _C.Scheduler(model._engine)
    ids = [sched.add_request(p, max_new_tokens=40) for p in prompts]
    got = {i: [] for i in ids}
    steps = 0
    while sched.has_unfinished():
        for rid, k, tokens, *_ in sched.step():
            got[rid] += tokens
        steps += 1
        assert steps < 1000, "no progress"
    assert [got[i] for i in ids] == alone
    assert all(len(t) == 40 for t in alone)
    assert sched.stats()["preemptions"] > 0  # the cache really was too small for the batch
    assert _free(model) == free_before  # no page leaked
    # And through generate(): the same tokens.
    assert [r.token_ids for r in model.generate(prompts, **kw)] == alone


def test_request_too_large_for_the_cache_raises_and_changes_nothing(short_context):
    model = l4.load(short_context, dtype="float32", kv_cache_bytes=100_000)  # 3 global pages: 48 tokens
    sched = _C.Scheduler(model._engine)
    free = _free(model)
    with pytest.raises(l4.CacheFullError, match="KV cache full"):
        sched.add_request(_ids(1, 45), max_new_tokens=10)  # 54 positions
    assert not sched.has_unfinished() and _free(model) == free
    assert sched.step() == []


def test_chunked_prefill_matches_one_pass(scout):
    """A prompt prefilled in chunks of 5 tokens (mixed with another request's decode) gives the
    greedy tokens of a one-pass prefill."""
    prompt, other = _ids(7, 37), _ids(8, 4)
    want = scout.generate(input_ids=prompt, max_new_tokens=8, temperature=0.0, stop_token_ids=[]).token_ids
    sched = _C.Scheduler(scout._engine, max_batch=2, max_step_tokens=5)
    a = sched.add_request(prompt, max_new_tokens=8)
    b = sched.add_request(other, max_new_tokens=30)
    got = []
    while sched.has_unfinished():
        for rid, _, tokens, *_ in sched.step():
            if rid == a:
                got += tokens
    assert got == want
    assert sched.stats()["steps"] >= 37 // 5


def test_n_samples_share_the_prefill_and_match_separate_requests(scout):
    """Sample k of an n-sample request draws like a request alone with the same seed would draw its
    sample k: pages shared or not, batched or not."""
    prompt = _ids(9, 13)
    res = scout.generate(input_ids=prompt, max_new_tokens=10, temperature=1.0, seed=5, n=3, stop_token_ids=[])
    assert len(res.samples) == 3 and res.samples[0] is res
    tokens = [s.token_ids for s in res.samples]
    assert len({tuple(t) for t in tokens}) == 3  # different draws
    again = scout.generate(input_ids=prompt, max_new_tokens=10, temperature=1.0, seed=5, n=3, stop_token_ids=[],
                           max_batch=1)  # no room to fork: samples 1 and 2 prefill again later
    assert [s.token_ids for s in again.samples] == tokens
    greedy = scout.generate(input_ids=prompt, max_new_tokens=6, temperature=0.0, n=2, stop_token_ids=[])
    assert greedy.samples[0].token_ids == greedy.samples[1].token_ids


def test_identical_prompts_sharing_an_image(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout")
    model = l4.load(folder, dtype="float32")
    from llama4_native.chat import ImageTokens

    model.image_tokens = ImageTokens(patch=499, image=494, start=497, end=498, tile_x=495, tile_y=496)
    img = torch.rand(1, 3, 56, 56, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ids = [1, model.image_tokens.image, 7, 8, 9]
    alone = model.generate(input_ids=ids, images=[img], max_new_tokens=5, temperature=0.0, stop_token_ids=[])
    both = model.generate([ids, ids], images=[[img], [img]], max_new_tokens=5, temperature=0.0, stop_token_ids=[])
    assert [r.token_ids for r in both] == [alone.token_ids] * 2


def test_cancel_frees_pages_and_ends_the_request(scout):
    free = _free(scout)
    sched = _C.Scheduler(scout._engine)
    a = sched.add_request(_ids(11, 20), max_new_tokens=50)
    b = sched.add_request(_ids(12, 20), max_new_tokens=3)
    sched.step()
    assert sched.cancel(a) and not sched.cancel(a) and not sched.cancel(12345)
    seen = set()
    while sched.has_unfinished():
        seen |= {rid for rid, *_ in sched.step()}
    assert seen == {b} and _free(scout) == free
    # The last request cancelled: work remains (its pages) until one more step frees them.
    c = sched.add_request(_ids(13, 20), max_new_tokens=50)
    sched.step()
    assert sched.cancel(c) and sched.has_unfinished() and _free(scout) != free
    assert sched.step() == [] and not sched.has_unfinished() and _free(scout) == free


def test_abandoned_stream_frees_its_pages(scout):
    free = _free(scout)
    stream = scout.generate(input_ids=_ids(13, 9), max_new_tokens=50, temperature=0.0, stream=True,
                            stop_token_ids=[])
    next(stream)
    stream.close()
    assert _free(scout) == free


def test_batch_stream_reports_tokens_and_finish_reasons(scout):
    prompts = [_ids(20, 5), _ids(21, 9)]
    full = scout.generate(prompts, max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    got = {0: [], 1: []}
    finish = {}
    for out in scout.generate(prompts, max_new_tokens=6, temperature=0.0, stop_token_ids=[], stream=True):
        assert isinstance(out, l4.StreamOutput)
        got[out.index] += out.token_ids
        if out.finish_reason:
            finish[out.index] = out.finish_reason
    assert [got[0], got[1]] == [r.token_ids for r in full]
    assert finish == {0: "length", 1: "length"}


def test_per_prompt_sampling_params(scout):
    prompts = [_ids(30, 6), _ids(31, 6)]
    greedy = [scout.generate(input_ids=p, max_new_tokens=5, temperature=0.0, stop_token_ids=[]).token_ids
              for p in prompts]
    outs = scout.generate(prompts, sampling=[l4.SamplingParams(temperature=0.0, max_new_tokens=5),
                                             l4.SamplingParams(temperature=0.0, max_new_tokens=2)],
                          stop_token_ids=[])
    assert outs[0].token_ids == greedy[0] and outs[1].token_ids == greedy[1][:2]
    with pytest.raises(ValueError, match="2 prompts"):
        scout.generate(prompts, sampling=[l4.SamplingParams()])


@pytest.mark.parametrize("T", [1e-38, 1e-45])
def test_temperature_too_small_to_divide_by_is_greedy(scout, T):
    """logits / T overflows float: generate() gives the greedy tokens (not the last vocabulary id)."""
    prompt = _ids(21, 9)
    greedy = scout.generate(input_ids=prompt, max_new_tokens=8, temperature=0.0, stop_token_ids=[])
    tiny = scout.generate(input_ids=prompt, max_new_tokens=8, temperature=T, seed=3, stop_token_ids=[])
    assert tiny.token_ids == greedy.token_ids


@pytest.mark.parametrize("bad,name", [(dict(max_batch=0), "max_batch"), (dict(max_batch=-2), "max_batch"),
                                      (dict(n=0), "n"), (dict(stop_token_ids=["x"]), "stop_token_ids")])
def test_bad_batch_arguments(scout, bad, name):
    with pytest.raises((ValueError, TypeError), match=name):
        scout.generate(input_ids=[1, 2, 3], max_new_tokens=2, **bad)


def test_stop_token_ids_as_an_int_and_huge_ids(scout):
    res = scout.generate(input_ids=[4, 5], max_new_tokens=3, temperature=0.0, stop_token_ids=5)
    assert res.finish_reason in ("stop", "length")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        scout.generate(input_ids=[1, 2**31 + 5], max_new_tokens=1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        scout.generate(input_ids=[1, 2**70], max_new_tokens=1)


def test_non_finite_logits_end_the_request_with_an_error(tmp_path):
    """One NaN in a q_proj makes every logit NaN: generate() raises GenerationError naming the
    step instead of emitting token 0 with finish_reason "length"."""
    from safetensors.torch import load_file, save_file

    tc.save_tiny("scout_text", tmp_path)
    f = tmp_path / "model.safetensors"
    tensors = load_file(str(f))
    name = next(n for n in tensors if n.endswith("layers.0.self_attn.q_proj.weight"))
    tensors[name][0, 0] = float("nan")
    save_file(tensors, str(f), metadata={"format": "pt"})
    model = l4.load(tmp_path, dtype="float32")
    with pytest.raises(l4.GenerationError, match=r"generated token 0 \(engine step \d+\) are unusable: the logits hold NaN"):
        model.generate(input_ids=[5, 6, 7], max_new_tokens=4, temperature=0.0)
    free = _free(model)
    with pytest.raises(l4.GenerationError, match="logits hold NaN"):
        model.generate([[5, 6, 7], [8, 9]], max_new_tokens=4, temperature=0.7, seed=1)
    assert _free(model) == free
