"""Tiny random Llama 4 checkpoints in the real HF layout, for loader and parity tests (not a test file).

`TINY_CONFIGS` is the one table of configs. `save_tiny(name, dir)` builds the transformers model
(fp32, under torch.manual_seed, weights re-drawn so that logits and routing are not degenerate) and
writes it with `save_pretrained` (model.safetensors + config.json in the 5.23 spelling). Converters
rewrite a saved checkpoint as per-expert MoE tensors, as shards with an index, or with a 4.51-era
"hub style" config.json.

Coverage (LLAMA4.md §9 item 11, STYLE.md §12): every config has a chunk (8) shorter than typical
test prompts, floor_scale 4 so temperature tuning is active from position 3, and a NoPE layer.
  scout          ConditionalGeneration, all layers MoE, top-1, qk-norm, llama3 RoPE with
                 low == high freq factor, explicit no_rope_layers [1,1,1,0]
  maverick       ConditionalGeneration, dense/MoE interleaved (step 2), top-2, no qk-norm, plain
                 RoPE, no_rope_layers derived ([1,1,1,0])
  scout_text     CausalLM, all MoE, top-2, qk-norm, llama3 with a smoothing band (low 1 < high 4),
                 no_rope_layers [1,0,1,0] (NoPE on MoE layers 1 and 3)
  maverick_text  CausalLM, step 2, top-1, no qk-norm, no_rope_layer_interval 3 -> dense NoPE layer 2,
                 eos list
  tied_text      CausalLM, tie_word_embeddings (no lm_head tensor saved), explicit moe_layers [0, 2]
"""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
from pathlib import Path

import torch

SPECIAL_IDS = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)
IMAGE_IDS = dict(boi_token_index=497, eoi_token_index=498, image_token_index=499)  # < vocab 512

# LLAMA4.md §1.3 / §10: intermediate = hidden / ratio^2, projector in == out == vision_output_dim.
# 56 / 14 = 4x4 patches -> 2x2 = 4 <|patch|> tokens per tile.
VISION_TINY = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   image_size=56, patch_size=14, num_channels=3, vision_output_dim=48,
                   projector_input_dim=48, projector_output_dim=48, pixel_shuffle_ratio=0.5,
                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

# All text dimensions differ (V 512, D 64, H*d 96, KV*d 48, I 20, 2I 40, Imlp 80, E 4) so that a
# transposed or mis-split tensor fails a shape check instead of passing; head_dim 24 != D/H.
TEXT_BASE = dict(vocab_size=512, hidden_size=64, intermediate_size=20, intermediate_size_mlp=80,
                 num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                 num_local_experts=4, attention_chunk_size=8, attn_temperature_tuning=True,
                 floor_scale=4, attn_scale=0.1, max_position_embeddings=256, rms_norm_eps=1e-5,
                 **SPECIAL_IDS)


def _llama3(low: float, high: float) -> dict:
    return {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 16.0, "low_freq_factor": low,
            "high_freq_factor": high, "original_max_position_embeddings": 32}


PLAIN_ROPE = {"rope_type": "default", "rope_theta": 500000.0}

TINY_CONFIGS: dict[str, dict] = {
    "scout": dict(arch="conditional", vision=VISION_TINY, text=dict(
        TEXT_BASE, num_experts_per_tok=1, interleave_moe_layer_step=1, use_qk_norm=True,
        no_rope_layers=[1, 1, 1, 0], rope_parameters=_llama3(1.0, 1.0))),
    "maverick": dict(arch="conditional", vision=VISION_TINY, text=dict(
        TEXT_BASE, num_experts_per_tok=2, interleave_moe_layer_step=2, use_qk_norm=False,
        rope_parameters=PLAIN_ROPE)),
    "scout_text": dict(arch="causal", text=dict(
        TEXT_BASE, num_experts_per_tok=2, interleave_moe_layer_step=1, use_qk_norm=True,
        no_rope_layers=[1, 0, 1, 0], rope_parameters=_llama3(1.0, 4.0))),
    "maverick_text": dict(arch="causal", text=dict(
        TEXT_BASE, num_experts_per_tok=1, interleave_moe_layer_step=2, use_qk_norm=False,
        no_rope_layer_interval=3, rope_parameters=PLAIN_ROPE, eos_token_id=[2, 3])),
    "tied_text": dict(arch="causal", text=dict(
        TEXT_BASE, num_experts_per_tok=1, moe_layers=[0, 2], use_qk_norm=True,
        tie_word_embeddings=True, rope_parameters=PLAIN_ROPE)),
}


# INT4 (W4A16) tests need reduction sizes that whole groups of 32 divide (llama4/moe_int4.h), also
# on each of two tensor-parallel ranks (the shared expert's and dense MLP's down projections are cut
# along K on group boundaries): the same configs with intermediate_size 128 and intermediate_size_mlp
# 192 (D 64 = 2 groups, I 128 = 4, Imlp 192 = 6; 2 and 3 per rank of two), named "<name>_i32". All
# dimensions still differ. Kept out of TINY_CONFIGS so the suites that run every tiny config do not
# run these too.
INT4_CONFIGS: dict[str, dict] = {
    f"{n}_i32": dict(TINY_CONFIGS[n], text=dict(TINY_CONFIGS[n]["text"], intermediate_size=128,
                                                intermediate_size_mlp=192))
    for n in ("scout", "maverick", "scout_text")}


def _spec(name: str) -> dict:
    return copy.deepcopy(TINY_CONFIGS[name] if name in TINY_CONFIGS else INT4_CONFIGS[name])


def hf_config(name: str):
    """The transformers config object for a TINY_CONFIGS entry."""
    from transformers import Llama4Config, Llama4TextConfig

    spec = _spec(name)
    if spec["arch"] == "causal":
        return Llama4TextConfig(**spec["text"])
    return Llama4Config(text_config=spec["text"], vision_config=spec["vision"], **IMAGE_IDS)


def build_model(name: str, seed: int = 0):
    """A tiny fp32 transformers model with non-degenerate random weights, in eval mode."""
    from transformers import Llama4ForCausalLM, Llama4ForConditionalGeneration

    cls = Llama4ForCausalLM if _spec(name)["arch"] == "causal" else Llama4ForConditionalGeneration
    torch.manual_seed(seed)
    model = cls(hf_config(name)).float().eval()  # fp32 params; .float() keeps complex buffers intact
    _randomize(model, seed)
    return model


def _randomize(model, seed: int) -> None:
    """HF's init (std 0.02, norms = 1) gives near-uniform logits and trivial norms; instead draw
    matrices ~ N(0, 1/fan_in) so activations stay O(1), make the router decisive and the norm
    weights non-trivial (so a loader that drops them is caught)."""
    g = torch.Generator().manual_seed(seed)
    # Tied: logits = h . embed, and h carries the current token's embedding, so large embeddings make
    # greedy decoding repeat the last token.
    embed_std = 0.2 if model.config.get_text_config().tie_word_embeddings else 1.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                std = embed_std
            elif name.endswith(("class_embedding", "positional_embedding_vlm")):
                std = 1.0
            elif "norm" in name and p.ndim == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                continue
            elif name.endswith(".bias"):
                std = 0.05
            elif name.endswith(("experts.gate_up_proj", "experts.down_proj")):
                std = 1.0 / math.sqrt(p.shape[1])  # x @ W layout [E, in, out]
            elif name.endswith("router.weight"):
                std = 3.0 / math.sqrt(p.shape[-1])
            else:
                std = 1.0 / math.sqrt(p.shape[-1])  # nn.Linear [out, in]
            p.copy_(std * torch.randn(p.shape, generator=g))


def save_tiny(name: str, out_dir: str | os.PathLike, seed: int = 0):
    """Build and save_pretrained a tiny checkpoint; returns the model (for reference outputs)."""
    model = build_model(name, seed)
    model.save_pretrained(os.fspath(out_dir))
    return model


# ------------------------------------------------------------------------------------------------
# Converters (they read with the safetensors package: independent of the reader under test)
# ------------------------------------------------------------------------------------------------


def read_tensors(ckpt_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a single-file or sharded checkpoint folder."""
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir)
    index = ckpt_dir / "model.safetensors.index.json"
    if not index.exists():
        return load_file(ckpt_dir / "model.safetensors")
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        out.update(load_file(ckpt_dir / shard))
    return out


def _copy_side_files(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix == ".json" and not f.name.endswith(".index.json"):
            shutil.copy(f, dst / f.name)


def write_single(tensors: dict[str, torch.Tensor], dst: str | os.PathLike) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(dst, "model.safetensors"),
              metadata={"format": "pt"})


def to_per_expert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Rewrite the fused experts as per-expert nn.Linear tensors (the compressed-tensors layout):
    gate_up_proj [E, D, 2I] -> experts.{e}.gate_proj.weight [I, D] and .up_proj.weight [I, D];
    down_proj [E, I, D] -> experts.{e}.down_proj.weight [D, I]."""
    src, dst = Path(src), Path(dst)
    _copy_side_files(src, dst)
    out: dict[str, torch.Tensor] = {}
    for name, t in read_tensors(src).items():
        if name.endswith("experts.gate_up_proj"):
            base, inter = name[: -len("gate_up_proj")], t.shape[2] // 2
            for e in range(t.shape[0]):
                out[f"{base}{e}.gate_proj.weight"] = t[e, :, :inter].T.contiguous()
                out[f"{base}{e}.up_proj.weight"] = t[e, :, inter:].T.contiguous()
        elif name.endswith("experts.down_proj"):
            base = name[: -len("down_proj")]
            for e in range(t.shape[0]):
                out[f"{base}{e}.down_proj.weight"] = t[e].T.contiguous()
        else:
            out[name] = t
    write_single(out, dst)
    return dst


def to_sharded(src: str | os.PathLike, dst: str | os.PathLike, n_shards: int = 3) -> Path:
    """Split a checkpoint into n_shards files of similar size plus model.safetensors.index.json."""
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    _copy_side_files(src, dst)
    tensors = read_tensors(src)
    names = sorted(tensors)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    groups: list[list[str]] = [[] for _ in range(n_shards)]
    acc = 0
    for n in names:  # contiguous split by cumulative size
        k = min(int(acc * n_shards / max(total, 1)), n_shards - 1)
        groups[k].append(n)
        acc += tensors[n].numel() * tensors[n].element_size()
    weight_map = {}
    for k, group in enumerate(groups):
        shard = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file({n: tensors[n].contiguous() for n in group}, dst / shard, metadata={"format": "pt"})
        weight_map.update({n: shard for n in group})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return dst


def hub_style_config(config: dict) -> dict:
    """A 5.23-saved config dict rewritten the way the 4.51-era hub configs spell it: rope_scaling +
    top-level rope_theta, attn_temperature_tuning 4 (a number), torch_dtype, no layer_types."""
    d = copy.deepcopy(config)

    def text_part(t: dict) -> None:
        rp = dict(t.pop("rope_parameters", None) or {})
        t["rope_theta"] = rp.pop("rope_theta", 500000.0)
        t["rope_scaling"] = rp if rp.get("rope_type", "default") != "default" else None
        t.pop("layer_types", None)
        if t.get("attn_temperature_tuning", True):
            t["attn_temperature_tuning"] = 4
        if "dtype" in t:
            t["torch_dtype"] = t.pop("dtype")

    if "text_config" in d:
        text_part(d["text_config"])
        if "dtype" in d:
            d["torch_dtype"] = d.pop("dtype")
        vision = d.get("vision_config") or {}
        vision["rope_theta"] = (vision.pop("rope_parameters", None) or {}).get("rope_theta", 10000.0)
    else:
        text_part(d)
    return d
