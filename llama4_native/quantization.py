"""FP8 routed experts: what a checkpoint's `quantization_config` says, and what
`load(..., quantization="fp8")` asks for. Only the routed experts are ever FP8 in the engine (Meta's
fp8_mixed recipe, LLAMA4.md §5.2); every other weight stays in the model dtype.

Stored FP8 (config.json `quantization_config`, read by `fp8_plan`):
  * compressed-tensors ("float-quantized"), the published FP8 Llama 4 checkpoints: per-expert
    nn.Linear tensors `feed_forward.experts.{e}.{gate,up,down}_proj.weight` F8_E4M3 [out, in] with
    `.weight_scale` [out, 1]. Supported scheme: 8-bit float weights, static per output channel
    (strategy "channel"); activations dynamic (per token). `ignore` lists modules left unquantized:
    exact module names or "re:<regex>" (matched from the start, as compressed-tensors does), tried on
    the full HF name and on the name without its "language_model." root. No activation bound.
  * fbgemm_fp8 (transformers' FbgemmFp8Config): fused `experts.gate_up_proj` [E, D, 2I] F8_E4M3 +
    `gate_up_proj_scale` [E, 1, 2I], `experts.down_proj` [E, I, D] + `down_proj_scale` [E, D, 1];
    `activation_scale_ub` (default 1200) and `modules_to_not_convert` (substrings of module names).
Expert tensors stored as F8_E4M3 with scales but no quantization_config load as FP8 too (by dtype;
no activation bound unless given).
Quantized at load (`quantization="fp8"` on a checkpoint without quantization_config): each MoE
layer's routed experts, except `fp8_skip_layers`, per output channel with the engine's own
quantize_fp8_rowwise (the checkpoint's values, before any conversion to the model dtype), and
activation_scale_ub 1200 (Meta's recipe) unless given.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from .safetensors_io import CheckpointError

QUANTIZATIONS = (None, "fp8")
META_ACTIVATION_SCALE_UB = 1200.0  # Meta's fp8_mixed recipe, and FbgemmFp8Config's default


@dataclass(frozen=True)
class Fp8Plan:
    """How a load gets FP8 experts."""

    stored: bool  # True: the checkpoint holds FP8 experts; False: quantize bf16/fp32 ones at load
    method: str  # "compressed-tensors" | "fbgemm_fp8" | "fp8" (at load)
    activation_scale_ub: float  # per-row amax bound of the activation quantization; 0: none
    ignore: tuple[str, ...] = ()  # stored: modules the checkpoint left unquantized
    skip_layers: frozenset[int] = field(default_factory=frozenset)  # at load: layers kept as is

    def ignores(self, module: str, root: str) -> bool:
        """Whether the checkpoint's quantization_config leaves `module` (full HF name) unquantized."""
        names = (module, module[len(root):]) if root and module.startswith(root) else (module,)
        for pattern in self.ignore:
            for name in names:
                if self.method == "fbgemm_fp8":
                    if pattern in name:
                        return True
                elif pattern.startswith("re:"):
                    if re.match(pattern[3:], name):
                        return True
                elif pattern == name:
                    return True
        return False


def fp8_plan(path: str | os.PathLike, quantization: str | None = None,
             activation_scale_ub: float | None = None, fp8_skip_layers=(),
             num_layers: int | None = None) -> Fp8Plan | None:
    """The FP8 plan for loading the checkpoint folder `path` (None: no FP8 experts)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if activation_scale_ub is not None and not activation_scale_ub >= 0:
        raise ValueError(f"activation_scale_ub must be >= 0 (0: no bound), got {activation_scale_ub}")
    qc = _read_quantization_config(os.fspath(path))
    skip = tuple(fp8_skip_layers or ())
    if qc is not None:
        if skip:
            raise ValueError("fp8_skip_layers applies to quantization at load; this checkpoint is already "
                             "FP8 (its quantization_config decides which experts are quantized)")
        plan = _stored_plan(qc, os.fspath(path))
        if activation_scale_ub is not None:
            plan = Fp8Plan(plan.stored, plan.method, float(activation_scale_ub), plan.ignore)
        return plan
    if quantization is None:
        return None
    n = num_layers or 0
    layers = set()
    for i in skip:
        if not isinstance(i, int) or not -n <= i < n:
            raise ValueError(f"fp8_skip_layers: {i!r} is not a layer index of this {n}-layer model")
        layers.add(i % n)
    ub = META_ACTIVATION_SCALE_UB if activation_scale_ub is None else float(activation_scale_ub)
    return Fp8Plan(False, "fp8", ub, skip_layers=frozenset(layers))


def _read_quantization_config(path: str) -> dict | None:
    f = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(f, encoding="utf-8") as fh:
            d = json.load(fh)
    except (OSError, ValueError):
        return None  # load_config reports a missing or broken config.json
    qc = d.get("quantization_config") if isinstance(d, dict) else None
    if qc is None:
        return None
    if not isinstance(qc, dict):
        raise CheckpointError(f"{f}: quantization_config must be an object")
    return qc


def _stored_plan(qc: dict, path: str) -> Fp8Plan:
    method = qc.get("quant_method")
    where = f"{path}: quantization_config"
    if method == "compressed-tensors":
        groups = qc.get("config_groups") or {}
        if not isinstance(groups, dict) or not groups:
            raise CheckpointError(f"{where} has no config_groups")
        for name, g in groups.items():
            w = (g or {}).get("weights") or {}
            if (w.get("num_bits"), w.get("type"), w.get("strategy")) != (8, "float", "channel"):
                raise CheckpointError(
                    f"{where}.config_groups.{name}.weights is {w.get('num_bits')}-bit {w.get('type')} "
                    f"with strategy {w.get('strategy')!r}; supported: 8-bit float, strategy 'channel' "
                    f"(one scale per output channel)")
            if w.get("symmetric") is False:
                raise CheckpointError(f"{where}.config_groups.{name}.weights is asymmetric; supported: symmetric")
            act = (g or {}).get("input_activations") or {}
            if act and (act.get("dynamic") is not True or act.get("strategy") not in ("token", None)):
                raise CheckpointError(
                    f"{where}.config_groups.{name}.input_activations must be dynamic per token, got "
                    f"strategy {act.get('strategy')!r}, dynamic {act.get('dynamic')!r}")
        ignore = qc.get("ignore") or []
        return Fp8Plan(True, method, 0.0, tuple(str(x) for x in ignore))
    if method == "fbgemm_fp8":
        ub = qc.get("activation_scale_ub", META_ACTIVATION_SCALE_UB)
        if not isinstance(ub, (int, float)) or not ub >= 0:
            raise CheckpointError(f"{where}.activation_scale_ub must be a number >= 0, got {ub!r}")
        skip = qc.get("modules_to_not_convert") or []
        return Fp8Plan(True, method, float(ub), tuple(str(x) for x in skip))
    raise CheckpointError(f"{where}.quant_method {method!r} is not supported (supported: "
                          f"'compressed-tensors' FP8 per channel, 'fbgemm_fp8')")
