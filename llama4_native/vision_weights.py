"""Vision-tower weights: HF safetensors (`vision_model.*`, `multi_modal_projector.*`) -> the engine's
tensor names, layouts and dtype, and the plain-dict config `_C.VisionModel` reads.

One table (`VISION_TABLE`) maps every engine tensor to the HF tensor(s) it is built from (LLAMA4.md
§5.1); several HF tensors are stacked along dim 0 (q, k, v -> the fused qkv weight and bias). As in
weights.py everything is validated from the headers before any data is read: missing tensors,
vision tensors nobody consumes, shapes (from config.json) and dtypes; each error names the tensor.
A tensor that needs neither a layout change nor a dtype conversion is a zero-copy view of the
memory-mapped file.

Engine contract (D hidden_size, I intermediate_size, C channels, P patch_size, N patches per tile,
f = 1/pixel_shuffle_ratio, Pi/Po projector_input/output_dim, Dt text hidden_size; [out, in] layout):
  patch_embedding [D, C P P]  class_embedding [D]  positional_embedding [N + 1, D]
  layernorm_pre.{weight,bias} [D]  layernorm_post.{weight,bias} [D]
  layers.{l}.input_layernorm.{weight,bias} [D]  layers.{l}.post_attention_layernorm.{weight,bias} [D]
  layers.{l}.attn.qkv.weight [3D, D] = cat(q, k, v)  layers.{l}.attn.qkv.bias [3D]
  layers.{l}.attn.o.{weight [D, D], bias [D]}
  layers.{l}.mlp.fc1.{weight [I, D], bias [I]}  layers.{l}.mlp.fc2.{weight [D, I], bias [D]}
  adapter.fc1.weight [Pi, D f f]  adapter.fc2.weight [Po, Po]  projector.weight [Dt, Po]
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .config import VisionConfig
from .safetensors_io import FLOAT_DTYPES, Checkpoint, CheckpointError
from .weights import OUT_DTYPES, VISION_PREFIXES, _check_tensor

V = "vision_model."
VL = V + "model.layers.{l}."


@dataclass(frozen=True)
class VEntry:
    """An engine tensor: name (with {l} = layer), scope ("model" or "layer"), the HF names it is
    stacked from (dim 0, in order) and the shape of each, in the symbols of `_dims`."""

    name: str
    scope: str
    hf_names: tuple[str, ...]
    shapes: tuple[tuple[str, ...], ...]


def _single(name: str, scope: str, hf: str, *shape: str) -> VEntry:
    return VEntry(name, scope, (hf,), (tuple(shape),))


def _qkv(part: str, *shape: str) -> VEntry:
    return VEntry(f"layers.{{l}}.attn.qkv.{part}", "layer",
                  tuple(VL + f"self_attn.{p}_proj.{part}" for p in "qkv"), (tuple(shape),) * 3)


VISION_TABLE: tuple[VEntry, ...] = (
    _single("patch_embedding", "model", V + "patch_embedding.linear.weight", "D", "CPP"),
    _single("class_embedding", "model", V + "class_embedding", "D"),
    _single("positional_embedding", "model", V + "positional_embedding_vlm", "N1", "D"),
    *(_single(f"layernorm_{w}.{p}", "model", V + f"layernorm_{w}.{p}", "D")
      for w in ("pre", "post") for p in ("weight", "bias")),
    _single("adapter.fc1.weight", "model", V + "vision_adapter.mlp.fc1.weight", "Pi", "Dff"),
    _single("adapter.fc2.weight", "model", V + "vision_adapter.mlp.fc2.weight", "Po", "Po"),
    _single("projector.weight", "model", "multi_modal_projector.linear_1.weight", "Dt", "Vout"),
    *(_single(f"layers.{{l}}.{n}.{p}", "layer", VL + f"{n}.{p}", "D")
      for n in ("input_layernorm", "post_attention_layernorm") for p in ("weight", "bias")),
    _qkv("weight", "D", "D"),
    _qkv("bias", "D"),
    _single("layers.{l}.attn.o.weight", "layer", VL + "self_attn.o_proj.weight", "D", "D"),
    _single("layers.{l}.attn.o.bias", "layer", VL + "self_attn.o_proj.bias", "D"),
    _single("layers.{l}.mlp.fc1.weight", "layer", VL + "mlp.fc1.weight", "I", "D"),
    _single("layers.{l}.mlp.fc1.bias", "layer", VL + "mlp.fc1.bias", "I"),
    _single("layers.{l}.mlp.fc2.weight", "layer", VL + "mlp.fc2.weight", "D", "I"),
    _single("layers.{l}.mlp.fc2.bias", "layer", VL + "mlp.fc2.bias", "D"),
)


def _dims(c: VisionConfig, text_hidden_size: int) -> dict[str, int]:
    f = round(1 / c.pixel_shuffle_ratio)
    return {"D": c.hidden_size, "I": c.intermediate_size, "CPP": c.num_channels * c.patch_size ** 2,
            "N1": c.num_patches + 1, "Dff": c.hidden_size * f * f, "Pi": c.projector_input_dim,
            "Po": c.projector_output_dim, "Vout": c.vision_output_dim, "Dt": text_hidden_size}


def engine_config(c: VisionConfig, text_hidden_size: int) -> dict:
    """The plain dict `_C.VisionModel` reads."""
    return {"hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads, "intermediate_size": c.intermediate_size,
            "image_size": c.image_size, "patch_size": c.patch_size, "num_channels": c.num_channels,
            "pixel_shuffle_ratio": c.pixel_shuffle_ratio, "projector_input_dim": c.projector_input_dim,
            "projector_output_dim": c.projector_output_dim, "rope_theta": c.rope_theta,
            "text_hidden_size": int(text_hidden_size)}


def plan_vision_weights(ckpt: Checkpoint, c: VisionConfig, text_hidden_size: int
                        ) -> list[tuple[str, list[str], tuple[int, ...]]]:
    """[(engine name, HF names, engine shape)], validated against the headers (no data read)."""
    dims = _dims(c, text_hidden_size)
    plan, used = [], set()
    for e in VISION_TABLE:
        for layer in (range(c.num_hidden_layers) if e.scope == "layer" else [None]):
            fmt = (lambda s: s) if layer is None else (lambda s, l=layer: s.replace("{l}", str(l)))
            names = [fmt(n) for n in e.hf_names]
            shapes = [tuple(dims[x] for x in sh) for sh in e.shapes]
            for n, sh in zip(names, shapes):
                if n not in ckpt:
                    raise CheckpointError(f"{ckpt.path}: missing vision tensor '{n}' (needed for "
                                          f"'{fmt(e.name)}')")
                _check_tensor(ckpt.info(n), sh, FLOAT_DTYPES)
            rows = sum(sh[0] for sh in shapes)
            plan.append((fmt(e.name), names, (rows, *shapes[0][1:])))
            used.update(names)
    unexpected = sorted(n for n in ckpt.keys() if n.startswith(VISION_PREFIXES) and n not in used)
    if unexpected:
        raise CheckpointError(f"{ckpt.path}: unexpected vision tensor '{unexpected[0]}' for this "
                              f"config ({len(unexpected)} unexpected); wrong vision_config?")
    return plan


def has_vision_weights(checkpoint: str | os.PathLike | Checkpoint) -> bool:
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    return any(n.startswith(VISION_PREFIXES) for n in ckpt.keys())


def load_vision_weights(checkpoint: str | os.PathLike | Checkpoint, config: VisionConfig,
                        text_hidden_size: int, dtype: str = "bfloat16") -> dict[str, torch.Tensor]:
    """All vision-tower tensors in the engine's names/layouts, converted to `dtype`."""
    if dtype not in OUT_DTYPES:
        raise ValueError(f"dtype must be one of {list(OUT_DTYPES)}, got {dtype!r}")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    out = {}
    for name, hf_names, shape in plan_vision_weights(ckpt, config, text_hidden_size):
        out[name] = _stack([ckpt.get(n) for n in hf_names], shape, OUT_DTYPES[dtype])
    return out


def _stack(pieces: list[torch.Tensor], shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Pieces stacked along dim 0 into one contiguous `dtype` tensor; a single piece that is already
    right is returned as is (a view of the file)."""
    if len(pieces) == 1 and pieces[0].dtype == dtype and pieces[0].is_contiguous():
        return pieces[0]
    out = torch.empty(shape, dtype=dtype)
    r = 0
    for p in pieces:
        out[r:r + p.shape[0]].copy_(p)
        r += p.shape[0]
    return out
