"""The memory planner against what the engine allocates, to the byte, and its answers on the
published configs (sums a reader can redo by hand from the config fields, LLAMA4.md §1)."""
from __future__ import annotations

import math

import pytest
import torch

import llama4_native as l4
from llama4_native import _C
from llama4_native.cli import main as cli_main
from llama4_native.plan import parse_bytes

import fp8_checkpoints as f8

TINY = ["scout", "maverick", "scout_text", "maverick_text", "tied_text"]


def _engine_bytes(model) -> tuple[int, int]:
    """(text + vision weight bytes the loaded model holds, KV storage the engine allocated)."""
    tensors = [torch.from_dlpack(t) if not isinstance(t, torch.Tensor) else t
               for t in model._checkpoint.text_weights.values()]
    weights = sum(t.numel() * t.element_size() for t in tensors)
    if model.config.vision is not None:
        vis = dict(_C.vision_weight_stream(model._checkpoint.checkpoint, model.config.vision, model.dtype))
        weights += sum(torch.from_dlpack(t).numel() * torch.from_dlpack(t).element_size() for t in vis.values())
    return weights, model._engine.kv_cache_storage_bytes()


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_planner_matches_engine_to_the_byte(tiny_checkpoint, name, dtype):
    folder, _ = tiny_checkpoint(name)
    budget, seqs = 3 << 20, 3
    model = l4.load(folder, dtype=dtype, kv_cache_bytes=budget, max_sequences=seqs)
    weights, kv = _engine_bytes(model)
    p = l4.plan(folder, kv_cache_bytes=budget, max_sequences=seqs, dtype=dtype)
    assert p.weight_bytes == weights
    pool = p.kv_pool(seqs)
    assert pool["pool_bytes"] == kv
    assert (pool["num_pages_chunked"], pool["num_pages_global"]) == (
        model._engine.total_pages(0), model._engine.total_pages(1))


@pytest.mark.parametrize("quant", ["at_load", "compressed", "fbgemm"])
def test_planner_matches_engine_fp8(tiny_checkpoint, tmp_path, quant):
    folder, _ = tiny_checkpoint("maverick_text")
    kwargs = {}
    if quant == "at_load":
        kwargs = dict(quantization="fp8", fp8_skip_layers=(-1,))
    elif quant == "compressed":
        folder = f8.to_compressed_tensors(folder, tmp_path / "ct", skip=(3,))
    else:
        folder = f8.to_fbgemm_fp8(folder, tmp_path / "fb", skip=(3,))
    model = l4.load(folder, kv_cache_bytes=1 << 20, max_sequences=2, **kwargs)
    assert model.fp8_layers  # the control: this load has FP8 experts
    weights, kv = _engine_bytes(model)
    p = l4.plan(folder, kv_cache_bytes=1 << 20, max_sequences=2, **kwargs)
    assert p.fp8_layers == model.fp8_layers
    assert p.weight_bytes == weights
    assert p.kv_pool(2)["pool_bytes"] == kv


@pytest.mark.parametrize("quant", ["at_load", "pack_quantized", "two_gpus"])
def test_planner_matches_engine_int4(tiny_checkpoint, tmp_path, quant):
    """INT4 (packed uint8 + bf16 group scales) routed experts, shared experts and dense MLPs,
    quantized at load, stored pack-quantized (llm-compressor's recipe, written by compressed-tensors)
    and per GPU of two ranks (the down projections cut on group boundaries): weights and KV pool to
    the byte."""
    import int4_checkpoints as i4

    folder, _ = tiny_checkpoint("maverick_i32")  # intermediate 128, 192: groups of 32
    kwargs, gpus = dict(quantization="int4", int4_group_size=32, fp8_skip_layers=(-1,)), 1
    if quant == "pack_quantized":
        folder, kwargs = i4.to_pack_quantized(folder, tmp_path / "ct", 32, skip=(3,)), {}
    elif quant == "two_gpus":
        kwargs, gpus = dict(quantization="int4", int4_group_size=32), 2
    model = l4.load(folder, dtype="float32", kv_cache_bytes=1 << 20, max_sequences=2,
                    tensor_parallel_size=gpus, **kwargs)
    try:
        # the control: this load has INT4 experts (layer 3 skipped or ignored, except on two GPUs)
        assert model.int4_layers == ([1, 3] if gpus == 2 else [1])
        assert model.int4_mlp_layers == ([0, 1, 2, 3] if gpus == 2 else [0, 1, 2])  # dense 0, 2; MoE 1, 3
        weights, kv = _engine_bytes(model)
        p = l4.plan(folder, kv_cache_bytes=1 << 20, max_sequences=2, dtype="float32", gpus=gpus,
                    **kwargs)
        assert p.fp8_layers == model.int4_layers and p.int4_group_size == 32 and p.quantization == "int4"
        assert p.int4_mlp_layers == model.int4_mlp_layers
        assert p.weight_bytes == weights
        assert p.kv_pool(2)["pool_bytes"] == kv
    finally:
        model.close()


def test_long_context_uses_only_global_layers(tiny_checkpoint):
    """The engine really runs the planner's longest context (chunk 8, budget for 192
    tokens): one token more does not fit."""
    folder, _ = tiny_checkpoint("maverick_text")
    p = l4.plan(folder, kv_cache_bytes=128 << 10, max_sequences=1, dtype="float32")
    model = l4.load(folder, dtype="float32", kv_cache_bytes=128 << 10, max_sequences=1)
    assert 0 < p.max_context < model.max_context
    seq = model._new_sequence()
    model._step([(seq, [5] * p.max_context, False)])
    with pytest.raises(l4.CacheFullError):
        model._step([(seq, [5], False)])
    model._free_sequence(seq)


@pytest.mark.parametrize("name", ["scout_text", "maverick_text"])
def test_planner_per_gpu_matches_parallel_engine(tiny_checkpoint, name):
    """gpus=2 against rank 0 of load(..., tensor_parallel_size=2): its weights and KV pool, to the
    byte (scout_text: 2 KV heads, one per rank; vocabulary rows padded with the two zero rows)."""
    folder, _ = tiny_checkpoint(name)
    model = l4.load(folder, dtype="float32", tensor_parallel_size=2, kv_cache_bytes=1 << 20, max_sequences=2)
    try:
        weights, kv = _engine_bytes(model)
        p = l4.plan(folder, kv_cache_bytes=1 << 20, max_sequences=2, dtype="float32", gpus=2, vision=False)
        assert p.weight_bytes == weights
        assert p.kv_pool(2)["pool_bytes"] == kv
    finally:
        model.close()


def _gib(x):
    return x / 2**30


def test_scout_preset_by_hand():
    """Scout bf16 on one H100 80 GB (nvidia-smi 81559 MiB): weight parts and KV per token from the
    config fields (D 5120, 48 layers, 16 experts of I 8192, H 40 / KV 8 of d 128, V 202048, 12
    NoPE layers)."""
    p = l4.plan(preset="scout", gpu_memory="h100")
    D, I, E, V, L, d = 5120, 8192, 16, 202048, 48, 128
    assert p.weights["experts"] == L * E * 3 * I * D * 2
    assert p.weights["shared_expert"] == L * (3 * I * D + E * D) * 2
    assert p.weights["attention"] == L * ((40 + 16) * d * D + D * 40 * d) * 2
    assert p.weights["embeddings"] == 2 * V * D * 2
    assert p.weights["dense_mlp"] == 0
    assert p.kv_bytes_per_token == {"chunked": 36 * 2 * 8 * d * 2, "global": 12 * 2 * 8 * d * 2}
    # ~217 GB of weights: bf16 Scout does not fit one H100
    assert 200 < _gib(p.weight_bytes) < 205 and not p.fits
    # FP8 experts: 1 byte + a float32 scale per output row
    q = l4.plan(preset="scout", gpu_memory="h100", quantization="fp8")
    assert q.weights["experts"] == L * E * (3 * I * D + (2 * I + D) * 4)
    assert not q.fits  # ~112 GiB: FP8 Scout does not fit one H100 either, but fits an H200
    h = l4.plan(preset="scout", gpu_memory="h200", quantization="fp8")
    # 140.4 GiB x 0.9 - 112.4 GiB weights - 3.4 GiB workspace = 10.6 GiB over 48 KiB a token
    assert h.fits and h.max_context == h.kv_pool(1)["num_pages_global"] * 16
    assert 10 < _gib(h.kv_budget_bytes) < 11 and 175_000 < h.max_context < 190_000


def test_scout_int4_by_hand():
    """INT4 routed experts and shared expert (what llm-compressor's W4A16 recipe stores and
    quantization="int4" makes): half a byte per weight plus a bf16 scale per 128 inputs of each
    output row; the rest stays bf16. Meta says Scout fits one H100 in INT4; our planner agrees: 60.4
    GiB of weights with the vision tower, at the default 90% of the memory 7.9 GiB of KV, a 122k
    context with the bf16 cache, 284k with the FP8 cache (the chunked layers' 8k window costs most).
    (With only the routed experts INT4 it was 68.8 GiB, no room for KV at 90%.)"""
    D, I, E, L = 5120, 8192, 16, 48
    int4 = 3 * I * D // 2 + (2 * I * D // 128 + D * I // 128) * 2  # one SwiGLU of width I in INT4
    p = l4.plan(preset="scout", gpu_memory="h100", quantization="int4")
    assert p.weights["experts"] == L * E * int4
    assert p.weights["shared_expert"] == L * (int4 + E * D * 2)  # + the bf16 router
    assert p.int4_group_size == 128 and len(p.fp8_layers) == L and p.int4_mlp_layers == list(range(L))
    bf16 = l4.plan(preset="scout", gpu_memory="h100")
    assert {k: v for k, v in p.weights.items() if k not in ("experts", "shared_expert")} == \
        {k: v for k, v in bf16.weights.items() if k not in ("experts", "shared_expert")}
    assert 60 < _gib(p.weight_bytes) < 61 and p.fits
    assert 7.5 < _gib(p.kv_budget_bytes) < 8.5 and 100_000 < p.max_context < 150_000
    fp8kv = l4.plan(preset="scout", gpu_memory="h100", quantization="int4", kv_cache_dtype="fp8")
    assert fp8kv.max_context > 2 * p.max_context
    # skipping the first and last layers (Meta's FP8 recipe) keeps both kinds of weights bf16 there
    skip = l4.plan(preset="scout", gpu_memory="h100", quantization="int4", fp8_skip_layers=(0, -1))
    assert skip.fp8_layers == skip.int4_mlp_layers == list(range(1, L - 1))


def test_maverick_per_gpu_sharding():
    """8 ranks: 16 of 128 experts, 5 of 40 query heads and 1 of 8 KV heads per GPU."""
    one = l4.plan(preset="maverick", gpu_memory="h100", quantization="fp8")
    eight = l4.plan(preset="maverick", gpu_memory="h100", quantization="fp8", gpus=8)
    assert eight.weights["experts"] * 8 == one.weights["experts"]
    assert eight.kv_bytes_per_token["global"] * 8 == one.kv_bytes_per_token["global"]
    D, d = 5120, 128
    assert eight.weights["attention"] == 48 * ((5 + 2) * d * D + D * 5 * d) * 2
    assert eight.weights["vision"] == one.weights["vision"]  # replicated
    assert not one.fits and eight.fits
    # the parallel engine's rules: 40 query heads do not split over 16 ranks
    with pytest.raises(ValueError, match="tensor_parallel_size 16 must divide num_attention_heads"):
        l4.plan(preset="maverick", gpu_memory="h100", quantization="fp8", gpus=16)


def test_sequences_monotone_and_bounded():
    p = l4.plan(preset="scout", gpu_memory="h200", quantization="fp8", max_model_len=1 << 20)
    counts = [p.max_sequences(n) for n in (8192, 32768, 131072, 1 << 20)]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0
    assert p.max_sequences((1 << 20) + 1) == 0  # longer than max_model_len
    per_seq_global = p.kv_bytes_per_token["global"] * 32768
    assert counts[1] <= p.kv_budget_bytes // per_seq_global


def test_parse_bytes_and_errors():
    assert parse_bytes("80GiB") == 80 << 30 and parse_bytes("141GB") == 141 * 10**9
    assert parse_bytes("h200") == 143771 << 20
    for bad in ("80 parsecs", "-1GB", "", True):
        with pytest.raises(ValueError, match="gpu_memory"):
            parse_bytes(bad)
    with pytest.raises(ValueError, match="preset"):
        l4.plan(preset="llama3", gpu_memory="80GiB")
    with pytest.raises(ValueError, match="exactly one of model"):
        l4.plan(gpu_memory="80GiB")
    with pytest.raises(ValueError, match="gpus"):
        l4.plan(preset="scout", gpu_memory="80GiB", gpus=0)
    with pytest.raises(ValueError, match="max_model_len"):
        l4.plan(preset="maverick", gpu_memory="80GiB", max_model_len=1 << 30)
    with pytest.raises(ValueError, match="quantization"):
        l4.plan(preset="scout", gpu_memory="80GiB", quantization="int3")


def test_cli_plan(capsys, tiny_checkpoint):
    assert cli_main(["plan", "--preset", "maverick", "--gpu-memory", "80GiB", "--gpus", "8",
                     "--quantization", "fp8"]) == 0
    out = capsys.readouterr().out
    assert "per GPU of 8" in out and "longest context" in out and "experts" in out
    folder, _ = tiny_checkpoint("scout")
    assert cli_main(["plan", "--model", str(folder), "--gpu-memory", "4GiB", "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    assert d["max_context"] == 256 and d["weight_bytes"] > 0
    assert cli_main(["plan", "--preset", "scout", "--gpu-memory", "lots"]) == 2
    assert "gpu_memory" in capsys.readouterr().err


def test_kv_bytes_per_token_matches_cache_pages():
    """The per-token figures are the engine cache's page bytes over the page size."""
    p = l4.plan(preset="scout", gpu_memory="h200", quantization="fp8")
    chunked = [1 if (i + 1) % 4 else 0 for i in range(48)]
    b0, b1 = _C.kv_page_bytes(num_layers=48, layer_chunked=chunked, num_kv_heads=8, head_dim=128,
                              dtype="bfloat16", page_size=16, chunk_size=8192)
    assert (b0 // 16, b1 // 16) == (p.kv_bytes_per_token["chunked"], p.kv_bytes_per_token["global"])
    assert math.ceil(8192 / 16) + 8192 // 16 + 1 == p.chunked_pages_per_sequence


def test_gpu_memory_utilization_reserves_the_planners_workspace(monkeypatch):
    """One formula: the reserve load(..., gpu_memory_utilization=F) keeps for a step's activations
    is the planner's workspace (less the CUDA context, which the driver's used figure already
    holds at run time), and the KV budget is the share less what is used less that reserve."""
    from llama4_native import gpu_memory
    from llama4_native.config import load_config
    from llama4_native.plan import CUDA_RESERVE_BYTES, step_workspace_bytes
    from llama4_native.plan_presets import PRESETS

    text = load_config(PRESETS["maverick"]).text
    for gpus in (1, 8):
        p = l4.plan(preset="maverick", gpu_memory="h100", gpus=gpus, quantization="fp8", max_sequences=16)
        want = step_workspace_bytes(text, "bfloat16", 16, gpus)
        assert p.workspace_bytes == want + CUDA_RESERVE_BYTES
        assert 1 << 30 < want < 8 << 30  # a whole 8192-token chunk's activations: GiBs, not 2% of a GPU

    class FakeC:  # 80 GiB GPU with 50 GiB in use after the weights
        @staticmethod
        def cuda_memory_info(index):
            return (30 << 30, 80 << 30)

    monkeypatch.setattr(gpu_memory, "_C", FakeC)
    assert gpu_memory.kv_bytes_from_gpu_memory("cuda:0", 0.9, 3 << 30) == int(0.9 * (80 << 30)) - (50 << 30) - (3 << 30)
    with pytest.raises(ValueError, match="nothing is left for the KV cache"):
        gpu_memory.kv_bytes_from_gpu_memory("cuda:0", 0.6, 3 << 30)
