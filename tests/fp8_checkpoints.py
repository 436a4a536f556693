"""Writers of FP8 Llama 4 checkpoints for the loader tests (not a test file): a tiny HF checkpoint
(tiny_checkpoints.py) with its routed experts quantized per output channel in torch
(fp8_reference.quantize_rows) and saved with safetensors, plus the matching `quantization_config`.

  to_compressed_tensors  per-expert nn.Linear tensors experts.{e}.{gate,up,down}_proj.weight
                         F8_E4M3 + .weight_scale [out, 1] F32; the other tensors bf16 (as the
                         published FP8 checkpoints); layers in `skip` keep bf16 experts and are
                         named in `ignore` (one by regex, the others module by module).
  to_fbgemm_fp8          fused experts.gate_up_proj [E, D, 2I] F8_E4M3 + gate_up_proj_scale
                         [E, 1, 2I], experts.down_proj [E, I, D] + down_proj_scale [E, D, 1];
                         layers in `skip` keep their fused bf16 experts (modules_to_not_convert).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

import fp8_reference as ref
import tiny_checkpoints as tc


def _layer(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[parts.index("layers") + 1]) if "layers" in parts else None


def _config(src: Path, dst: Path, qc: dict) -> None:
    cfg = json.loads((src / "config.json").read_text())
    cfg["quantization_config"] = qc
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))


def to_compressed_tensors(src, dst, skip=(), ignore_extra=()) -> Path:
    src, dst = Path(src), Path(dst)
    tc._copy_side_files(src, dst)
    out: dict[str, torch.Tensor] = {}
    skipped_modules: list[str] = []
    for name, t in tc.read_tensors(src).items():
        i = _layer(name)
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            base = name[: name.rindex(".") + 1]
            if name.endswith("gate_up_proj"):
                inter = t.shape[2] // 2
                per = {"gate_proj": lambda e: t[e, :, :inter].T, "up_proj": lambda e: t[e, :, inter:].T}
            else:
                per = {"down_proj": lambda e: t[e].T}
            for e in range(t.shape[0]):
                for proj, get in per.items():
                    w = get(e).contiguous()
                    key = f"{base}{e}.{proj}"
                    if i in skip:
                        out[key + ".weight"] = w.to(torch.bfloat16)
                        skipped_modules.append(key)
                    else:
                        q, s = ref.quantize_rows(w)
                        out[key + ".weight"] = q
                        out[key + ".weight_scale"] = s[:, None]
        else:
            out[name] = t.to(torch.bfloat16) if t.is_floating_point() else t
    tc.write_single(out, dst)
    # The first skipped layer by regex, the others module by module (both spellings occur).
    ignore = ["re:.*self_attn.*", "re:.*router", "re:.*shared_expert.*", "re:.*lm_head", *ignore_extra]
    first = min(skip) if skip else None
    for m in skipped_modules:
        if _layer(m) == first:
            pattern = f"re:.*layers\\.{first}\\.feed_forward\\.experts\\..*"
            if pattern not in ignore:
                ignore.append(pattern)
        else:
            ignore.append(m)
    _config(src, dst, {
        "quant_method": "compressed-tensors", "format": "float-quantized",
        "config_groups": {"group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True,
                        "dynamic": False},
            "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                                  "symmetric": True, "dynamic": True}}},
        "ignore": ignore})
    return dst


def to_fbgemm_fp8(src, dst, skip=(), activation_scale_ub=1200.0) -> Path:
    src, dst = Path(src), Path(dst)
    tc._copy_side_files(src, dst)
    out: dict[str, torch.Tensor] = {}
    for name, t in tc.read_tensors(src).items():
        i = _layer(name)
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")) and i not in skip:
            q, s = ref.quantize_experts(t.transpose(1, 2))  # engine layout [E, out, in]
            out[name] = q.transpose(1, 2).contiguous()
            out[name + "_scale"] = s[:, None, :] if name.endswith("gate_up_proj") else s[:, :, None]
        else:
            out[name] = t.to(torch.bfloat16) if t.is_floating_point() else t
    tc.write_single(out, dst)
    _config(src, dst, {"quant_method": "fbgemm_fp8", "activation_scale_ub": activation_scale_ub,
                       "modules_to_not_convert": [f"layers.{i}.feed_forward" for i in skip] + ["lm_head"]})
    return dst
