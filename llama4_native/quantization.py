"""Quantized routed experts: what a checkpoint's `quantization_config` says (compressed-tensors FP8
or INT4 pack-quantized, fbgemm_fp8), and what `load(..., quantization="fp8" | "int4")` asks for. The
rules and checks live in C++ (llama4/checkpoint.h, `make_fp8_plan`, one plan for both formats): only
the routed experts are ever FP8; INT4 also covers the shared expert and the dense MLPs (as
llm-compressor's Llama 4 W4A16 checkpoints store them); quantization at load skips `fp8_skip_layers`
(either format); FP8 uses the engine's quantize_fp8_rowwise per output channel and bounds the
activations at 1200 (Meta's recipe) unless `activation_scale_ub` is given; INT4 uses
quantize_int4_grouped (group 128 unless `int4_group_size` is given) on the routed experts, the shared
expert and the dense MLPs alike.
"""
from __future__ import annotations

import os

from . import _C
from .config import load_config

QUANTIZATIONS = (None, "fp8", "int4")
Fp8Plan = _C.Fp8Plan


def fp8_plan(path: str | os.PathLike, quantization: str | None = None,
             activation_scale_ub: float | None = None, fp8_skip_layers=(),
             num_layers: int | None = None, int4_group_size: int | None = None) -> Fp8Plan | None:
    """The quantization plan (FP8 or INT4 experts) for loading the checkpoint folder `path` (None:
    no quantized experts)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    return _C.fp8_plan(load_config(path), quantization, activation_scale_ub, _layers(fp8_skip_layers),
                       os.fspath(path), _group_size(int4_group_size))


def _group_size(int4_group_size) -> int:
    """0 (the default group) for None, else the int, checked for its type (C++ checks its value)."""
    if int4_group_size is None:
        return 0
    if isinstance(int4_group_size, bool) or not isinstance(int4_group_size, int) or int4_group_size <= 0:
        raise ValueError(f"int4_group_size must be a positive int or None, got {int4_group_size!r}")
    return int4_group_size


def _layers(fp8_skip_layers) -> list[int]:
    out = []
    for i in fp8_skip_layers or ():
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"fp8_skip_layers: {i!r} is not a layer index")
        out.append(i)
    return out
