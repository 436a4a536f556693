"""Writers of INT4 (W4A16) Llama 4 checkpoints for the loader and model tests (not a test file): a
tiny HF checkpoint (tiny_checkpoints.py) whose routed experts are quantized and packed by the
`compressed-tensors` package itself (its calculate_qparams and PackedQuantizationCompressor, the
code that writes the published "pack-quantized" checkpoints), so the loader's unpacking is checked
against the real format rather than against our reading of it.

  to_pack_quantized  what llm-compressor's Llama 4 W4A16 example writes (GPTQModifier(targets=
                     "Linear", ignore=LLM_COMPRESSOR_IGNORE) after SequentialLlama4TextMoe split the
                     fused experts into nn.Linear modules): every Linear outside attention, router,
                     lm_head and vision -- the routed experts experts.{e}.{gate,up,down}_proj, the
                     shared expert shared_expert.{gate,up,down}_proj and the dense layers' MLP
                     feed_forward.{gate,up,down}_proj -- with .weight_packed I32 [out, in/8],
                     .weight_scale BF16 [out, in/G], .weight_shape I64 [2]; the other tensors bf16.
                     Layers in `skip` keep all their MLP weights bf16 (named in `ignore`, the first
                     by regex, the others module by module); quantize_mlp=False leaves every shared
                     expert and dense MLP bf16 (ignored by regex): only the routed experts INT4.
  ct_dequantized     the package's own decompression of a module: its bf16 weight (q * scale
                     rounded to bf16), the reference for "dequantize to bf16, then the bf16 matmul".
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme
from compressed_tensors.quantization.utils import calculate_qparams

import tiny_checkpoints as tc


def scheme(group: int) -> QuantizationScheme:
    return QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=4, type="int", symmetric=True, strategy="group", group_size=group))


def compress(w: torch.Tensor, group: int) -> dict[str, torch.Tensor]:
    """One nn.Linear weight [out, in] (bf16) -> the package's weight_packed / weight_scale / weight_shape."""
    g = w.float().unflatten(-1, (w.shape[-1] // group, group))
    args = scheme(group).weights
    s, zp = calculate_qparams(g.amin(-1).to(w.dtype), g.amax(-1).to(w.dtype), args)
    return dict(PackedQuantizationCompressor.compress(
        {"weight": w, "weight_scale": s, "weight_zero_point": zp}, scheme(group)))


def ct_dequantized(sd: dict[str, torch.Tensor], group: int) -> torch.Tensor:
    """The package's decompression of one module's compressed tensors: its bf16 weight [out, in]."""
    return PackedQuantizationCompressor.decompress(dict(sd), scheme(group))["weight"]


def _layer(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[parts.index("layers") + 1]) if "layers" in parts else None


def expert_modules(tensors: dict[str, torch.Tensor]):
    """(module name, layer, [out, in] weight) for every routed expert projection of an HF checkpoint."""
    for name, t in tensors.items():
        if not name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            continue
        base = name[: name.rindex(".") + 1]
        for e in range(t.shape[0]):
            if name.endswith("gate_up_proj"):
                inter = t.shape[2] // 2
                yield f"{base}{e}.gate_proj", _layer(name), t[e, :, :inter].T.contiguous()
                yield f"{base}{e}.up_proj", _layer(name), t[e, :, inter:].T.contiguous()
            else:
                yield f"{base}{e}.down_proj", _layer(name), t[e].T.contiguous()


# llm-compressor's examples/quantization_w4a16/llama4_example.py (the class name matches no module).
LLM_COMPRESSOR_IGNORE = ["re:.*lm_head", "re:.*self_attn", "re:.*router", "re:.*vision_model.*",
                         "re:.*multi_modal_projector.*", "Llama4TextAttention"]
# The MLP projections outside the routed experts: the shared expert's and the dense layers'.
MLP_PROJECTIONS = (".feed_forward.shared_expert.gate_proj.weight", ".feed_forward.shared_expert.up_proj.weight",
                   ".feed_forward.shared_expert.down_proj.weight", ".feed_forward.gate_proj.weight",
                   ".feed_forward.up_proj.weight", ".feed_forward.down_proj.weight")
MLP_IGNORE = ["re:.*shared_expert.*", "re:.*layers\\.\\d+\\.feed_forward\\.(gate|up|down)_proj"]


def mlp_modules(tensors: dict[str, torch.Tensor]):
    """(module name, layer, [out, in] weight) for every shared-expert and dense-MLP projection."""
    for name, t in tensors.items():
        if name.endswith(MLP_PROJECTIONS):
            yield name[: -len(".weight")], _layer(name), t


def to_pack_quantized(src, dst, group: int, skip=(), zero_scales: bool = False, quantize_mlp: bool = True) -> Path:
    """zero_scales: every scale 0 (every quantized module outputs zero: the accuracy tests' control)."""
    src, dst = Path(src), Path(dst)
    tc._copy_side_files(src, dst)
    tensors = tc.read_tensors(src)
    out: dict[str, torch.Tensor] = {}
    ignore = list(LLM_COMPRESSOR_IGNORE) + ([] if quantize_mlp else list(MLP_IGNORE))
    first = min(skip) if skip else None
    mlp = list(mlp_modules(tensors)) if quantize_mlp else []
    quantized = {m for m, _, _ in mlp}
    for name, t in tensors.items():
        if not name.endswith(("experts.gate_up_proj", "experts.down_proj")) and name[: -len(".weight")] not in quantized:
            out[name] = t.to(torch.bfloat16) if t.is_floating_point() else t
    for module, layer, w in list(expert_modules(tensors)) + mlp:
        w = w.to(torch.bfloat16)
        if layer in skip:
            out[module + ".weight"] = w
            pattern = f"re:.*layers\\.{first}\\.feed_forward\\..*"
            if layer == first:
                if pattern not in ignore:
                    ignore.append(pattern)
            else:
                ignore.append(module)
            continue
        for k, v in compress(w, group).items():
            out[f"{module}.{k}"] = torch.zeros_like(v) if zero_scales and k == "weight_scale" else v
    tc.write_single(out, dst)
    qc = QuantizationConfig(config_groups={"group_0": scheme(group)}, format="pack-quantized",
                            quant_method="compressed-tensors", quantization_status="compressed", ignore=ignore)
    cfg = json.loads((src / "config.json").read_text())
    cfg["quantization_config"] = json.loads(qc.model_dump_json())
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst
