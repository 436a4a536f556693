"""Loading FP8 routed experts (quantization.py, weights.py): quantization at load is bit-exact with
the torch formulation of FBGEMM's per-row quantization; compressed-tensors and fbgemm_fp8
checkpoints (written by fp8_checkpoints.py) load to exactly the tensors that quantizing at load
gives; the ignore list is honoured and cross-checked; one error per bad checkpoint; the C++ engine
validates FP8 weight sets."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import fp8_checkpoints as fc
import fp8_reference as ref
import llama4_native as l4
import tiny_checkpoints as tc
from llama4_native import _C
from llama4_native.config import load_config
from llama4_native.quantization import fp8_plan
from llama4_native.safetensors_io import CheckpointError
from llama4_native.weights import load_text_weights

pytest.importorskip("transformers")

E4M3 = torch.float8_e4m3fn


def _load(folder, dtype="bfloat16", **plan):
    cfg = load_config(folder).text
    return load_text_weights(folder, cfg, dtype, fp8=fp8_plan(folder, num_layers=cfg.num_hidden_layers, **plan))


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        # bitwise (e4m3 has no torch.equal), whatever the layout (float experts are transposed views)
        assert torch.equal(a[k].contiguous().view(torch.uint8), b[k].contiguous().view(torch.uint8)), k


@pytest.mark.parametrize("name", ["scout", "maverick_text"])
def test_quantize_at_load_is_bit_exact(tiny_checkpoint, name):
    folder, _ = tiny_checkpoint(name)
    t = load_config(folder).text
    w = _load(folder, quantization="fp8")
    plain = _load(folder, "float32")  # the checkpoint's fp32 values in the engine layout
    for i in t.moe_layers:
        for part in ("gate_up", "down"):
            key = f"layers.{i}.moe.{part}"
            q, s = ref.quantize_experts(plain[key])
            assert w[key].dtype == E4M3 and torch.equal(w[key].view(torch.uint8), q.view(torch.uint8))
            assert torch.equal(w[key + "_scale"], s)
    # Everything else is the model dtype, as without FP8.
    others = {k: v for k, v in w.items() if ".moe.gate_up" not in k and ".moe.down" not in k}
    assert all(v.dtype == torch.bfloat16 for v in others.values())


def test_quantize_at_load_skips_layers(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout")
    w = _load(folder, quantization="fp8", fp8_skip_layers=(0, -1))
    assert w["layers.0.moe.gate_up"].dtype == torch.bfloat16 and "layers.0.moe.gate_up_scale" not in w
    assert w["layers.3.moe.down"].dtype == torch.bfloat16
    assert w["layers.1.moe.gate_up"].dtype == E4M3 and w["layers.2.moe.down_scale"].dtype == torch.float32


@pytest.mark.parametrize("name", ["scout", "maverick_text"])
def test_compressed_tensors_checkpoint(tiny_checkpoint, tmp_path, name):
    """Per-expert F8_E4M3 + weight_scale, first and last MoE layer ignored (kept bf16): loads to the
    very tensors quantizing the original at load gives (skipping the same layers)."""
    folder, _ = tiny_checkpoint(name)
    moe = load_config(folder).text.moe_layers
    skip = (moe[0], moe[-1])
    ct = fc.to_compressed_tensors(folder, tmp_path / "ct", skip=skip)
    _same(_load(ct), _load(folder, quantization="fp8", fp8_skip_layers=skip))
    model = l4.load(ct, dtype="bfloat16")
    assert model.fp8_layers == [i for i in moe if i not in skip]
    logits = model.logits([5, 9, 33, 100, 7])
    assert torch.isfinite(logits).all()


def test_fbgemm_fp8_checkpoint(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("scout")
    fb = fc.to_fbgemm_fp8(folder, tmp_path / "fb", skip=(3,), activation_scale_ub=900.0)
    _same(_load(fb), _load(folder, quantization="fp8", fp8_skip_layers=(3,)))
    assert fp8_plan(fb).activation_scale_ub == 900.0
    assert l4.load(fb, dtype="bfloat16").fp8_layers == [0, 1, 2]


def test_fp8_checkpoint_runs_like_quantizing_at_load(tiny_checkpoint, tmp_path):
    """Same weights and the same activation bound: identical logits."""
    folder, _ = tiny_checkpoint("maverick_text")
    fb = fc.to_fbgemm_fp8(folder, tmp_path / "fb")
    prompt = [5, 9, 33, 100, 7, 8, 200]
    a = l4.load(fb, dtype="bfloat16").logits(prompt)
    b = l4.load(folder, dtype="bfloat16", quantization="fp8").logits(prompt)
    assert torch.equal(a, b)


def test_activation_scale_ub_defaults(tiny_checkpoint, tmp_path):
    """Quantizing at load: Meta's 1200; fbgemm_fp8: the config's; compressed-tensors: none."""
    folder, _ = tiny_checkpoint("scout")
    assert fp8_plan(folder, "fp8", num_layers=4).activation_scale_ub == 1200.0
    assert fp8_plan(folder) is None
    assert fp8_plan(fc.to_compressed_tensors(folder, tmp_path / "ct")).activation_scale_ub == 0.0
    assert fp8_plan(fc.to_compressed_tensors(folder, tmp_path / "ct2"), activation_scale_ub=5.0
                    ).activation_scale_ub == 5.0


def test_activation_scale_ub_reaches_the_engine(tiny_checkpoint):
    """A tiny bound (every row clipped) changes the logits; 0 and None-with-a-large-bound agree."""
    folder, _ = tiny_checkpoint("scout_text")
    prompt = [5, 9, 33, 100, 7]
    free = l4.load(folder, dtype="bfloat16", quantization="fp8", activation_scale_ub=0.0).logits(prompt)
    large = l4.load(folder, dtype="bfloat16", quantization="fp8", activation_scale_ub=1e30).logits(prompt)
    tight = l4.load(folder, dtype="bfloat16", quantization="fp8", activation_scale_ub=1e-3).logits(prompt)
    assert torch.equal(free, large)
    assert not torch.equal(free, tight)


# ---- bad FP8 checkpoints: one error each -----------------------------------------------------------

def _edit_config(folder, fn):
    p = folder / "config.json"
    cfg = json.loads(p.read_text())
    fn(cfg["quantization_config"])
    p.write_text(json.dumps(cfg))


def _edit_tensors(folder, fn):
    t = tc.read_tensors(folder)
    fn(t)
    tc.write_single(t, folder)


R = "language_model.model.layers."


def _bad_cases():
    return {
        "ignore_disagrees": (lambda f: _edit_config(f, lambda q: q["ignore"].append(
            "re:.*layers\\.1\\.feed_forward\\.experts\\..*")),
            "quantization_config leaves them unquantized (ignore list), but layer 1's expert tensor"),
        "ignore_partial": (lambda f: _edit_config(f, lambda q: q["ignore"].append(
            R + "1.feed_forward.experts.2.up_proj")), "but not every expert of layer 1"),
        "missing_scale": (lambda f: _edit_tensors(f, lambda t: t.pop(
            R + "2.feed_forward.experts.3.down_proj.weight_scale")),
            "missing tensor '" + R + "2.feed_forward.experts.3.down_proj.weight_scale'"),
        "fp8_attention": (lambda f: _edit_tensors(f, lambda t: t.update({
            R + "1.self_attn.q_proj.weight": t[R + "1.self_attn.q_proj.weight"].float().to(E4M3)})),
            "is F8_E4M3, but FP8 is supported for the routed experts only"),
        "mixed_layer": (lambda f: _edit_tensors(f, lambda t: t.update({
            f"{R}1.feed_forward.experts.{e}.down_proj.weight":
                t[f"{R}1.feed_forward.experts.{e}.down_proj.weight"].float().bfloat16() for e in range(4)})),
            "layer 1 mixes FP8 and unquantized expert weights"),
        "quant_method": (lambda f: _edit_config(f, lambda q: q.update(quant_method="gptq")),
                         "quant_method 'gptq' is not supported"),
        "per_tensor": (lambda f: _edit_config(f, lambda q: q["config_groups"]["group_0"]["weights"].update(
            strategy="tensor")), "supported: 8-bit float with strategy 'channel'"),
        "static_activations": (lambda f: _edit_config(f, lambda q: q["config_groups"]["group_0"][
            "input_activations"].update(dynamic=False)), "must be dynamic per token"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_fp8_checkpoint(tiny_checkpoint, tmp_path, case):
    folder, _ = tiny_checkpoint("scout")
    ct = fc.to_compressed_tensors(folder, tmp_path / "ct", skip=(0,))
    edit, message = _bad_cases()[case]
    edit(ct)
    with pytest.raises(CheckpointError) as ei:
        _load(ct)
    assert message in str(ei.value)


def test_load_arguments(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("scout_text")
    with pytest.raises(ValueError, match="quantization must be one of"):
        l4.load(folder, quantization="int8")
    with pytest.raises(ValueError, match="not a layer index"):
        l4.load(folder, quantization="fp8", fp8_skip_layers=(4,))
    with pytest.raises(ValueError, match="activation_scale_ub"):
        l4.load(folder, quantization="fp8", activation_scale_ub=-1.0)
    fb = fc.to_fbgemm_fp8(folder, tmp_path / "fb")
    with pytest.raises(ValueError, match="already quantized"):
        l4.load(fb, fp8_skip_layers=(0,))


# ---- the C++ engine's validation of FP8 weight sets --------------------------------------------------

def _engine(folder, weights, dtype="bfloat16"):
    return _C.Engine(load_config(folder).text.to_engine_dict(), dtype, weights, {"kv_cache_bytes": 1 << 20})


@pytest.mark.parametrize("edit,error,message", [
    (lambda w: w.pop("layers.1.moe.down_scale"), ValueError, "missing weight 'layers.1.moe.down_scale'"),
    (lambda w: w.update({"layers.1.moe.gate_up_scale": w["layers.1.moe.gate_up_scale"].bfloat16()}),
     TypeError, "weight 'layers.1.moe.gate_up_scale' must have dtype float32, got bfloat16"),
    (lambda w: w.update({"layers.1.moe.down": w["layers.1.moe.down"].float().bfloat16()}),
     TypeError, "weight 'layers.1.moe.down' must have dtype float8_e4m3fn, got bfloat16"),
    (lambda w: w.update({"layers.1.moe.down_scale": w["layers.1.moe.down_scale"][:, :5].contiguous()}),
     ValueError, "weight 'layers.1.moe.down_scale' must have shape [4, 64], got [4, 5]"),
    (lambda w: w.update({"layers.0.moe.down_scale": torch.ones(4, 64)}),
     ValueError, "unexpected weight 'layers.0.moe.down_scale'"),
])
def test_engine_validates_fp8_weights(tiny_checkpoint, edit, error, message):
    folder, _ = tiny_checkpoint("scout_text")
    w = _load(folder, quantization="fp8", fp8_skip_layers=(0,))
    _engine(folder, dict(w))  # the unedited set is valid
    edit(w)
    with pytest.raises(error) as ei:
        _engine(folder, w)
    assert message in str(ei.value)
