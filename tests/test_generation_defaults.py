"""The defaults a generation takes when its caller says nothing (llama4/generation_defaults.h),
shared by generate(), the server and examples/cpp/generate.cpp: greedy unless
generation_config.json says do_sample; stop ids from generation_config.json, else config.json,
else Llama 4's end-of-text / end-of-message / end-of-turn when the vocabulary holds them."""
from __future__ import annotations

import json

import pytest

from llama4_native import _C

SMALL = {"model_type": "llama4_text", "vocab_size": 512, "hidden_size": 64, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 32, "intermediate_size_mlp": 64,
         "num_hidden_layers": 2}


def _gc(**fields):
    return _C.parse_generation_config(json.dumps(fields))


def _config(**fields):
    return _C.parse_model_config(json.dumps({**SMALL, **fields}))


@pytest.mark.parametrize("fields, want", [
    ({}, dict(temperature=0.0, top_k=0, top_p=1.0)),
    ({"temperature": 0.6, "top_p": 0.9}, dict(temperature=0.0, top_k=0, top_p=1.0)),  # no do_sample
    ({"do_sample": True}, dict(temperature=1.0, top_k=0, top_p=1.0)),
    ({"do_sample": True, "temperature": 0.6, "top_k": 40, "top_p": 0.9}, dict(temperature=0.6, top_k=40, top_p=0.9)),
    ({"do_sample": False, "temperature": 0.6}, dict(temperature=0.0, top_k=0, top_p=1.0)),
])
def test_default_sampling(fields, want):
    got = _C.default_sampling(_gc(**fields))
    assert got == pytest.approx(want)


def test_default_stop_ids_order_of_sources():
    assert _C.default_stop_ids(_gc(eos_token_id=[7, 9]), _config(eos_token_id=3)) == [7, 9]
    assert _C.default_stop_ids(_gc(eos_token_id=5), _config(eos_token_id=[3, 4])) == [5]
    assert _C.default_stop_ids(_gc(), _config(eos_token_id=[3, 4])) == [3, 4]
    assert _C.default_stop_ids(_gc(), _config()) == [2]  # transformers' class default
    # eos null in both files: a 512-token vocabulary has no Llama 4 stop tokens, the real one has
    assert _C.default_stop_ids(_gc(), _config(eos_token_id=None)) == []
    assert _C.default_stop_ids(_gc(), _config(eos_token_id=None, vocab_size=202048)) == [200001, 200007, 200008]
