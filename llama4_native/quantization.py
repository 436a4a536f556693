"""FP8 routed experts: what a checkpoint's `quantization_config` says (compressed-tensors,
fbgemm_fp8), and what `load(..., quantization="fp8")` asks for. The rules and checks live in C++
(llama4/checkpoint.h, `make_fp8_plan`): only the routed experts are ever FP8; quantization at load
uses the engine's quantize_fp8_rowwise per output channel, skips `fp8_skip_layers`, and bounds the
activations at 1200 (Meta's recipe) unless `activation_scale_ub` is given.
"""
from __future__ import annotations

import os

from . import _C
from .config import load_config

QUANTIZATIONS = (None, "fp8")
Fp8Plan = _C.Fp8Plan


def fp8_plan(path: str | os.PathLike, quantization: str | None = None,
             activation_scale_ub: float | None = None, fp8_skip_layers=(),
             num_layers: int | None = None) -> Fp8Plan | None:
    """The FP8 plan for loading the checkpoint folder `path` (None: no FP8 experts)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    return _C.fp8_plan(load_config(path), quantization, activation_scale_ub, _layers(fp8_skip_layers),
                       os.fspath(path))


def _layers(fp8_skip_layers) -> list[int]:
    out = []
    for i in fp8_skip_layers or ():
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"fp8_skip_layers: {i!r} is not a layer index")
        out.append(i)
    return out
