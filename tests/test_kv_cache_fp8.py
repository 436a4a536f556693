"""The FP8 KV cache (kv_cache_dtype="fp8"): e4m3 K and V, one float32 scale per (token, KV head).

Ops: cache_write quantizes each (token, head) row exactly as the torch formulation of
quantize_fp8_rowwise (bit for bit: e4m3 bytes and scales); paged_attention reads float(e4m3) *
scale and equals a float64 masked softmax over those dequantized values (the harness of
test_paged_attention.py, NaN-poisoned unwritten slots included).

Why one scale per token and head: measured below on the tiny models' own K/V (transformers' cache),
e4m3 with a per-row scale keeps the relative error at 2.3-2.6% whatever the values' magnitude,
while one static scale per tensor (vLLM's uncalibrated default, k_scale = v_scale = 1.0) is worse
already at the models' magnitudes (2.4-2.9%) and breaks down outside e4m3's range (saturation
above 448, subnormals below 2^-6); a per-layer scale from the amax needs a calibration pass and is
no better (2.5-2.9%). The scale costs 4 bytes per row: at head_dim 128 a page of the same bytes holds
2 * 128 / 132 = 1.94x the tokens of bf16.

Models: fp32 logits equal transformers' with the same quantization applied to its K/V (5e-6);
against the same model with its own-dtype cache, logits cosine and teacher-forced greedy agreement
(as test_moe_fp8_model.py) are printed and bounded from the measured values (ACCURACY). Prompts are
longer than the chunk, so chunked pages are returned and reused along the way.
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
import tiny_checkpoints as tc
from llama4_native import _C
from llama4_native import attention as attn

from kv_fp8_reference import dequantize_rows, fake_quant_kv, quantize_rows
from test_paged_attention import MIXED, Case

E4M3_MAX = 448.0
TEXT_IDS = tc.IMAGE_IDS["boi_token_index"]  # ids below the tiny vocabulary's image tokens

# Measured (this file, 5 tiny configs x fp32/bf16): logits cosine 0.9911-0.9994, teacher-forced
# greedy agreement 0.896-0.979. The issue asked for cosine >= 0.999; 4 of the 5 tiny configs measure less,
# and transformers with the same quantization of K/V (kv_fp8_reference.py) measures the same
# values to 4 digits in fp32 (scout 0.99673, maverick 0.99943, scout_text 0.99818, maverick_text
# 0.99574, tied_text 0.99058 mean per-position cosine), so the gap is e4m3's 3-bit mantissa (2.4% RMS
# per K/V row) amplified by these random tiny models (their bf16 logits against fp32 already reach a
# per-position cosine of 0.886 at worst: near-tied top-1 routers flip), not the engine: the engine
# equals that reference to 5e-6 (test_fp32_fp8_kv_matches_transformers_with_quantized_kv). Bounds:
# 1 - cosine at most 1.7x the worst measured (0.0089 -> 0.015), agreement 0.046 below the worst.
ACCURACY = {"cosine": 0.985, "agreement": 0.85}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cache_write_bit_exact(dtype):
    g = torch.Generator().manual_seed(0)
    T, KV, d, pages, P = 37, 2, 24, 6, 8
    # Rows of very different magnitudes (a scale per row must follow each), one all-zero row.
    k = (torch.randn(T, KV, d, generator=g) * torch.logspace(-4, 3, T)[:, None, None]).to(dtype)
    v = (torch.randn(T, KV, d, generator=g) * torch.logspace(2, -3, T)[:, None, None]).to(dtype)
    k[5] = 0
    slots = torch.randperm(pages * P, generator=g)[:T].to(torch.int32)
    skipped = int(slots[3])
    slots[3] = -1  # this token is not written
    kc = torch.zeros(pages, P, KV, d, dtype=torch.float8_e4m3fn)
    vc = torch.zeros_like(kc)
    ks = torch.zeros(pages, P, KV)
    vs = torch.zeros_like(ks)
    attn.cache_write(kc, vc, k, v, slots, ks, vs)
    for x, cache, scale in ((k, kc, ks), (v, vc, vs)):
        q, s = quantize_rows(x)
        keep = slots >= 0
        flat_c = cache.view(-1, KV, d)[slots[keep].long()]
        flat_s = scale.view(-1, KV)[slots[keep].long()]
        assert torch.equal(flat_c.view(torch.uint8), q[keep].view(torch.uint8))
        assert torch.equal(flat_s, s[keep])
    assert (ks.view(-1, KV)[skipped] == 0).all() and (kc.view(-1, KV, d)[skipped].float() == 0).all()


def _fp8_case(case: Case):
    """The case's caches as FP8 (per-row quantization of every slot; NaN slots stay NaN) and its
    dense K/V replaced by their dequantized values, so that case.reference() is the exact answer."""
    kq, ks = quantize_rows(case.k_cache)
    vq, vs = quantize_rows(case.v_cache)
    case.K = [dequantize_rows(*quantize_rows(x)) for x in case.K]
    case.V = [dequantize_rows(*quantize_rows(x)) for x in case.V]
    return kq, vq, ks, vs


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk,page", [(0, 4), (12, 4), (16, 8)])
@pytest.mark.parametrize("H,KV,d", [(4, 2, 24), (8, 2, 64), (5, 1, 128)])
def test_paged_attention_fp8_vs_reference(dtype, chunk, page, H, KV, d):
    from test_paged_attention import assert_matches

    g = torch.Generator().manual_seed(1)
    case = Case(MIXED, H, KV, d, torch.float32, page, chunk, g)
    kq, vq, ks, vs = _fp8_case(case)
    case.q = case.q.to(dtype)
    case.dtype = dtype
    out = attn.paged_attention(case.q, kq, vq, case.page_table, case.query_seq, case.query_pos,
                               chunk_size=chunk, k_scale=ks, v_scale=vs)
    assert_matches(out, case.reference(), dtype)
    # temperature tuning and forced kv splits read the same values
    out2 = attn.paged_attention(case.q, kq, vq, case.page_table, case.query_seq, case.query_pos,
                                chunk_size=chunk, k_scale=ks, v_scale=vs, attn_scale=0.1, floor_scale=4.0,
                                kv_splits=3)
    assert_matches(out2, case.reference(attn_scale=0.1, floor_scale=4.0), dtype)


def test_fp8_cache_errors():
    kc = torch.zeros(2, 4, 1, 8, dtype=torch.float8_e4m3fn)
    k = torch.zeros(1, 1, 8)
    slots = torch.zeros(1, dtype=torch.int32)
    with pytest.raises(ValueError, match="k_scale"):
        attn.cache_write(kc, kc.clone(), k, k, slots)
    with pytest.raises(ValueError, match="k_scale"):
        attn.cache_write(kc, kc.clone(), k, k, slots, torch.zeros(2, 4, 2), torch.zeros(2, 4, 1))
    with pytest.raises(TypeError, match="k_scale"):
        attn.cache_write(kc, kc.clone(), k, k, slots, torch.zeros(2, 4, 1, dtype=torch.float16),
                         torch.zeros(2, 4, 1))
    bf = torch.zeros(2, 4, 1, 8, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="scales are for float8_e4m3fn"):
        attn.cache_write(bf, bf.clone(), k.bfloat16(), k.bfloat16(), slots, torch.zeros(2, 4, 1),
                         torch.zeros(2, 4, 1))
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        l4.load("/nonexistent", kv_cache_dtype="fp4")
    c = attn.KVCache(num_layers=1, layer_chunked=[0], num_kv_heads=1, head_dim=8, chunk_size=0,
                     num_pages_chunked=0, num_pages_global=2)
    with pytest.raises(ValueError, match="only FP8 caches have scales"):
        c.k_scale(0)


def test_fp8_cache_storage_and_capacity():
    """Scales live next to the pages; a budget holds 2d/(d+4) times the bf16 tokens."""
    kw = dict(num_layers=4, layer_chunked=[1, 1, 1, 0], num_kv_heads=2, head_dim=24, chunk_size=8,
              budget_bytes=1 << 20, max_seqs=2)
    bf = attn.KVCache.from_budget(dtype="bfloat16", **kw)
    f8 = attn.KVCache.from_budget(dtype="float8_e4m3fn", **kw)
    assert f8.storage_bytes() <= 1 << 20
    assert f8.k(3).dtype == torch.float8_e4m3fn and f8.k_scale(3).shape == (f8.total_pages(1), 16, 2)
    page = dict(num_layers=4, layer_chunked=[1, 1, 1, 0], num_kv_heads=2, head_dim=24, page_size=16,
                chunk_size=8)
    bf_bytes = _C.kv_page_bytes(dtype="bfloat16", **page)
    f8_bytes = _C.kv_page_bytes(dtype="float8_e4m3fn", **page)
    assert [b * 28 for b in bf_bytes] == [b * 48 for b in f8_bytes]  # rows: 48 bytes bf16, 24 + 4 FP8
    # the chunked pool is the same pages (max_seqs windows); the rest of the bytes go global
    assert f8.total_pages(0) == bf.total_pages(0) and f8.total_pages(1) >= 48 / 28 * bf.total_pages(1)
    scout = l4.plan(preset="scout", gpu_memory="h200", quantization="fp8", kv_cache_dtype="fp8")
    scout_bf = l4.plan(preset="scout", gpu_memory="h200", quantization="fp8")
    assert scout.kv_bytes_per_token["global"] * 256 == scout_bf.kv_bytes_per_token["global"] * 132
    # more than 1.94x: the chunked layers' windows shrink too, leaving more for the global layers
    assert scout.max_context > 1.94 * scout_bf.max_context


@pytest.mark.parametrize("name", ["scout", "maverick_text"])
def test_scale_choice_measured(tiny_checkpoint, name):
    """Per (token, head) scales against one static scale of 1.0 (vLLM's default without
    calibration) on the tiny model's K/V, at its own magnitude and scaled by 1e3 and 1e-3."""
    _, hf = tiny_checkpoint(name)
    lm = getattr(hf, "language_model", hf)
    ids = torch.randint(3, 500, (1, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pkv = lm(input_ids=ids, use_cache=True).past_key_values
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()  # noqa: E731
    for layer in pkv.layers:
        for x in (layer.keys.float(), layer.values.float()):
            for mag in (1.0, 1e3, 1e-3):
                y = x * mag
                per_row = rel(dequantize_rows(*quantize_rows(y)), y)
                static = rel(torch.clamp(y, -E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn).float(), y)
                assert per_row < 0.03, (mag, per_row)  # e4m3's 3 mantissa bits: ~2.4% RMS
                if mag != 1.0:
                    assert static > 2 * per_row, (mag, static, per_row)


def _forced_agreement(ref, model, prompts, steps):
    agree = total = 0
    for prompt in prompts:
        gen = ref.generate(input_ids=prompt, max_new_tokens=steps, temperature=0.0, stop_token_ids=[]).token_ids
        logits = model.logits(prompt + gen)[len(prompt) - 1: -1]
        agree += int((logits.argmax(-1) == torch.tensor(gen)).sum())
        total += len(gen)
    return agree / total


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("name", ["scout", "maverick", "scout_text", "maverick_text", "tied_text"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_model_fp8_kv_accuracy(tiny_checkpoint, name, dtype):
    """FP8 KV against the model's own-dtype KV: logits cosine (all positions of 4 prompts, flattened)
    and teacher-forced greedy agreement, printed. See ACCURACY for the measured values and bounds."""
    folder, _ = tiny_checkpoint(name)
    ref = l4.load(folder, dtype=dtype, kv_cache_bytes=4 << 20)
    f8 = l4.load(folder, dtype=dtype, kv_cache_bytes=4 << 20, kv_cache_dtype="fp8")
    g = torch.Generator().manual_seed(7)
    # text ids only: generate() refuses the image placeholder ids (tiny_checkpoints.IMAGE_IDS) without images
    prompts = [torch.randint(3, TEXT_IDS, (n,), generator=g).tolist() for n in (40, 57, 23, 64)]
    cos = _cosine(torch.cat([ref.logits(p) for p in prompts]), torch.cat([f8.logits(p) for p in prompts]))
    agreement = _forced_agreement(ref, f8, prompts, 24)
    print(f"\n{name} {dtype}: FP8 KV vs {dtype} KV: logits cosine {cos:.5f}, "
          f"teacher-forced greedy agreement {agreement:.3f}")
    assert cos >= ACCURACY["cosine"] and agreement >= ACCURACY["agreement"]


@pytest.mark.parametrize("name", ["scout", "maverick", "scout_text", "maverick_text", "tied_text"])
def test_fp32_fp8_kv_matches_transformers_with_quantized_kv(tiny_checkpoint, name):
    """The engine's FP8 cache is exactly the quantization it claims: fp32 logits equal transformers'
    with every K/V row passed through the same e4m3 quantization (prompt longer than 2 chunks)."""
    folder, hf = tiny_checkpoint(name)
    model = l4.load(folder, dtype="float32", kv_cache_dtype="fp8")
    prompt = torch.randint(3, model.vocab_size, (29,), generator=torch.Generator().manual_seed(3)).tolist()
    ours = model.logits(prompt)
    with fake_quant_kv(hf), torch.inference_mode():
        ref = hf(input_ids=torch.tensor([prompt])).logits[0].float()
    err = (ours - ref).abs().max().item()
    print(f"\n{name}: FP8 KV vs transformers with quantized K/V: max|dlogit| = {err:.2e}")
    assert err <= 1e-4


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk,page", [(0, 4), (12, 4)])
@pytest.mark.parametrize("H,KV,d", [(4, 2, 24), (5, 1, 128)])
def test_fp8_cache_cuda_matches_cpu(dtype, chunk, page, H, KV, d):
    """The CUDA twin: cache writes bit for bit, attention over the FP8 cache to fp32 rounding."""
    g = torch.Generator().manual_seed(5)
    T, pages = 29, 12
    k = (torch.randn(T, KV, d, generator=g) * torch.logspace(-2, 2, T)[:, None, None]).to(dtype)
    v = torch.randn(T, KV, d, generator=g).to(dtype)
    slots = torch.randperm(pages * page, generator=g)[:T].to(torch.int32)
    caches = {}
    for dev in ("cpu", "cuda"):
        kc = torch.zeros(pages, page, KV, d, dtype=torch.float8_e4m3fn, device=dev)
        vc, ks, vs = torch.zeros_like(kc), torch.zeros(pages, page, KV, device=dev), torch.zeros(pages, page, KV, device=dev)
        attn.cache_write(kc, vc, k.to(dev), v.to(dev), slots.to(dev), ks, vs)
        torch.cuda.synchronize()
        caches[dev] = [t.cpu() for t in (kc, vc, ks, vs)]
    for a, b in zip(caches["cpu"], caches["cuda"]):
        assert torch.equal(a.view(torch.uint8) if a.dtype == torch.float8_e4m3fn else a,
                           b.view(torch.uint8) if b.dtype == torch.float8_e4m3fn else b)
    case = Case(MIXED, H, KV, d, torch.float32, page, chunk, g)
    kq, vq, ks, vs = _fp8_case(case)
    q = case.q.to(dtype)
    args = (case.page_table, case.query_seq, case.query_pos)
    cpu = attn.paged_attention(q, kq, vq, *args, chunk_size=chunk, k_scale=ks, v_scale=vs)
    gpu = attn.paged_attention(q.cuda(), kq.cuda(), vq.cuda(), *(t.cuda() for t in args), chunk_size=chunk,
                               k_scale=ks.cuda(), v_scale=vs.cuda(), kernel="split_kv")  # prefill: its own test
    tol = 1e-5 if dtype == torch.float32 else 2.0 ** -7
    torch.testing.assert_close(gpu.cpu().double(), cpu.double(), rtol=tol, atol=1e-5)


@pytest.mark.parametrize("half", [0, 1])
def test_every_e4m3_code_reads_back_exactly(half):
    # One key: its softmax weight is exactly 1, so the output is its V row as the kernel reads it,
    # float(e4m3) * scale, for 128 codes at a time (eight-lane conversion and its scalar tail:
    # head_dim 132 = 16 vectors + 4).
    d, scale = 132, 0.37109375
    codes = torch.cat([torch.arange(128 * half, 128 * half + 128), torch.tensor([0x7F, 0xFF, 0x01, 0x81])])
    vq = codes.to(torch.uint8).view(torch.float8_e4m3fn).reshape(1, 1, 1, d)
    kq = torch.zeros_like(vq)
    ks = torch.ones(1, 1, 1)
    vs = torch.full((1, 1, 1), scale)
    q = torch.randn(1, 1, d)
    out = attn.paged_attention(q, kq, vq, torch.zeros(1, 1, dtype=torch.int32), torch.zeros(1, dtype=torch.int32),
                               torch.zeros(1, dtype=torch.int32), chunk_size=0, k_scale=ks, v_scale=vs)
    want = vq.float().reshape(d) * torch.tensor(scale)  # torch's e4m3 -> float, then the one product
    got = out.reshape(d)
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got[~want.isnan()], want[~want.isnan()])
