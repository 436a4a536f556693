"""model.generate(): greedy/sampled decoding, seeds, batching, stop conditions, streaming,
prompt forms and parameter errors, on tiny checkpoints."""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4


@pytest.fixture(scope="module")
def model(real_vocab_checkpoint):
    return l4.load(real_vocab_checkpoint, dtype="float32", max_sequences=4)


@pytest.fixture(scope="module")
def scout(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    return l4.load(folder, dtype="float32", max_sequences=4)


def _ids(seed, n, vocab=512):
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_greedy_equals_argmax_of_logits(scout):
    prompt = _ids(0, 11)
    res = scout.generate(input_ids=prompt, max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    seq = list(prompt)
    for tok in res.token_ids:  # recompute each step from scratch
        assert tok == int(scout.logits(seq)[-1].argmax())
        seq.append(tok)
    assert res.finish_reason == "length" and res.prompt_tokens == 11


def test_same_seed_same_output_and_different_seed_differs(scout):
    prompt = _ids(1, 9)
    kw = dict(input_ids=prompt, max_new_tokens=24, temperature=1.0, stop_token_ids=[])
    a = scout.generate(seed=7, **kw).token_ids
    assert scout.generate(seed=7, **kw).token_ids == a
    assert scout.generate(seed=8, **kw).token_ids != a


def test_batch_invariance_greedy(scout):
    """A sequence's greedy output is the same alone and batched with others of other lengths,
    including when a sequence finishes early and another joins (max_batch smaller than the list)."""
    prompts = [_ids(10 + i, n) for i, n in enumerate([3, 17, 8, 25, 1])]
    alone = [scout.generate(input_ids=p, max_new_tokens=12, temperature=0.0, stop_token_ids=[]).token_ids
             for p in prompts]
    together = scout.generate(prompts, max_new_tokens=12, temperature=0.0, stop_token_ids=[], max_batch=3)
    assert [r.token_ids for r in together] == alone


def test_stop_token_ends_generation(scout):
    prompt = _ids(2, 7)
    free = scout.generate(input_ids=prompt, max_new_tokens=10, temperature=0.0, stop_token_ids=[]).token_ids
    stop = free[3]
    first = free.index(stop)
    res = scout.generate(input_ids=prompt, max_new_tokens=10, temperature=0.0, stop_token_ids=[stop])
    assert res.token_ids == free[:first + 1] and res.finish_reason == "stop"


def test_max_new_tokens_zero_and_context_limit(scout):
    res = scout.generate(input_ids=[5, 6], max_new_tokens=0)
    assert res.token_ids == [] and res.finish_reason == "length"
    with pytest.raises(ValueError, match="context length 256"):
        scout.generate(input_ids=_ids(3, 250), max_new_tokens=10)


def test_return_logits_shape(scout):
    res = scout.generate(input_ids=[4, 5, 6], max_new_tokens=5, temperature=0.0, return_logits=True,
                         stop_token_ids=[])
    assert res.logits.shape == (5, 512) and res.logits.dtype == torch.float32
    assert [int(r.argmax()) for r in res.logits] == res.token_ids


def test_chat_prompt_text_and_stop_strings(model):
    msgs = [{"role": "user", "content": "Hello there"}]
    res = model.generate(msgs, max_new_tokens=16, temperature=0.0)
    ids = model.tokenizer.apply_chat_template(msgs, add_generation_prompt=True)
    assert res.prompt_tokens == len(ids)
    assert res.text == model.tokenizer.decode([t for t in res.token_ids if t not in model.tokenizer.stop_ids])
    if len(res.text) >= 4:  # cut at a stop string taken from the middle of the greedy text
        stop = res.text[len(res.text) // 2:len(res.text) // 2 + 2]
        cut = model.generate(msgs, max_new_tokens=16, temperature=0.0, stop_strings=[stop])
        assert cut.finish_reason == "stop" or len(cut.token_ids) == 16
        assert cut.text == res.text[:res.text.find(stop)]


def test_stream_pieces_join_to_the_text(model):
    msgs = [{"role": "user", "content": "Stream something, please."}]
    full = model.generate(msgs, max_new_tokens=20, temperature=0.0)
    pieces = list(model.generate(msgs, max_new_tokens=20, temperature=0.0, stream=True))
    assert "".join(pieces) == full.text
    assert all("\ufffd" not in p for p in pieces) or "\ufffd" in full.text


def test_string_prompt_gets_bos_and_generation_config_defaults(model):
    res = model.generate("The capital of France is", max_new_tokens=3, seed=0)
    assert res.prompt_tokens == 1 + len(model.tokenizer.encode("The capital of France is"))
    # make-tiny's generation_config.json samples (do_sample, temperature 0.6, top_p 0.9); a seed
    # makes that repeatable.
    assert model.generate("The capital of France is", max_new_tokens=3, seed=0).token_ids == res.token_ids


@pytest.mark.parametrize("kwargs,name", [
    (dict(max_new_tokens=-1), "max_new_tokens"), (dict(temperature=-0.5), "temperature"),
    (dict(top_p=2.0), "top_p"), (dict(top_k=-3), "top_k"), (dict(min_p=1.5), "min_p"),
    (dict(repetition_penalty=0), "repetition_penalty"), (dict(seed="x"), "seed"),
    (dict(stop_strings=[""]), "stop_strings"),
])
def test_bad_generate_parameters(scout, kwargs, name):
    with pytest.raises(ValueError, match=name):
        scout.generate(input_ids=[1, 2, 3], **kwargs)


def test_bad_prompts(scout):
    with pytest.raises(ValueError, match="input_ids must not be empty"):
        scout.generate(input_ids=[])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        scout.generate(input_ids=[1, 600], max_new_tokens=1)
    with pytest.raises(TypeError, match="integer token ids"):
        scout.logits(torch.tensor([1.0, 2.0]))


def test_full_kv_cache_raises_cache_full_and_keeps_engine_usable(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    small = l4.load(folder, dtype="float32", kv_cache_bytes=100_000, max_sequences=1, page_size=4)
    with pytest.raises(l4.CacheFullError, match="KV cache full"):
        small.generate(input_ids=_ids(4, 200), max_new_tokens=10)
    assert len(small.generate(input_ids=_ids(5, 5), max_new_tokens=3, stop_token_ids=[]).token_ids) == 3
