"""Model configuration: `config.json` -> `ModelConfig` (text decoder, vision tower, special ids).

Reproduces transformers 5.23's `Llama4TextConfig` / `Llama4VisionConfig` / `Llama4Config` parsing
(class defaults for missing fields, `__post_init__` derivations, legacy `rope_scaling` + `rope_theta`
and 5.23 `rope_parameters` spellings) without importing transformers. Configs the engine cannot run
raise `ConfigError` (a ValueError) naming the field. `TextConfig.to_engine_dict()` is the plain-dict
contract the C++ engine reads. Checkpoint layouts (LLAMA4.md §1, §9):

  * `Llama4ForConditionalGeneration`: model_type "llama4", with `text_config` and `vision_config`.
  * `Llama4ForCausalLM`: model_type "llama4_text", the text fields at top level, no vision.
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass
from typing import Any

# transformers 5.23 `Llama4TextConfig` class defaults. Note that a MISSING head_dim is 128 and a
# missing num_key_value_heads is 8 (class defaults); only an explicit null derives them (below).
TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 202048,
    "hidden_size": 5120,
    "intermediate_size": 8192,
    "intermediate_size_mlp": 16384,
    "num_hidden_layers": 48,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 4096 * 32,
    "rms_norm_eps": 1e-5,
    "pad_token_id": None,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "num_experts_per_tok": 1,
    "num_local_experts": 16,
    "moe_layers": None,
    "interleave_moe_layer_step": 1,
    "use_qk_norm": True,
    "no_rope_layers": None,
    "no_rope_layer_interval": 4,
    "attention_chunk_size": 8192,
    "layer_types": None,
    "attn_temperature_tuning": True,
    "floor_scale": 8192,
    "attn_scale": 0.1,
    "attention_bias": False,
}
TEXT_DEFAULT_ROPE_THETA = 500000.0  # Llama4TextConfig.default_theta

# transformers 5.23 `Llama4VisionConfig` class defaults (they do NOT match the published models,
# LLAMA4.md §9 item 13; always read the checkpoint's config). vision_feature_layer is a hub key.
VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "hidden_act": "gelu",
    "num_hidden_layers": 34,
    "num_attention_heads": 16,
    "num_channels": 3,
    "intermediate_size": 5632,
    "vision_output_dim": 7680,
    "image_size": 448,
    "patch_size": 14,
    "norm_eps": 1e-5,
    "vision_feature_select_strategy": "default",
    "vision_feature_layer": -1,
    "pixel_shuffle_ratio": 0.5,
    "projector_input_dim": 4096,
    "projector_output_dim": 4096,
    "multi_modal_projector_bias": False,
    "projector_dropout": 0.0,
    "attention_dropout": 0.0,
}
VISION_DEFAULT_ROPE_THETA = 10000.0  # RotaryEmbeddingConfigMixin.default_theta

# transformers 5.23 `Llama4Config` top-level defaults.
TOP_DEFAULTS: dict[str, Any] = {
    "boi_token_index": 200080,
    "eoi_token_index": 200081,
    "image_token_index": 200092,
    "tie_word_embeddings": False,
}
TOP_ALIASES = {"image_token_id": "image_token_index", "boi_token_id": "boi_token_index",
               "eoi_token_id": "eoi_token_index"}  # Llama4Config.attribute_map

ROPE_TYPES = ("default", "llama3")  # what the engine implements
ARCH_CONDITIONAL = "Llama4ForConditionalGeneration"
ARCH_CAUSAL = "Llama4ForCausalLM"


class ConfigError(ValueError):
    """A config the engine cannot run; `field` names the offending key (e.g. text_config.head_dim)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"config field '{field}': {message}")
        self.field = field


class _Reader:
    """Typed access to one config section; every error names the (qualified) field."""

    def __init__(self, d: dict, defaults: dict, section: str):
        self.d, self.defaults, self.section = d, defaults, section

    def name(self, key: str) -> str:
        return f"{self.section}.{key}" if self.section else key

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.name(key), message)

    def raw(self, key: str) -> Any:
        return self.d[key] if key in self.d else self.defaults.get(key)

    def int(self, key: str, *, minimum: int | None = 1, value: Any = None) -> int:
        v = self.raw(key) if value is None else value
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # a JSON writer may emit 8192.0
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"expected an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {v}")
        return v

    def float(self, key: str, *, positive: bool = True, value: Any = None) -> float:
        v = self.raw(key) if value is None else value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(key, f"expected a finite number, got {v!r}")
        if positive and v <= 0:
            raise self.fail(key, f"must be > 0, got {v}")
        if not positive and v < 0:
            raise self.fail(key, f"must be >= 0, got {v}")
        return float(v)

    def bool(self, key: str) -> bool:
        v = self.raw(key)
        if not isinstance(v, bool):
            raise self.fail(key, f"expected true/false, got {v!r}")
        return v

    def token_ids(self, key: str) -> int | list[int] | None:
        v = self.raw(key)
        if v is None or (isinstance(v, int) and not isinstance(v, bool)):
            return v
        if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return list(v)
        raise self.fail(key, f"expected null, an integer or a list of integers, got {v!r}")


# ------------------------------------------------------------------------------------------------
# Text decoder
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextConfig:
    """The text decoder (Llama4TextConfig after HF's derivations). Lists are stored as tuples."""

    vocab_size: int
    hidden_size: int  # D
    intermediate_size: int  # I: routed experts and shared expert
    intermediate_size_mlp: int  # Imlp: dense (non-MoE) layers
    num_hidden_layers: int
    num_attention_heads: int  # H
    num_key_value_heads: int  # KV
    head_dim: int  # d
    hidden_act: str
    max_position_embeddings: int
    rms_norm_eps: float
    num_local_experts: int  # E
    num_experts_per_tok: int
    interleave_moe_layer_step: int
    moe_layers: tuple[int, ...]  # sorted layer indices with an MoE FFN
    no_rope_layer_interval: int
    no_rope_layers: tuple[int, ...]  # per layer: 1 = RoPE + chunked attention, 0 = NoPE + global
    layer_types: tuple[str, ...]  # "chunked_attention" | "full_attention", from no_rope_layers
    attention_chunk_size: int  # C
    use_qk_norm: bool
    attn_temperature_tuning: bool
    floor_scale: int
    attn_scale: float
    attention_bias: bool
    rope_theta: float
    rope_type: str  # "default" | "llama3"
    rope_factor: float  # llama3 only; 1.0 (a no-op) for "default"
    rope_low_freq_factor: float
    rope_high_freq_factor: float
    rope_original_max_position_embeddings: int
    rope_parameters: dict  # as HF standardizes it (for reference and round-trips)
    tie_word_embeddings: bool
    bos_token_id: int | None
    eos_token_id: int | list[int] | None
    pad_token_id: int | None

    @classmethod
    def from_dict(cls, d: dict, section: str = "") -> "TextConfig":
        """Parse a `llama4_text` config dict (the `text_config` of a ConditionalGeneration config)."""
        if not isinstance(d, dict):
            raise ConfigError(section or "text_config", f"expected a JSON object, got {type(d).__name__}")
        r = _Reader(d, TEXT_DEFAULTS, section)
        sizes = _text_sizes(r)
        pattern = _layer_pattern(r, sizes["num_hidden_layers"])
        rope = _rope(r, sizes["max_position_embeddings"])
        _check_text(r, sizes, pattern, rope)
        return cls(
            **sizes, **pattern, **rope,
            hidden_act=r.raw("hidden_act"),
            rms_norm_eps=r.float("rms_norm_eps", positive=False),
            use_qk_norm=r.bool("use_qk_norm"),
            attn_temperature_tuning=_truthy(r, "attn_temperature_tuning"),
            floor_scale=r.int("floor_scale"),
            attn_scale=r.float("attn_scale", positive=False),
            attention_bias=r.bool("attention_bias"),
            tie_word_embeddings=r.bool("tie_word_embeddings"),
            bos_token_id=r.token_ids("bos_token_id"),
            eos_token_id=r.token_ids("eos_token_id"),
            pad_token_id=r.token_ids("pad_token_id"),
        )

    def to_engine_dict(self) -> dict:
        """The C++ engine's config: plain ints / floats / bools / lists (no None)."""
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "intermediate_size_mlp": self.intermediate_size_mlp,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "num_local_experts": self.num_local_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "moe_layers": list(self.moe_layers),
            "no_rope_layers": list(self.no_rope_layers),
            "attention_chunk_size": self.attention_chunk_size,
            "rope_theta": self.rope_theta,
            "rope_type": self.rope_type,
            "rope_factor": self.rope_factor,
            "rope_low_freq_factor": self.rope_low_freq_factor,
            "rope_high_freq_factor": self.rope_high_freq_factor,
            "rope_original_max_position_embeddings": self.rope_original_max_position_embeddings,
            "use_qk_norm": self.use_qk_norm,
            "attn_temperature_tuning": self.attn_temperature_tuning,
            "floor_scale": self.floor_scale,
            "attn_scale": self.attn_scale,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
        }

    def is_moe_layer(self, i: int) -> bool:
        return i in self.moe_layers

    def uses_rope(self, i: int) -> bool:
        return bool(self.no_rope_layers[i])


def _text_sizes(r: _Reader) -> dict:
    """Sizes, with HF's null handling: head_dim=null -> D // H, num_key_value_heads=null -> H."""
    out = {k: r.int(k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                                 "intermediate_size_mlp", "num_hidden_layers", "num_attention_heads",
                                 "num_local_experts", "num_experts_per_tok",
                                 "max_position_embeddings")}
    heads = out["num_attention_heads"]
    kv = r.raw("num_key_value_heads")
    out["num_key_value_heads"] = heads if kv is None else r.int("num_key_value_heads")
    if r.raw("head_dim") is None:
        if out["hidden_size"] % heads:
            raise r.fail("hidden_size", f"head_dim is null, so hidden_size ({out['hidden_size']}) "
                                        f"must be divisible by num_attention_heads ({heads})")
        out["head_dim"] = out["hidden_size"] // heads
    else:
        out["head_dim"] = r.int("head_dim")
    v = r.raw("attention_chunk_size")
    if v is None:
        # HF 5.23 always builds the chunked mask and raises for None (LLAMA4.md §2.3).
        raise r.fail("attention_chunk_size", "null is not supported (transformers 5.23 cannot run "
                                             "it either); give the chunk size, e.g. 8192")
    out["attention_chunk_size"] = r.int("attention_chunk_size")
    return out


def _layer_pattern(r: _Reader, n_layers: int) -> dict:
    """no_rope_layers / moe_layers / layer_types, derived exactly as Llama4TextConfig.__post_init__."""
    interval = r.int("no_rope_layer_interval")
    nrl = r.raw("no_rope_layers")
    if not nrl:  # HF tests truthiness: missing, null and [] all derive
        nrl = [int((i + 1) % interval != 0) for i in range(n_layers)]
    elif not isinstance(nrl, list) or len(nrl) != n_layers:
        got = len(nrl) if isinstance(nrl, list) else repr(nrl)
        raise r.fail("no_rope_layers", f"expected a list of {n_layers} entries (num_hidden_layers), "
                                       f"got {got}")
    elif any(type(x) is not int or x not in (0, 1) for x in nrl):  # HF's strict check rejects bools
        raise r.fail("no_rope_layers", f"entries must be 0 (NoPE) or 1 (RoPE), got {nrl}")
    nrl = tuple(int(x) for x in nrl)

    step = r.int("interleave_moe_layer_step")
    moe = r.raw("moe_layers")
    if moe is None:  # HF honours an explicit list, even an empty one
        moe = list(range(step - 1, n_layers, step))
    elif not isinstance(moe, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in moe):
        raise r.fail("moe_layers", f"expected a list of layer indices, got {moe!r}")
    bad = [x for x in moe if not 0 <= x < n_layers]
    if bad:
        raise r.fail("moe_layers", f"indices {bad} out of range for {n_layers} layers")

    types = tuple("chunked_attention" if x else "full_attention" for x in nrl)
    given = r.raw("layer_types")
    # HF masks by layer_types but rotates by no_rope_layers; the engine ties them, so they must agree.
    if given is not None and tuple(given) != types:
        raise r.fail("layer_types", f"{given} disagrees with no_rope_layers {list(nrl)} "
                                    f"(RoPE layers must be chunked_attention, NoPE full_attention)")
    return {"no_rope_layer_interval": interval, "no_rope_layers": nrl, "layer_types": types,
            "interleave_moe_layer_step": step, "moe_layers": tuple(sorted(set(moe)))}


def _rope(r: _Reader, max_pos: int) -> dict:
    """RoPE parameters, with HF's precedence (RotaryEmbeddingConfigMixin.convert_rope_params_to_dict):
    a truthy legacy `rope_scaling` wins over `rope_parameters`; theta comes from the dict, else the
    top-level `rope_theta`, else the class default; the legacy `type` key stands in for `rope_type`."""
    legacy, params = r.d.get("rope_scaling"), r.d.get("rope_parameters")
    chosen = legacy or params or {}
    key = "rope_scaling" if legacy else "rope_parameters"
    if not isinstance(chosen, dict):
        raise r.fail(key, f"expected a JSON object, got {chosen!r}")
    p = copy.deepcopy(chosen)
    theta = r.d.get("rope_theta", TEXT_DEFAULT_ROPE_THETA)
    p.setdefault("rope_theta", theta)
    p.setdefault("rope_type", p.get("type", "default"))
    rope_type = p["rope_type"]
    if rope_type not in ROPE_TYPES:
        raise r.fail(f"{key}.rope_type", f"unsupported rope_type {rope_type!r} (supported: "
                                         f"{', '.join(ROPE_TYPES)})")
    out = {"rope_theta": r.float(f"{key}.rope_theta", value=p["rope_theta"]), "rope_type": rope_type,
           "rope_factor": 1.0, "rope_low_freq_factor": 1.0, "rope_high_freq_factor": 1.0,
           "rope_original_max_position_embeddings": max_pos}
    if rope_type == "llama3":
        # HF's standardize_rope_params: a missing original length falls back to max_position_embeddings,
        # and a top-level original_max_position_embeddings attribute overrides the dict at model build.
        p.setdefault("original_max_position_embeddings", max_pos)
        if "original_max_position_embeddings" in r.d:
            p["original_max_position_embeddings"] = r.d["original_max_position_embeddings"]
        for k in ("factor", "low_freq_factor", "high_freq_factor"):
            if k not in p:
                raise r.fail(f"{key}.{k}", "required for rope_type 'llama3' but missing")
            out[f"rope_{k}"] = r.float(f"{key}.{k}", value=p[k])
        if out["rope_high_freq_factor"] < out["rope_low_freq_factor"]:
            raise r.fail(f"{key}.high_freq_factor", f"must be >= low_freq_factor "
                                                    f"({out['rope_low_freq_factor']}), got "
                                                    f"{out['rope_high_freq_factor']}")
        out["rope_original_max_position_embeddings"] = r.int(
            f"{key}.original_max_position_embeddings", value=p["original_max_position_embeddings"])
    prf = p.get("partial_rotary_factor", 1.0)
    if prf != 1.0:
        raise r.fail(f"{key}.partial_rotary_factor", f"only 1.0 is supported, got {prf!r}")
    out["rope_parameters"] = p
    return out


def _truthy(r: _Reader, key: str) -> bool:
    """attn_temperature_tuning: 4.51-era hub configs write the number 4 (LLAMA4.md §9 item 2)."""
    v = r.raw(key)
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and math.isfinite(v):
        return bool(v)
    raise r.fail(key, f"expected true/false or a number, got {v!r}")


def _check_text(r: _Reader, s: dict, pattern: dict, rope: dict) -> None:
    """Cross-field checks: configs the engine (and HF) cannot run."""
    h, kv = s["num_attention_heads"], s["num_key_value_heads"]
    if h % kv:
        raise r.fail("num_key_value_heads", f"num_attention_heads ({h}) must be a multiple of "
                                            f"num_key_value_heads ({kv})")
    if s["num_experts_per_tok"] > s["num_local_experts"]:
        raise r.fail("num_experts_per_tok", f"{s['num_experts_per_tok']} > num_local_experts "
                                            f"({s['num_local_experts']})")
    if s["head_dim"] % 2 and any(pattern["no_rope_layers"]):
        raise r.fail("head_dim", f"RoPE rotates pairs, so head_dim must be even, got {s['head_dim']}")
    if r.raw("hidden_act") != "silu":
        raise r.fail("hidden_act", f"only 'silu' is supported, got {r.raw('hidden_act')!r}")
    if r.raw("attention_bias") not in (False, None):
        raise r.fail("attention_bias", "Llama 4 has no attention bias; true is not supported")


# ------------------------------------------------------------------------------------------------
# Vision tower
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionConfig:
    """The vision encoder + pixel-shuffle adapter (Llama4VisionConfig), LLAMA4.md §1.3 and §3."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    image_size: int  # tile side in pixels
    patch_size: int
    num_channels: int
    pixel_shuffle_ratio: float
    projector_input_dim: int
    projector_output_dim: int
    vision_output_dim: int
    multi_modal_projector_bias: bool
    rope_theta: float
    norm_eps: float  # unused by HF (every LayerNorm uses eps 1e-5)
    hidden_act: str  # unused by HF (exact-erf GELU is hard-coded)
    vision_feature_layer: int | list[int]  # unused by HF
    vision_feature_select_strategy: str

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patches per tile, without the CLS token."""
        return self.patches_per_side ** 2

    @property
    def tokens_per_tile(self) -> int:
        """<|patch|> tokens per tile after pixel shuffle (144 for the published models)."""
        return round(self.patches_per_side * self.pixel_shuffle_ratio) ** 2

    @classmethod
    def from_dict(cls, d: dict, section: str = "vision_config") -> "VisionConfig":
        if not isinstance(d, dict):
            raise ConfigError(section, f"expected a JSON object, got {type(d).__name__}")
        r = _Reader(d, VISION_DEFAULTS, section)
        params = d.get("rope_parameters") or {}
        theta = params.get("rope_theta", d.get("rope_theta", VISION_DEFAULT_ROPE_THETA))
        cfg = cls(
            **{k: r.int(k, value=_square(r, k)) if k in ("image_size", "patch_size") else r.int(k)
               for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                         "intermediate_size", "image_size", "patch_size", "num_channels",
                         "projector_input_dim", "projector_output_dim", "vision_output_dim")},
            pixel_shuffle_ratio=r.float("pixel_shuffle_ratio"),
            multi_modal_projector_bias=r.bool("multi_modal_projector_bias"),
            rope_theta=r.float("rope_parameters.rope_theta", value=theta),
            norm_eps=r.float("norm_eps", positive=False),
            hidden_act=r.raw("hidden_act"),
            vision_feature_layer=r.raw("vision_feature_layer"),
            vision_feature_select_strategy=r.raw("vision_feature_select_strategy"),
        )
        _check_vision(r, cfg)
        return cfg


def _square(r: _Reader, key: str) -> Any:
    """image_size / patch_size may be [n, n] in HF; the model code only handles squares."""
    v = r.raw(key)
    if isinstance(v, (list, tuple)):
        if len(v) != 2 or v[0] != v[1]:
            raise r.fail(key, f"only square sizes are supported, got {v!r}")
        return v[0]
    return v


def _check_vision(r: _Reader, c: VisionConfig) -> None:
    """The shape constraints HF leaves implicit (a tiny config that breaks them fails in forward)."""
    if c.hidden_size % c.num_attention_heads or c.head_dim % 4:
        raise r.fail("num_attention_heads", f"hidden_size ({c.hidden_size}) / num_attention_heads "
                                            f"({c.num_attention_heads}) must be a multiple of 4 "
                                            f"(2D RoPE splits each head into x and y pairs)")
    if c.image_size % c.patch_size:
        raise r.fail("patch_size", f"image_size ({c.image_size}) must be a multiple of patch_size "
                                   f"({c.patch_size})")
    side = c.patches_per_side * c.pixel_shuffle_ratio
    inner = c.hidden_size / c.pixel_shuffle_ratio ** 2
    if not side.is_integer() or not inner.is_integer():
        raise r.fail("pixel_shuffle_ratio", f"{c.pixel_shuffle_ratio} does not divide the "
                                            f"{c.patches_per_side}x{c.patches_per_side} patch grid "
                                            f"and hidden_size {c.hidden_size} evenly")
    if c.intermediate_size != int(inner):
        raise r.fail("intermediate_size", f"must equal hidden_size / pixel_shuffle_ratio^2 = "
                                          f"{int(inner)} (the adapter fc1 input), got "
                                          f"{c.intermediate_size}")
    if c.projector_input_dim != c.projector_output_dim:
        raise r.fail("projector_input_dim", f"must equal projector_output_dim "
                                            f"({c.projector_output_dim}), got {c.projector_input_dim}")
    if c.vision_output_dim != c.projector_output_dim:
        raise r.fail("vision_output_dim", f"must equal projector_output_dim "
                                          f"({c.projector_output_dim}), got {c.vision_output_dim}")


# ------------------------------------------------------------------------------------------------
# Whole model
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """A Llama 4 checkpoint's config: text decoder, optional vision tower, special token ids."""

    text: TextConfig
    vision: VisionConfig | None  # None for text-only (Llama4ForCausalLM) checkpoints
    architecture: str  # "Llama4ForConditionalGeneration" | "Llama4ForCausalLM"
    model_type: str  # "llama4" | "llama4_text"
    bos_token_id: int | None
    eos_token_id: int | list[int] | None
    pad_token_id: int | None
    tie_word_embeddings: bool  # the text model's flag: it is the one HF ties lm_head by
    image_token_index: int | None  # <|patch|>; None for text-only
    boi_token_index: int | None
    eoi_token_index: int | None
    dtype: str | None  # the checkpoint's "dtype" (5.23) or "torch_dtype" (4.x), as written

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        e = self.eos_token_id
        return () if e is None else (e,) if isinstance(e, int) else tuple(e)


def load_config(path_or_dict: str | os.PathLike | dict) -> ModelConfig:
    """Read a checkpoint folder, a config.json path, or an already-parsed dict."""
    if isinstance(path_or_dict, dict):
        d = copy.deepcopy(path_or_dict)
    else:
        path = os.fspath(path_or_dict)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON ({e})") from e
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a JSON object at top level")
    model_type = d.get("model_type")
    if model_type == "llama4" or (model_type is None and "text_config" in d):
        return _conditional(d)
    if model_type in ("llama4_text", None):
        return _causal(d)
    raise ConfigError("model_type", f"expected 'llama4' or 'llama4_text', got {model_type!r}")


def _conditional(d: dict) -> ModelConfig:
    """Llama4Config: HF builds class-default sub-configs when text_config/vision_config are null."""
    text = TextConfig.from_dict(d.get("text_config") or {}, "text_config")
    vision = VisionConfig.from_dict(d.get("vision_config") or {}, "vision_config")
    for alias, key in TOP_ALIASES.items():
        if alias in d and key not in d:
            d[key] = d[alias]
    r = _Reader(d, {**TOP_DEFAULTS, "bos_token_id": text.bos_token_id,
                    "eos_token_id": text.eos_token_id, "pad_token_id": text.pad_token_id}, "")
    return ModelConfig(
        text=text, vision=vision,
        architecture=(d.get("architectures") or [ARCH_CONDITIONAL])[0], model_type="llama4",
        bos_token_id=r.token_ids("bos_token_id"), eos_token_id=r.token_ids("eos_token_id"),
        pad_token_id=r.token_ids("pad_token_id"), tie_word_embeddings=text.tie_word_embeddings,
        image_token_index=r.int("image_token_index", minimum=0),
        boi_token_index=r.int("boi_token_index", minimum=0),
        eoi_token_index=r.int("eoi_token_index", minimum=0),
        dtype=d.get("dtype", d.get("torch_dtype")),
    )


def _causal(d: dict) -> ModelConfig:
    text = TextConfig.from_dict(d, "")
    return ModelConfig(
        text=text, vision=None,
        architecture=(d.get("architectures") or [ARCH_CAUSAL])[0], model_type="llama4_text",
        bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id, tie_word_embeddings=text.tie_word_embeddings,
        image_token_index=None, boi_token_index=None, eoi_token_index=None,
        dtype=d.get("dtype", d.get("torch_dtype")),
    )
