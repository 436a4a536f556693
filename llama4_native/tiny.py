"""Writes a small random Llama 4 checkpoint in the real Hugging Face layout (what
`save_pretrained` of `Llama4ForConditionalGeneration` writes: config.json in the hub spelling,
model.safetensors with the real tensor names, generation_config.json) plus the real Llama 4
tokenizer (tokenizer.model from the llama-models package). Its weights are RANDOM: it exercises
the engine end to end; its text is meaningless.

The architecture is Scout's in miniature: MoE on every layer (16 experts would be the real count;
here 4, top-1), QK-norm, llama3 RoPE scaling, a NoPE layer every 4th layer, the full 202,048-token
vocabulary, and a vision tower with the real structure at small sizes. Its llama3 RoPE has a
smoothing band (low_freq_factor 1 < high_freq_factor 4, Llama 3.1's values): Scout's 1 == 1 makes
transformers warn that high_freq_factor must exceed low_freq_factor.

With transformers installed it also writes what `AutoProcessor.from_pretrained` needs
(hf_processor_files.py): tokenizer.json, tokenizer_config.json, preprocessor_config.json,
processor_config.json and chat_template.jinja.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from importlib import util as importlib_util

import numpy as np
import torch

from .hf_processor_files import cache_folder, write_processor_files

TEXT = dict(
    vocab_size=202048, hidden_size=128, intermediate_size=256, intermediate_size_mlp=512,
    num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
    num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=1, use_qk_norm=True,
    no_rope_layers=[1, 1, 1, 0], attention_chunk_size=8192, attn_temperature_tuning=True,
    floor_scale=8192, attn_scale=0.1, rope_theta=500000.0,
    rope_scaling={"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    max_position_embeddings=16384, rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False,
    bos_token_id=200000, eos_token_id=[200001, 200007, 200008], pad_token_id=200018,
    tie_word_embeddings=False, model_type="llama4_text")
# 336 / 14 = 24x24 patches, pixel shuffle 0.5 -> 144 <|patch|> tokens per tile, as the real model.
VISION = dict(
    hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    image_size=336, patch_size=14, num_channels=3, pixel_shuffle_ratio=0.5,
    projector_input_dim=128, projector_output_dim=128, vision_output_dim=128,
    multi_modal_projector_bias=False, rope_theta=10000, norm_eps=1e-5, hidden_act="gelu",
    vision_feature_layer=-1, vision_feature_select_strategy="default", model_type="llama4_vision_model")


def bundled_tokenizer_path() -> str:
    spec = importlib_util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llama-models package (which ships the Llama 4 tokenizer) is not installed")
    return os.path.join(spec.submodule_search_locations[0], "llama4", "tokenizer.model")


def bundled_dog_image() -> str:
    """The photo that ships with llama-models (used by the demo)."""
    return os.path.join(os.path.dirname(os.path.dirname(bundled_tokenizer_path())), "resources", "dog.jpg")


def _tensors(text: dict, vision: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    D, V, I, Im = text["hidden_size"], text["vocab_size"], text["intermediate_size"], text["intermediate_size_mlp"]
    H, KV, d, E = text["num_attention_heads"], text["num_key_value_heads"], text["head_dim"], text["num_local_experts"]

    def mat(*shape, fan_in=None):
        fan_in = fan_in or shape[-1]
        return (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    t, p = {}, "language_model.model."
    t[p + "embed_tokens.weight"] = mat(V, D, fan_in=1) * 0.5
    t[p + "norm.weight"] = norm(D)
    t["language_model.lm_head.weight"] = mat(V, D)
    moe = set(range(text["interleave_moe_layer_step"] - 1, text["num_hidden_layers"], text["interleave_moe_layer_step"]))
    for i in range(text["num_hidden_layers"]):
        q = f"{p}layers.{i}."
        t[q + "input_layernorm.weight"] = norm(D)
        t[q + "post_attention_layernorm.weight"] = norm(D)
        t[q + "self_attn.q_proj.weight"] = mat(H * d, D)
        t[q + "self_attn.k_proj.weight"] = mat(KV * d, D)
        t[q + "self_attn.v_proj.weight"] = mat(KV * d, D)
        t[q + "self_attn.o_proj.weight"] = mat(D, H * d)
        f = q + "feed_forward."
        if i in moe:
            t[f + "router.weight"] = mat(E, D) * 3
            t[f + "experts.gate_up_proj"] = mat(E, D, 2 * I, fan_in=D)  # x @ W layout
            t[f + "experts.down_proj"] = mat(E, I, D, fan_in=I)
            for n, shape in (("gate_proj", (I, D)), ("up_proj", (I, D)), ("down_proj", (D, I))):
                t[f + f"shared_expert.{n}.weight"] = mat(*shape)
        else:
            for n, shape in (("gate_proj", (Im, D)), ("up_proj", (Im, D)), ("down_proj", (D, Im))):
                t[f + f"{n}.weight"] = mat(*shape)
    vd, vi, nl = vision["hidden_size"], vision["intermediate_size"], vision["num_hidden_layers"]
    ps, npatch = vision["patch_size"], (vision["image_size"] // vision["patch_size"]) ** 2
    po = vision["projector_output_dim"]
    v = "vision_model."
    t[v + "patch_embedding.linear.weight"] = mat(vd, 3 * ps * ps)
    t[v + "class_embedding"] = mat(vd, fan_in=1)
    t[v + "positional_embedding_vlm"] = mat(npatch + 1, vd, fan_in=1)
    for n in ("layernorm_pre", "layernorm_post"):
        t[v + n + ".weight"], t[v + n + ".bias"] = norm(vd), mat(vd, fan_in=400)
    for layer in range(nl):
        q = f"{v}model.layers.{layer}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t[q + f"self_attn.{n}.weight"], t[q + f"self_attn.{n}.bias"] = mat(vd, vd), mat(vd, fan_in=400)
        t[q + "mlp.fc1.weight"], t[q + "mlp.fc1.bias"] = mat(vi, vd), mat(vi, fan_in=400)
        t[q + "mlp.fc2.weight"], t[q + "mlp.fc2.bias"] = mat(vd, vi), mat(vd, fan_in=400)
        for n in ("input_layernorm", "post_attention_layernorm"):
            t[q + n + ".weight"], t[q + n + ".bias"] = norm(vd), mat(vd, fan_in=400)
    t[v + "vision_adapter.mlp.fc1.weight"] = mat(po, vi)
    t[v + "vision_adapter.mlp.fc2.weight"] = mat(po, po)
    t["multi_modal_projector.linear_1.weight"] = mat(D, vision["vision_output_dim"])
    return t


def make_tiny(out_dir: str | os.PathLike, *, dtype: str = "bfloat16", seed: int = 0,
              text_overrides: dict | None = None, processor_files: bool = True) -> str:
    """Write the checkpoint into out_dir (created); returns its path. processor_files: also the
    files transformers' AutoProcessor reads (skipped, with a warning, without transformers)."""
    from safetensors.torch import save_file

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype must be 'bfloat16' or 'float32', got {dtype!r}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    text = dict(TEXT, **(text_overrides or {}))
    rng = np.random.default_rng(seed)
    tdtype = getattr(torch, dtype)
    tensors = {k: torch.from_numpy(a).to(tdtype).contiguous() for k, a in _tensors(text, VISION, rng).items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    config = {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
              "text_config": text, "vision_config": VISION, "boi_token_index": 200080,
              "eoi_token_index": 200081, "image_token_index": 200092, "tie_word_embeddings": False,
              "torch_dtype": dtype, "llama4_native_note": "random weights (llama4-native make-tiny)"}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    gen = {"bos_token_id": 200000, "eos_token_id": [200001, 200007, 200008], "pad_token_id": 200018,
           "do_sample": True, "temperature": 0.6, "top_p": 0.9}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    shutil.copyfile(bundled_tokenizer_path(), os.path.join(out_dir, "tokenizer.model"))
    if processor_files:
        why_not = write_processor_files(out_dir, bundled_tokenizer_path(), VISION, text["max_position_embeddings"])
        if why_not:
            warnings.warn(why_not, stacklevel=2)
    return out_dir


def demo_checkpoint() -> str:
    """The built-in demo checkpoint, created on first use in the user cache folder (without the
    AutoProcessor files: the demo runs our own tokenizer from tokenizer.model)."""
    path = os.path.join(cache_folder(), "tiny-random-v2")
    if not os.path.exists(os.path.join(path, ".complete")):
        make_tiny(path, processor_files=False)
        open(os.path.join(path, ".complete"), "w").close()
    return path
