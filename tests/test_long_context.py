"""Long context, proven small: a tiny model with attention_chunk_size 256 run to a 32k-token context
on the CPU against transformers (fp32 logits of the last positions <= 1e-4), with the chunked
layers' KV pages bounded by the window throughout (read from the cache's page counters after every
step), with the model-dtype and the FP8 KV cache.

The model: 4 layers (RoPE chunked-local layers 0-2, NoPE global layer 3), MoE top-1, qk-norm, llama3
RoPE, floor_scale 1024 so that the NoPE layer's temperature tuning takes 32 different values over
the context. The engine is fed 1000 tokens a step (each step runs as passes of at most one chunk); after
every step the chunked pool holds at most KVCacheConfig.chunked_pages_bound pages (33: the window of
256 tokens and one step's chunk, in pages of 16) while the global pool holds every page of the
sequence. transformers runs the same tokens through its own cache, 256 tokens a call (chunk-aligned,
so its chunked-attention masks stay small), and both give the logits of the last 8 positions.

FP8 KV: the reference is transformers with every K/V row passed through the same e4m3 quantization
(kv_fp8_reference.py). Rounding makes the comparison discontinuous: our fp32 K/V and transformers'
differ by fp32 rounding, a value that close to an e4m3 rounding boundary gets the neighbouring
code on one side, and that difference (one step, 6% of one element) propagates to later layers and
tokens (and can flip these tiny models' near-tied top-1 routers). Over 32k tokens 0.11% of the
global layer's key codes differ and the last logits by 2.7e-4 (6.7e-5 at 4k tokens, 1.8e-3 at 8k):
the 1e-4 the model-dtype cache meets (2.9e-6) does not hold for FP8. What the test asserts instead:
the codes agree but for <= 1% of them, and the engine's logits are within 10% of the distance FP8
moves transformers' own logits (measured 0.1-2%), so a wrong scale or rounding rule fails it.
"""
from __future__ import annotations

import contextlib
import math

import pytest
import torch

import llama4_native as l4
import tiny_checkpoints as tc
from kv_fp8_reference import fake_quant_kv, quantize_rows

CHUNK = 256
CONTEXT = 32768
STEP = 1000  # not a multiple of the chunk: the window is part-full after most steps
LAST = 8
PAGE = 16
GLOBAL_LAYER = 3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    text = dict(tc.TEXT_BASE, attention_chunk_size=CHUNK, max_position_embeddings=CONTEXT + 64,
                floor_scale=1024, num_experts_per_tok=1, interleave_moe_layer_step=1, use_qk_norm=True,
                no_rope_layers=[1, 1, 1, 0], rope_parameters=tc._llama3(1.0, 4.0))
    torch.manual_seed(0)
    hf = Llama4ForCausalLM(Llama4TextConfig(**text)).float().eval()
    tc._randomize(hf, 0)
    folder = tmp_path_factory.mktemp("long_context")
    hf.save_pretrained(folder)
    ids = torch.randint(3, text["vocab_size"], (CONTEXT,), generator=torch.Generator().manual_seed(11)).tolist()
    return folder, hf, ids


def _hf_last_logits(hf, ids):
    """transformers' logits of the last LAST positions, fed CHUNK tokens a call through its cache."""
    from transformers import DynamicCache

    cache = DynamicCache(config=hf.config)
    with torch.inference_mode():
        for start in range(0, len(ids), CHUNK):
            out = hf(input_ids=torch.tensor([ids[start:start + CHUNK]]), past_key_values=cache, use_cache=True)
    return out.logits[0, -LAST:].float()


def _engine_last_logits(model, ids):
    """The engine's logits of the last LAST positions, and the global layer's cache as stored
    (k, k_scale: [T, KV, d], [T, KV]; scale None for a model-dtype cache); asserts the page
    counters after every step."""
    eng = model._engine
    bound = l4.KVCache.chunked_pages_bound(PAGE, CHUNK, CHUNK)
    assert bound == 33
    seq = model._new_sequence()
    peak = 0
    try:
        for start in range(0, len(ids), STEP):
            piece = ids[start:start + STEP]
            last = start + STEP >= len(ids)
            if last:  # all rows of the last step: its final LAST rows are compared
                logits = model._step([(seq, piece, True)])[-LAST:]
            else:
                model._step([(seq, piece, False)])
            length = start + len(piece)
            chunked_used = eng.total_pages(0) - eng.free_pages(0)
            global_used = eng.total_pages(1) - eng.free_pages(1)
            peak = max(peak, chunked_used)
            # The window: the current chunk's pages (the chunk start floor(L/C)*C onwards).
            assert chunked_used <= bound, (length, chunked_used)
            assert chunked_used == math.ceil(length / PAGE) - (length // CHUNK * CHUNK) // PAGE
            assert global_used == math.ceil(length / PAGE)
        k, _, k_scale, _ = (torch.from_dlpack(t) if t is not None else None
                            for t in eng.kv_cache_layer(GLOBAL_LAYER))
        pages = eng.pages_of(seq, 1)
        slots = torch.tensor([pages[t // PAGE] * PAGE + t % PAGE for t in range(len(ids))])
        stored = (k.reshape(-1, *k.shape[2:])[slots].clone(),
                  None if k_scale is None else k_scale.reshape(-1, k_scale.shape[-1])[slots].clone())
    finally:
        model._free_sequence(seq)
    assert eng.free_pages(0) == eng.total_pages(0) and eng.free_pages(1) == eng.total_pages(1)
    return logits, peak, stored


@pytest.fixture(scope="module")
def hf_plain(long_model):
    """transformers' logits of the last positions with its own (fp32) cache."""
    _, hf, ids = long_model
    return _hf_last_logits(hf, ids)


@pytest.mark.parametrize("kv_cache_dtype", ["auto", "fp8"])
def test_32k_context_matches_transformers(long_model, hf_plain, kv_cache_dtype):
    folder, hf, ids = long_model
    # Room for the whole context on the global layer and one sequence's window on the others.
    model = l4.load(folder, dtype="float32", kv_cache_dtype=kv_cache_dtype, max_sequences=1,
                    kv_cache_bytes=CONTEXT * 2 * 2 * 24 * 4 + (8 << 20))
    ours, peak, (k_ours, _) = _engine_last_logits(model, ids)
    captured = {}
    if kv_cache_dtype == "fp8":
        with fake_quant_kv(hf, captured):
            ref = _hf_last_logits(hf, ids)
    else:
        ref = hf_plain
    err = (ours - ref).abs().max().item()
    print(f"\n32k context, KV {kv_cache_dtype}: last {LAST} positions max|dlogit| = {err:.2e} "
          f"(logit scale {ref.abs().max().item():.1f}); chunked-layer pages at most {peak} of "
          f"{model._engine.total_pages(0)}, global pages {CONTEXT // PAGE}")
    if kv_cache_dtype != "fp8":
        assert err <= 1e-4
        return
    # FP8 (see the module docstring): the e4m3 codes of the global layer's 32k keys equal
    # transformers' but where a value sits at a rounding boundary (measured 0.11%; a quantizer with
    # another rule or scale would differ on a large share), and the logits differ from transformers'
    # FP8 run by a small part of what FP8 moves them (measured 0.1-2% at 3k-32k tokens: bound 10%).
    hf_codes, _ = quantize_rows(captured[GLOBAL_LAYER][0][0].transpose(0, 1))  # [T, KV, d]
    differ = (k_ours.view(torch.uint8) != hf_codes.view(torch.uint8)).float().mean().item()
    shift = (ref - hf_plain).abs().max().item()
    print(f"e4m3 codes of the global layer's keys differing from transformers': {differ:.2e}; "
          f"FP8 moves transformers' logits by {shift:.2e}, the engine is {err / shift:.1%} of that away")
    assert differ <= 0.01
    assert err <= 0.1 * shift
