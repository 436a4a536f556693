"""config.py against transformers 5.23's own Llama4 configs: derivations, both RoPE spellings,
hub quirks, the engine dict contract, and one ConfigError per impossible field."""
from __future__ import annotations

import copy
import json

import pytest
import torch

import tiny_checkpoints as tc
from llama4_native import ops
from llama4_native.config import ConfigError, ModelConfig, TextConfig, VisionConfig, load_config

transformers = pytest.importorskip("transformers")
from transformers import Llama4Config, Llama4TextConfig  # noqa: E402
from transformers.models.llama4.modeling_llama4 import Llama4TextRotaryEmbedding  # noqa: E402

SMALL = dict(vocab_size=300, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
             head_dim=16, intermediate_size=32, intermediate_size_mlp=48, num_hidden_layers=8,
             num_local_experts=4, max_position_embeddings=4096)
LLAMA3 = {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0, "high_freq_factor": 1.0,
          "original_max_position_embeddings": 64}

# Text-config variants (as config.json would hold them) compared field by field with HF.
VARIANTS = {
    "hf_defaults": {},
    "small": SMALL,
    "interleave2": dict(SMALL, interleave_moe_layer_step=2),
    "interleave3_9layers": dict(SMALL, num_hidden_layers=9, interleave_moe_layer_step=3),
    "no_rope_empty_list": dict(SMALL, no_rope_layers=[]),
    "no_rope_null": dict(SMALL, no_rope_layers=None),
    "no_rope_interval3": dict(SMALL, no_rope_layer_interval=3),
    "no_rope_explicit": dict(SMALL, no_rope_layers=[1, 0, 0, 1, 1, 1, 0, 1]),
    "moe_explicit": dict(SMALL, moe_layers=[0, 5, 7]),
    "moe_empty_is_honoured": dict(SMALL, moe_layers=[]),
    "head_dim_missing_is_128": {k: v for k, v in SMALL.items() if k != "head_dim"},
    "kv_missing_is_8": dict({k: v for k, v in SMALL.items() if k != "num_key_value_heads"},
                            num_attention_heads=16),
    "layers_3_no_nope": dict(SMALL, num_hidden_layers=3),
    "legacy_llama3": dict(SMALL, rope_scaling=LLAMA3, rope_theta=500000.0),
    "legacy_llama3_no_original": dict(SMALL, rope_scaling={k: v for k, v in LLAMA3.items()
                                                           if k != "original_max_position_embeddings"}),
    "legacy_type_key": dict(SMALL, rope_scaling={"type": "llama3", **{k: v for k, v in LLAMA3.items()
                                                                        if k != "rope_type"}}),
    "legacy_null_scaling": dict(SMALL, rope_scaling=None, rope_theta=10000.0),
    "new_llama3": dict(SMALL, rope_parameters=dict(LLAMA3, rope_theta=250000.0)),
    "new_llama3_band": dict(SMALL, rope_parameters=dict(LLAMA3, high_freq_factor=4.0, rope_theta=1e4)),
    "new_default_theta_outside": dict(SMALL, rope_parameters={"rope_type": "default"}, rope_theta=7e4),
    "new_default_theta_both": dict(SMALL, rope_parameters={"rope_type": "default", "rope_theta": 9e4},
                                   rope_theta=7e4),
    "scaling_wins_over_parameters": dict(SMALL, rope_scaling=LLAMA3,
                                         rope_parameters={"rope_type": "default", "rope_theta": 3e4}),
    "misc_fields": dict(SMALL, use_qk_norm=False, attn_temperature_tuning=False, floor_scale=3,
                        attn_scale=0.5, attention_chunk_size=16, rms_norm_eps=1e-6,
                        tie_word_embeddings=True, bos_token_id=5, eos_token_id=[6, 7], pad_token_id=0,
                        num_experts_per_tok=2),
}
COMPARED = ("vocab_size", "hidden_size", "intermediate_size", "intermediate_size_mlp",
            "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "max_position_embeddings", "rms_norm_eps", "num_local_experts", "num_experts_per_tok",
            "interleave_moe_layer_step", "no_rope_layer_interval", "attention_chunk_size",
            "use_qk_norm", "attn_temperature_tuning", "floor_scale", "attn_scale",
            "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "rope_parameters")


def _hf(d: dict) -> Llama4TextConfig:
    return Llama4TextConfig.from_dict(copy.deepcopy(d))


@pytest.mark.parametrize("name", VARIANTS)
def test_text_derivations_match_transformers(name):
    d = VARIANTS[name]
    ours, hf = TextConfig.from_dict(copy.deepcopy(d)), _hf(d)
    assert list(ours.no_rope_layers) == [int(x) for x in hf.no_rope_layers]
    assert list(ours.moe_layers) == sorted(hf.moe_layers)
    assert list(ours.layer_types) == list(hf.layer_types)
    for field in COMPARED:
        assert getattr(ours, field) == getattr(hf, field), field
    assert ours.rope_theta == hf.rope_parameters["rope_theta"]
    assert ours.rope_type == hf.rope_parameters["rope_type"]


@pytest.mark.parametrize("name", [n for n in VARIANTS if "llama3" in n or "theta" in n or "scaling" in n
                                  or n in ("small", "hf_defaults", "legacy_type_key")])
def test_engine_rope_reproduces_transformers_inv_freq(name):
    """engine dict -> the engine's own inv_freq == HF's rotary embedding buffer."""
    d = VARIANTS[name]
    e = TextConfig.from_dict(copy.deepcopy(d)).to_engine_dict()
    ours = ops.rope_inv_freq(e["head_dim"], e["rope_theta"], {
        "rope_type": e["rope_type"], "factor": e["rope_factor"],
        "low_freq_factor": e["rope_low_freq_factor"], "high_freq_factor": e["rope_high_freq_factor"],
        "original_max_position_embeddings": e["rope_original_max_position_embeddings"]})
    hf = Llama4TextRotaryEmbedding(_hf(d)).inv_freq
    torch.testing.assert_close(torch.tensor(ours), hf, rtol=1e-6, atol=0)


def test_derived_pattern_values():
    c = TextConfig.from_dict(dict(SMALL, interleave_moe_layer_step=2))
    assert c.no_rope_layers == (1, 1, 1, 0, 1, 1, 1, 0)  # NoPE every 4th: layers 3, 7
    assert c.layer_types[3] == "full_attention" and c.layer_types[0] == "chunked_attention"
    assert c.moe_layers == (1, 3, 5, 7)
    assert TextConfig.from_dict({}).head_dim == 128  # missing -> class default
    assert TextConfig.from_dict(dict(SMALL, head_dim=None, hidden_size=96)).head_dim == 24  # null -> D/H
    assert TextConfig.from_dict(dict(SMALL, num_key_value_heads=None)).num_key_value_heads == 4


def test_both_rope_spellings_give_the_same_engine_dict():
    legacy = dict(SMALL, rope_scaling=dict(LLAMA3), rope_theta=500000.0)
    new = dict(SMALL, rope_parameters=dict(LLAMA3, rope_theta=500000.0))
    a, b = TextConfig.from_dict(legacy), TextConfig.from_dict(new)
    assert a.to_engine_dict() == b.to_engine_dict()
    assert a.rope_type == "llama3" and a.rope_factor == 16.0 and a.rope_original_max_position_embeddings == 64
    no_orig = {k: v for k, v in LLAMA3.items() if k != "original_max_position_embeddings"}
    c = TextConfig.from_dict(dict(SMALL, rope_scaling=no_orig))
    assert c.rope_original_max_position_embeddings == SMALL["max_position_embeddings"]
    plain = TextConfig.from_dict(dict(SMALL, rope_scaling=None, rope_theta=1e4)).to_engine_dict()
    assert (plain["rope_type"], plain["rope_theta"], plain["rope_factor"]) == ("default", 1e4, 1.0)


@pytest.mark.parametrize("value,expected", [(4, True), (0, False), (True, True), (False, False), (2.5, True)])
def test_attn_temperature_tuning_number(value, expected):
    """4.51-era hub configs write 4 (HF 5.23 rejects it; we treat it as truthy)."""
    cfg = TextConfig.from_dict(dict(SMALL, attn_temperature_tuning=value))
    assert cfg.attn_temperature_tuning is expected


ENGINE_KEYS = {
    "vocab_size": int, "hidden_size": int, "intermediate_size": int, "intermediate_size_mlp": int,
    "num_hidden_layers": int, "num_attention_heads": int, "num_key_value_heads": int, "head_dim": int,
    "num_local_experts": int, "num_experts_per_tok": int, "moe_layers": list, "no_rope_layers": list,
    "attention_chunk_size": int, "rope_theta": float, "rope_type": str, "rope_factor": float,
    "rope_low_freq_factor": float, "rope_high_freq_factor": float,
    "rope_original_max_position_embeddings": int, "use_qk_norm": bool,
    "attn_temperature_tuning": bool, "floor_scale": int, "attn_scale": float, "rms_norm_eps": float,
    "max_position_embeddings": int,
}


@pytest.mark.parametrize("name", ["hf_defaults", "legacy_llama3", "misc_fields"])
def test_engine_dict_contract(name):
    e = TextConfig.from_dict(copy.deepcopy(VARIANTS[name])).to_engine_dict()
    assert set(e) == set(ENGINE_KEYS)
    for k, t in ENGINE_KEYS.items():
        assert type(e[k]) is t, (k, e[k])
    assert all(type(x) is int for x in e["moe_layers"] + e["no_rope_layers"])
    json.dumps(e)  # plain data only


BAD_TEXT = [
    ({"hidden_size": 66, "head_dim": None}, "hidden_size"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"num_experts_per_tok": 5}, "num_experts_per_tok"),
    ({"no_rope_layers": [1, 0, 1]}, "no_rope_layers"),
    ({"no_rope_layers": [1, 0, 2, 1, 1, 1, 1, 1]}, "no_rope_layers"),
    ({"no_rope_layers": [1.0] * 8}, "no_rope_layers"),
    ({"no_rope_layers": [True, False] * 4}, "no_rope_layers"),
    ({"moe_layers": [0, 8]}, "moe_layers"),
    ({"moe_layers": [-1]}, "moe_layers"),
    ({"moe_layers": "all"}, "moe_layers"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "rope_type"),
    ({"rope_parameters": {"rope_type": "dynamic"}}, "rope_type"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0}}, "high_freq_factor"),
    ({"rope_scaling": dict(LLAMA3, low_freq_factor=4.0)}, "high_freq_factor"),
    ({"rope_theta": 0}, "rope_theta"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"vocab_size": -5}, "vocab_size"),
    ({"hidden_size": 0}, "hidden_size"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"num_attention_heads": 0}, "num_attention_heads"),
    ({"head_dim": -16}, "head_dim"),
    ({"head_dim": 15}, "head_dim"),
    ({"intermediate_size": 0}, "intermediate_size"),
    ({"intermediate_size_mlp": -1}, "intermediate_size_mlp"),
    ({"num_local_experts": 0}, "num_local_experts"),
    ({"attention_chunk_size": None}, "attention_chunk_size"),
    ({"attention_chunk_size": 0}, "attention_chunk_size"),
    ({"floor_scale": 0}, "floor_scale"),
    ({"max_position_embeddings": 0}, "max_position_embeddings"),
    ({"interleave_moe_layer_step": 0}, "interleave_moe_layer_step"),
    ({"no_rope_layer_interval": 0}, "no_rope_layer_interval"),
    ({"hidden_size": "64"}, "hidden_size"),
    ({"hidden_size": True}, "hidden_size"),
    ({"use_qk_norm": "yes"}, "use_qk_norm"),
    ({"attn_temperature_tuning": "on"}, "attn_temperature_tuning"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"attention_bias": True}, "attention_bias"),
    ({"layer_types": ["full_attention"] * 8}, "layer_types"),
    ({"eos_token_id": "x"}, "eos_token_id"),
]


@pytest.mark.parametrize("patch,field", BAD_TEXT, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_TEXT)])
def test_bad_text_field_is_named(patch, field):
    with pytest.raises(ConfigError) as ei:
        TextConfig.from_dict(dict(SMALL, **patch))
    assert field in str(ei.value) and field in ei.value.field
    assert isinstance(ei.value, ValueError)


def test_errors_are_qualified_inside_text_config():
    d = {"model_type": "llama4", "text_config": dict(SMALL, num_key_value_heads=3),
         "vision_config": tc.VISION_TINY}
    with pytest.raises(ConfigError, match="text_config.num_key_value_heads"):
        load_config(d)


BAD_VISION = [
    ({"intermediate_size": 100}, "intermediate_size"),
    ({"projector_input_dim": 32}, "projector_input_dim"),
    ({"vision_output_dim": 32}, "vision_output_dim"),
    ({"image_size": 50}, "patch_size"),
    ({"num_attention_heads": 3}, "num_attention_heads"),
    ({"num_attention_heads": 16}, "num_attention_heads"),  # head_dim 2: not a multiple of 4
    ({"image_size": 42}, "pixel_shuffle_ratio"),  # 3x3 patches cannot shuffle by 0.5
    ({"hidden_size": 0}, "hidden_size"),
    ({"image_size": [56, 42]}, "image_size"),
]


@pytest.mark.parametrize("patch,field", BAD_VISION, ids=[f for _, f in BAD_VISION])
def test_bad_vision_field_is_named(patch, field):
    d = {"model_type": "llama4", "text_config": SMALL, "vision_config": dict(tc.VISION_TINY, **patch)}
    with pytest.raises(ConfigError) as ei:
        load_config(d)
    assert ei.value.field == f"vision_config.{field}"


def test_unknown_model_type():
    with pytest.raises(ConfigError, match="model_type"):
        load_config({"model_type": "llama"})


def test_hf_default_vision_config_is_inconsistent():
    """HF's class defaults (768 hidden, 5632 intermediate) break the adapter's implicit constraint."""
    with pytest.raises(ConfigError, match="vision_config.intermediate_size"):
        load_config({"model_type": "llama4", "text_config": SMALL})


def test_vision_published_values():
    pub = dict(hidden_size=1408, num_hidden_layers=34, num_attention_heads=16, intermediate_size=5632,
               image_size=336, patch_size=14, vision_output_dim=4096, projector_input_dim=4096,
               projector_output_dim=4096, pixel_shuffle_ratio=0.5, rope_theta=10000,
               vision_feature_layer=-1, norm_eps=1e-5)
    v = VisionConfig.from_dict(pub)
    assert (v.head_dim, v.patches_per_side, v.num_patches, v.tokens_per_tile) == (88, 24, 576, 144)
    assert v.rope_theta == 10000.0


@pytest.mark.parametrize("name", tc.TINY_CONFIGS)
def test_tiny_checkpoint_configs(name, tmp_path):
    """save_pretrained's 5.23 spelling and the 4.51 hub spelling parse to the same ModelConfig, equal
    to what transformers itself derived."""
    hf = tc.hf_config(name)
    hf.save_pretrained(tmp_path)
    cfg = load_config(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    hub = load_config(tc.hub_style_config(saved))
    assert hub.text.to_engine_dict() == cfg.text.to_engine_dict()
    assert hub.vision == cfg.vision
    hft = hf.get_text_config()
    for field in COMPARED:
        assert getattr(cfg.text, field) == getattr(hft, field), field
    assert list(cfg.text.moe_layers) == sorted(hft.moe_layers)
    assert list(cfg.text.no_rope_layers) == list(hft.no_rope_layers)
    assert list(cfg.text.layer_types) == list(hft.layer_types)
    assert cfg.eos_token_id == hft.eos_token_id and cfg.bos_token_id == hft.bos_token_id
    if tc.TINY_CONFIGS[name]["arch"] == "causal":
        assert (cfg.architecture, cfg.model_type, cfg.vision) == ("Llama4ForCausalLM", "llama4_text", None)
        assert cfg.image_token_index is None
    else:
        assert (cfg.architecture, cfg.model_type) == ("Llama4ForConditionalGeneration", "llama4")
        assert (cfg.image_token_index, cfg.boi_token_index, cfg.eoi_token_index) == (499, 497, 498)
        for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                      "image_size", "patch_size", "vision_output_dim", "projector_input_dim",
                      "projector_output_dim", "pixel_shuffle_ratio"):
            assert getattr(cfg.vision, field) == getattr(hf.vision_config, field), field
        assert cfg.vision.rope_theta == hf.vision_config.rope_parameters["rope_theta"]
        assert cfg.vision.tokens_per_tile == 4
    assert cfg.dtype == hub.dtype


def test_load_config_accepts_folder_file_and_dict(tmp_path):
    tc.hf_config("maverick_text").save_pretrained(tmp_path)
    a = load_config(tmp_path)
    b = load_config(tmp_path / "config.json")
    c = load_config(json.loads((tmp_path / "config.json").read_text()))
    assert a == b == c and isinstance(a, ModelConfig)
    assert a.eos_token_ids == (2, 3)


def test_top_level_ids_and_aliases():
    text = dict(SMALL, bos_token_id=200000, eos_token_id=[200001, 200008])
    d = {"model_type": "llama4", "text_config": text,
         "vision_config": tc.VISION_TINY, "image_token_id": 123}
    cfg = load_config(d)
    assert cfg.image_token_index == 123 and cfg.boi_token_index == 200080  # alias, then HF default
    assert cfg.bos_token_id == 200000 and cfg.eos_token_ids == (200001, 200008)
    hf = Llama4Config.from_dict(copy.deepcopy(d))
    assert hf.image_token_index == 123


def test_input_dict_is_not_modified():
    d = dict(SMALL, rope_scaling=dict(LLAMA3))
    before = copy.deepcopy(d)
    load_config(d)
    assert d == before
