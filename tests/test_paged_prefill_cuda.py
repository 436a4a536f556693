"""The tensor-core paged prefill kernel (csrc/cuda/paged_prefill_attention.cu) against the CPU
paged attention twin and a float64 reference (marked `cuda`: skipped without a GPU).

Tolerance, derived rather than tuned. Q, K and V reach the tensor cores exactly (bf16 values; FP8
caches as e4m3 with their scales applied in fp32), products and sums are fp32, and the one extra
rounding is P to bf16 before P V: |dp_j| <= 2^-8 p_j (bf16 keeps 8 significant bits; FP8 caches
round p_j * v_scale_j instead, the same relative bound). The row sum uses the unrounded p, so an
output element differs from the exact softmax(q k^T) v by at most
    2^-8 * w,   w = sum_j p_j |v_j| / sum_j p_j     (the softmax-weighted mean of |v| in that column)
before it is rounded to bf16 (half an ulp), while the CPU's result is within half an ulp (plus fp32
noise) of the exact value. Hence |gpu - cpu| <= 2^-8 w + ulp_bf16 + 2^-13 w: the two half ulps are
taken at the largest of the magnitudes involved (a value may round in the binade above the other's),
and 2^-13 w covers the fp32 rounding of the sums in both kernels (at most n 2^-24 relative over n
<= 2048 keys; scores' fp32 rounding, about d 2^-24 |q||k| * scale, is far smaller).
A Python emulation of the kernel's arithmetic (64-key tiles, exp2, P rounded to bf16) stays within
0.86 of this bound on test_prefill_matches_cpu's cases, with about 2/3 of outputs equal to the CPU's.
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
from llama4_native import attention as attn

from kv_fp8_reference import dequantize_rows, quantize_rows
from test_paged_attention import Case, temperature

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not (l4.cuda_available() and torch.cuda.is_available()),
                       reason="needs the CUDA backend and a GPU"),
]

# (total length L, queries = the last n positions): a prefill of several tiles and key tiles, a
# later prefill chunk, decode tokens, a chunk of partial tiles, a one-token prefill.
MIXED = [(300, 300), (150, 1), (200, 37), (90, 1), (77, 13), (1, 1), (129, 5)]


def reference(c: Case, attn_scale=0.0, floor_scale=8192.0):
    """float64 softmax(q k^T * scale) v per query, and w = the softmax-weighted mean of |v|."""
    q = c.q
    if attn_scale > 0:
        q = (q.float() * temperature(c.query_pos, attn_scale, floor_scale)[:, None, None]).to(c.q.dtype)
    R, scale = c.H // c.KV, c.d ** -0.5
    out = torch.empty(q.shape, dtype=torch.float64)
    w = torch.empty(q.shape, dtype=torch.float64)
    for t, (i, p) in enumerate(zip(c.seq_of_query, c.query_pos.tolist())):
        lo = p // c.chunk * c.chunk if c.chunk else 0
        k = c.K[i][lo: p + 1].double().repeat_interleave(R, dim=1)
        v = c.V[i][lo: p + 1].double().repeat_interleave(R, dim=1)
        prob = torch.softmax(torch.einsum("hd,nhd->hn", q[t].double(), k) * scale, dim=-1)
        out[t] = torch.einsum("hn,nhd->hd", prob, v)
        w[t] = torch.einsum("hn,nhd->hd", prob, v.abs())
    return out, w


def bf16_ulp(x: torch.Tensor) -> torch.Tensor:
    e = torch.floor(torch.log2(x.abs().double().clamp_min(2.0 ** -126)))
    return torch.exp2(e - 7)


def assert_within_bound(gpu, cpu, ref, w, rows=None):
    """|gpu - cpu| <= 2^-8 w + ulp + 2^-16 w (module docstring), and gpu against the exact value."""
    gpu, cpu = gpu.double(), cpu.double()
    if rows is not None:
        gpu, cpu, ref, w = gpu[rows], cpu[rows], ref[rows], w[rows]
    assert torch.isfinite(gpu).all(), "NaN/inf: a masked, unwritten or faulted slot was read"
    bound = 2.0 ** -8 * w + bf16_ulp(torch.maximum(torch.maximum(gpu.abs(), cpu.abs()), ref.abs())) + 2.0 ** -13 * w
    err = (gpu - cpu).abs()
    worst = (err / bound).max().item()
    assert worst <= 1.0, f"error {worst:.3f} x the bound (max abs error {err.max().item():.3e})"
    # and directly against the float64 value: within 2^-8 w plus our own rounding (half an ulp)
    bound_ref = 2.0 ** -8 * w + 0.5 * bf16_ulp(torch.maximum(gpu.abs(), ref.abs())) + 2.0 ** -13 * w
    assert ((gpu - ref).abs() <= bound_ref).all()


def run(c: Case, kernel="prefill", device="cuda", **kw):
    args = [t.to(device) for t in (c.q, c.k_cache, c.v_cache, c.page_table, c.query_seq, c.query_pos)]
    return attn.paged_attention(*args, chunk_size=c.chunk, kernel=kernel, **kw).cpu()


@pytest.mark.parametrize("page", [16, 64])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("H,KV", [(8, 8), (40, 8), (16, 2)])  # GQA ratios 1, 5 (Scout), 8
@pytest.mark.parametrize("chunk,tune", [(0, False), (80, False), (0, True), (48, True)])
def test_prefill_matches_cpu(page, d, H, KV, chunk, tune):
    """Mixed batches (prefills, later chunks, decode tokens) of several sequences; chunk 80 and 48
    windows start inside pages and inside key tiles; the NoPE temperature varies along the batch."""
    gen = torch.Generator().manual_seed(page * 1000 + d * 10 + H + chunk)
    c = Case(MIXED, H, KV, d, torch.bfloat16, page, chunk, gen)
    kw = dict(attn_scale=0.1, floor_scale=32.0) if tune else {}
    gpu = run(c, **kw)
    cpu = run(c, device="cpu", **kw)
    ref, w = reference(c, **kw)
    assert_within_bound(gpu, cpu, ref, w)
    # auto picks this kernel for these shapes, and the kernel is deterministic
    assert torch.equal(run(c, kernel="auto", **kw), gpu)


def test_prefill_long_and_grid_stride():
    """1100 keys per query (17 key tiles, the double buffer wraps many times) with chunks of 20:
    every chunk splits into a 12-query and an 8-query tile (R = 5), more tiles than the grid's
    blocks, so blocks stride over several tiles."""
    gen = torch.Generator().manual_seed(9)
    for chunk, tune in ((0, True), (20, False)):
        c = Case([(1100, 700), (400, 1)], 40, 8, 128, torch.bfloat16, 64, chunk, gen)
        kw = dict(attn_scale=0.1, floor_scale=256.0) if tune else {}
        ref, w = reference(c, **kw)
        assert_within_bound(run(c, **kw), run(c, device="cpu", **kw), ref, w)


def test_prefill_scattered_queries():
    """A direct caller's batch in any order (queries of sequences interleaved, positions not
    consecutive): every query becomes its own short tile; results as for the ordered batch."""
    gen = torch.Generator().manual_seed(12)
    c = Case(MIXED, 40, 8, 128, torch.bfloat16, 16, 48, gen)
    perm = torch.randperm(len(c.query_pos), generator=gen)
    c.q, c.query_seq, c.query_pos = c.q[perm], c.query_seq[perm], c.query_pos[perm]
    c.seq_of_query = [c.seq_of_query[i] for i in perm.tolist()]
    ref, w = reference(c)
    assert_within_bound(run(c), run(c, device="cpu"), ref, w)


@pytest.mark.parametrize("bad", [-1, "past_cache"])
def test_prefill_page_fault_gives_nan(bad):
    """A bad page in the middle of a prefill: exactly the queries whose window reaches it get NaN
    (as the split-KV kernel; nothing is read back to the host), all others are right. The page
    entry is -1 or past the cache's pages."""
    gen = torch.Generator().manual_seed(6)
    c = Case([(300, 300), (90, 1), (200, 37)], 40, 8, 128, torch.bfloat16, 16, 0, gen)
    row = int(c.query_seq[0])
    c.page_table[row, 7] = -1 if bad == -1 else c.k_cache.shape[0] + 3  # keys [112, 127]
    out = run(c)
    first = torch.tensor(c.seq_of_query) == 0
    hit = first & (c.query_pos >= 112)
    assert torch.isnan(out[hit]).all()
    ok = ~hit
    assert torch.isfinite(out[ok]).all()
    ref, w = reference(c)  # dense K/V: the rows `ok` never need the bad page
    split = run(c, kernel="split_kv")  # the CUDA split-KV kernel (the CPU would raise): same NaN rows
    assert torch.equal(torch.isnan(split), torch.isnan(out))
    assert_within_bound(out, split, ref, w, rows=ok)


def test_prefill_bad_sequence_row_gives_nan():
    gen = torch.Generator().manual_seed(8)
    c = Case([(40, 40), (30, 30)], 8, 2, 64, torch.bfloat16, 16, 0, gen)
    c.query_seq = c.query_seq.clone()
    c.query_seq[:40] = 7  # not a row of the 2-row table
    out = run(c)
    assert torch.isnan(out[:40]).all() and torch.isfinite(out[40:]).all()


@pytest.mark.parametrize("page", [16, 64])
@pytest.mark.parametrize("H,KV,d", [(40, 8, 128), (8, 2, 64)])
@pytest.mark.parametrize("chunk", [0, 48])
def test_prefill_fp8_cache(page, H, KV, d, chunk):
    """FP8 caches: the K scale applies to the fp32 score and the V scale to p before its rounding,
    so the bf16 bound holds against the CPU (which reads float(e4m3) * scale in fp32)."""
    gen = torch.Generator().manual_seed(page + d + chunk)
    c = Case(MIXED, H, KV, d, torch.float32, page, chunk, gen)
    kq, ks = quantize_rows(c.k_cache)
    vq, vs = quantize_rows(c.v_cache)
    c.K = [dequantize_rows(*quantize_rows(x)) for x in c.K]
    c.V = [dequantize_rows(*quantize_rows(x)) for x in c.V]
    c.q = c.q.bfloat16()
    args = (c.page_table, c.query_seq, c.query_pos)
    kw = dict(chunk_size=chunk, k_scale=ks, v_scale=vs)
    cpu = attn.paged_attention(c.q, kq, vq, *args, **kw)
    gpu = attn.paged_attention(c.q.cuda(), kq.cuda(), vq.cuda(), *(t.cuda() for t in args), kernel="prefill",
                               chunk_size=chunk, k_scale=ks.cuda(), v_scale=vs.cuda()).cpu()
    ref, w = reference(c)
    assert_within_bound(gpu, cpu, ref, w)
