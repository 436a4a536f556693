"""paged_attention and cache_write vs a plain PyTorch masked-softmax on dense K/V.

Each case builds random dense K/V per sequence, scatters them into a randomly permuted page layout
(every slot not written is NaN, so reading anything outside a window poisons the output), runs the
op through the page tables and compares with softmax(q k^T * scale + mask) v computed in float64
on the same (dtype-rounded) inputs.
"""
from __future__ import annotations

import math

import pytest
import torch

from llama4_native import attention as attn


def temperature(pos: torch.Tensor, attn_scale: float, floor_scale: float) -> torch.Tensor:
    """transformers' Llama4TextAttention scale, fp32: log1p(floor((p + 1) / fs)) * a + 1."""
    return torch.log1p(torch.floor((pos.float() + 1.0) / floor_scale)) * attn_scale + 1.0


class Case:
    """Sequences (L, n): dense K/V [L, KV, d], the last n positions as queries, a paged cache."""

    def __init__(self, seqs, H, KV, d, dtype, page_size, chunk, gen, extra_pages=5):
        self.H, self.KV, self.d, self.dtype, self.P, self.chunk = H, KV, d, dtype, page_size, chunk
        P = page_size
        self.K = [torch.randn(L, KV, d, generator=gen).to(dtype) for L, _ in seqs]
        self.V = [torch.randn(L, KV, d, generator=gen).to(dtype) for L, _ in seqs]
        n_pages = [math.ceil(L / P) for L, _ in seqs]
        num_pages = sum(n_pages) + extra_pages
        self.k_cache = torch.full((num_pages, P, KV, d), float("nan"), dtype=dtype)
        self.v_cache = torch.full((num_pages, P, KV, d), float("nan"), dtype=dtype)
        perm = torch.randperm(num_pages, generator=gen).tolist()
        max_pages = max(n_pages) + 2  # wider than needed: entries past a sequence stay -1
        # Rows of the page table in a shuffled order, so query_seq is not the batch order.
        rows = torch.randperm(len(seqs), generator=gen).tolist()
        self.page_table = torch.full((len(seqs), max_pages), -1, dtype=torch.int32)
        qseq, qpos = [], []
        for i, (L, n) in enumerate(seqs):
            first_q = L - n
            # Pages no query of this step can see are left out (-1), as the cache frees them.
            lo = first_q // chunk * chunk if chunk else 0
            for lp in range(n_pages[i]):
                if (lp + 1) * P <= lo:
                    continue
                page = perm.pop()
                self.page_table[rows[i], lp] = page
                cnt = min(P, L - lp * P)
                self.k_cache[page, :cnt] = self.K[i][lp * P: lp * P + cnt]
                self.v_cache[page, :cnt] = self.V[i][lp * P: lp * P + cnt]
            qseq += [rows[i]] * n
            qpos += list(range(first_q, L))
        self.seq_of_query = [i for i, (_, n) in enumerate(seqs) for _ in range(n)]
        self.query_seq = torch.tensor(qseq, dtype=torch.int32)
        self.query_pos = torch.tensor(qpos, dtype=torch.int32)
        self.q = torch.randn(len(qpos), H, d, generator=gen).to(dtype)

    def run(self, **kw):
        return attn.paged_attention(self.q, self.k_cache, self.v_cache, self.page_table,
                                    self.query_seq, self.query_pos, chunk_size=self.chunk, **kw)

    def reference(self, attn_scale=0.0, floor_scale=8192.0, scale=None):
        """float64 masked softmax over each query's window of dense K/V."""
        scale = self.d ** -0.5 if scale is None else scale
        q = self.q
        if attn_scale > 0:  # transformers: (q * scales).to(q.dtype)
            f = temperature(self.query_pos, attn_scale, floor_scale)[:, None, None]
            q = (q.float() * f).to(self.dtype)
        R = self.H // self.KV
        out = torch.empty(q.shape, dtype=torch.float64)
        for t, (i, p) in enumerate(zip(self.seq_of_query, self.query_pos.tolist())):
            lo = p // self.chunk * self.chunk if self.chunk else 0
            k = self.K[i][lo: p + 1].double().repeat_interleave(R, dim=1)  # [n, H, d]
            v = self.V[i][lo: p + 1].double().repeat_interleave(R, dim=1)
            s = torch.einsum("hd,nhd->hn", q[t].double(), k) * scale
            out[t] = torch.einsum("hn,nhd->hd", torch.softmax(s, dim=-1), v)
        return out


def assert_matches(out, ref, dtype):
    assert out.dtype == dtype and out.shape == ref.shape
    assert torch.isfinite(out).all(), "NaN/inf: a masked or unwritten slot was read"
    if dtype == torch.float32:
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    else:
        # Our fp32 result is rounded once to bf16/f16; the float64 reference is not. The two differ
        # by at most one ulp (<= 2^-7 relative for bf16, 2^-10 for f16): half an ulp from the
        # rounding, a full one only when fp32 summation order moves a value across a rounding
        # boundary, which is rare, so nearly all outputs equal the correctly rounded reference.
        rtol = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -10
        torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=1e-5)
        exact = (out == ref.to(dtype)).float().mean().item()
        assert exact > 0.99, f"only {exact:.4f} of the outputs equal the correctly rounded reference"


# Mixed batches: (total length L, queries n = the last n positions); n == L is a prefill,
# n == 1 a decode step, anything between a later prefill chunk.
MIXED = [(37, 37), (50, 1), (9, 1), (24, 5), (1, 1), (29, 12)]


@pytest.mark.parametrize("H,KV", [(2, 2), (4, 2), (8, 2), (4, 1)])
@pytest.mark.parametrize("d", [8, 64, 88])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk,page", [(0, 4), (12, 4), (10, 4), (16, 8)])
def test_mixed_batch(H, KV, d, dtype, chunk, page):
    gen = torch.Generator().manual_seed(H * 1000 + KV * 100 + d + chunk * 7 + page)
    c = Case(MIXED, H, KV, d, dtype, page, chunk, gen)
    assert_matches(c.run(), c.reference(), dtype)


@pytest.mark.parametrize("chunk,page", [(12, 4), (10, 4), (8, 8), (0, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_boundaries(chunk, page, dtype):
    """Decode queries right before/at/after page and chunk boundaries, and a prefill crossing two
    chunk boundaries."""
    C = chunk or 12
    positions = sorted({b + o for b in (page, 2 * page, C, 2 * C) for o in (-1, 0, 1)})
    seqs = [(p + 1, 1) for p in positions] + [(2 * C + 3, 2 * C + 3)]
    gen = torch.Generator().manual_seed(7)
    c = Case(seqs, 4, 2, 8, dtype, page, chunk, gen)
    assert_matches(c.run(), c.reference(), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("chunk", [0, 12])
def test_temperature_tuning(dtype, chunk):
    """Small floor_scale so the factor changes along the sequence (it is 1 below floor_scale - 1)."""
    gen = torch.Generator().manual_seed(3)
    c = Case(MIXED, 8, 2, 64, dtype, 4, chunk, gen)
    out = c.run(attn_scale=0.1, floor_scale=3.0)
    assert_matches(out, c.reference(attn_scale=0.1, floor_scale=3.0), dtype)
    # The tuning really changed something, and a huge floor_scale makes it a no-op.
    assert not torch.equal(out, c.run())
    assert torch.equal(c.run(attn_scale=0.1, floor_scale=1e9), c.run())


def test_custom_scale():
    gen = torch.Generator().manual_seed(4)
    c = Case(MIXED, 4, 2, 8, torch.float32, 4, 0, gen)
    assert_matches(c.run(scale=0.3), c.reference(scale=0.3), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk", [0, 64])
def test_kv_splits(dtype, chunk):
    """Long decode windows split across threads (flash-decoding) merge to the same result."""
    gen = torch.Generator().manual_seed(5)
    c = Case([(300, 1), (77, 1), (130, 3)], 4, 1, 64, dtype, 4, chunk, gen)
    ref = c.reference()
    base = c.run(kv_splits=1)
    assert_matches(base, ref, dtype)
    for splits in (0, 2, 3, 7, 100):  # 0: heuristic (few items here, so it splits); 100 > pages
        out = c.run(kv_splits=splits)
        assert_matches(out, ref, dtype)
        if dtype == torch.float32:
            torch.testing.assert_close(out, base, rtol=1e-6, atol=1e-6)


def test_long_prefill_tiles():
    """Prefills longer than one query tile (64 rows), with and without chunk borders inside."""
    gen = torch.Generator().manual_seed(6)
    for chunk in (0, 32, 50):
        c = Case([(150, 150), (70, 40)], 2, 1, 8, torch.float32, 4, chunk, gen)
        assert_matches(c.run(), c.reference(), torch.float32)


def test_strided_q():
    """q as a view of a fused [T, (H + 2 KV) * d] projection output (not contiguous)."""
    gen = torch.Generator().manual_seed(8)
    c = Case(MIXED, 4, 2, 8, torch.float32, 4, 12, gen)
    T = c.q.shape[0]
    fused = torch.randn(T, (4 + 2 * 2) * 8, generator=gen)
    fused[:, : 4 * 8] = c.q.reshape(T, -1)
    qv = fused[:, : 4 * 8].view(T, 4, 8)
    assert not qv.is_contiguous()
    out = attn.paged_attention(qv, c.k_cache, c.v_cache, c.page_table, c.query_seq, c.query_pos,
                               chunk_size=12)
    assert torch.equal(out, c.run())


def test_empty_batch():
    gen = torch.Generator().manual_seed(9)
    c = Case([(5, 1)], 2, 1, 8, torch.float32, 4, 0, gen)
    e = torch.zeros(0, dtype=torch.int32)
    out = attn.paged_attention(c.q[:0], c.k_cache, c.v_cache, c.page_table, e, e)
    assert out.shape == (0, 2, 8)


# ---- cache_write ----

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cache_write(dtype):
    gen = torch.Generator().manual_seed(10)
    P, KV, d, N, T = 4, 2, 8, 6, 9
    kc = torch.zeros(N, P, KV, d, dtype=dtype)
    vc = torch.zeros_like(kc)
    k = torch.randn(T, KV, d, generator=gen).to(dtype)
    v = torch.randn(T, KV, d, generator=gen).to(dtype)
    slots = torch.randperm(N * P, generator=gen)[:T].to(torch.int32)
    slots[3] = -1  # skipped
    attn.cache_write(kc, vc, k, v, slots)
    flat_k, flat_v = kc.view(N * P, KV, d), vc.view(N * P, KV, d)
    for t, s in enumerate(slots.tolist()):
        if s >= 0:
            assert torch.equal(flat_k[s], k[t]) and torch.equal(flat_v[s], v[t])
    untouched = torch.ones(N * P, dtype=torch.bool)
    untouched[slots[slots >= 0].long()] = False
    assert (flat_k[untouched] == 0).all() and (flat_v[untouched] == 0).all()


def test_cache_write_strided_kv():
    """k, v as views of a fused projection output (strided rows); a view whose last dim is not
    contiguous is copied first."""
    gen = torch.Generator().manual_seed(11)
    T, KV, d = 5, 2, 8
    fused = torch.randn(T, 3 * KV * d, generator=gen)
    k = fused[:, KV * d: 2 * KV * d].view(T, KV, d)
    v = fused[:, 2 * KV * d:].reshape(T, d, KV).transpose(1, 2)  # last-dim stride KV
    kc = torch.zeros(3, 4, KV, d)
    vc = torch.zeros_like(kc)
    attn.cache_write(kc, vc, k, v, torch.arange(T, dtype=torch.int32))
    assert torch.equal(kc.view(-1, KV, d)[:T], k) and torch.equal(vc.view(-1, KV, d)[:T], v)


# ---- error cases ----

@pytest.fixture
def small():
    gen = torch.Generator().manual_seed(12)
    return Case([(10, 3), (6, 1)], 4, 2, 8, torch.float32, 4, 8, gen)


def call(c, **over):
    args = dict(q=c.q, k_cache=c.k_cache, v_cache=c.v_cache, page_table=c.page_table,
                query_seq=c.query_seq, query_pos=c.query_pos, chunk_size=c.chunk)
    args.update(over)
    return attn.paged_attention(**args)


def test_error_missing_page(small):
    pt = small.page_table.clone()
    pt[small.query_seq[0].item(), 2] = -1  # the queries at 8, 9 (chunk [8, 15]) need page 2
    with pytest.raises(ValueError, match=r"query 1 \(sequence row \d, position 8\) needs logical "
                                         r"page 2 \(keys \[8, 11\]\), but page_table\[\d, 2\] = -1"):
        call(small, page_table=pt)


def test_error_page_out_of_pool(small):
    pt = small.page_table.clone()
    pt[small.query_seq[0].item(), 2] = small.k_cache.shape[0]
    with pytest.raises(ValueError, match="is not a page of the cache"):
        call(small, page_table=pt)


def test_error_table_too_narrow(small):
    with pytest.raises(ValueError, match="'page_table' has only 1 columns"):
        call(small, page_table=small.page_table[:, :1].contiguous())


def test_error_heads_not_multiple():
    gen = torch.Generator().manual_seed(13)
    c = Case([(5, 1)], 3, 2, 8, torch.float32, 4, 0, gen)
    with pytest.raises(ValueError, match="3 query heads of 'q' must be a multiple of the 2 kv heads"):
        c.run()


def test_error_dtypes(small):
    with pytest.raises(TypeError, match="'k_cache' must have the dtype of 'q'"):
        call(small, q=small.q.bfloat16())
    with pytest.raises(TypeError, match="'v_cache' must have the dtype of 'k_cache'"):
        call(small, v_cache=small.v_cache.bfloat16())
    with pytest.raises(TypeError, match="'query_pos' must have dtype int32"):
        call(small, query_pos=small.query_pos.long())
    with pytest.raises(TypeError, match="'page_table' must have dtype int32"):
        call(small, page_table=small.page_table.long())


def test_error_shapes_and_values(small):
    with pytest.raises(ValueError, match=r"head_dim of 'k_cache' \(8\) must equal head_dim of 'q' \(4\)"):
        call(small, q=small.q[..., :4].contiguous())
    with pytest.raises(ValueError, match=r"'query_seq' must have shape \[4\]"):
        call(small, query_seq=small.query_seq[:3])
    qs = small.query_seq.clone()
    qs[1] = 5
    with pytest.raises(ValueError, match=r"'query_seq\[1\]' = 5 is not a row of 'page_table' \(2 rows\)"):
        call(small, query_seq=qs)
    qp = small.query_pos.clone()
    qp[0] = -1
    with pytest.raises(ValueError, match=r"'query_pos\[0\]' = -1 must be >= 0"):
        call(small, query_pos=qp)
    strided = small.k_cache.transpose(2, 3).contiguous().transpose(2, 3)  # same shape, strided
    with pytest.raises(ValueError, match="'k_cache' must be contiguous"):
        call(small, k_cache=strided)
    with pytest.raises(ValueError, match="'scale' must be a finite value > 0"):
        call(small, scale=0.0)
    with pytest.raises(ValueError, match="'chunk_size' must be >= 0"):
        call(small, chunk_size=-1)
    with pytest.raises(ValueError, match="'floor_scale' must be > 0 when attn_scale > 0"):
        call(small, attn_scale=0.1, floor_scale=0.0)
    with pytest.raises(ValueError, match="'attn_scale' must be >= 0"):
        call(small, attn_scale=-1.0)
    with pytest.raises(ValueError, match="'out' must be contiguous|'q' must be 3-d"):
        call(small, q=small.q[0])


def test_error_cache_write():
    kc = torch.zeros(2, 4, 2, 8)
    vc = torch.zeros_like(kc)
    k = torch.randn(3, 2, 8)
    ok = torch.tensor([0, 1, 2], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"'slots\[1\]' = 8 is out of range \[-1, 8\)"):
        attn.cache_write(kc, vc, k, k, torch.tensor([0, 8, 1], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"'slots\[0\]' = -2"):
        attn.cache_write(kc, vc, k, k, torch.tensor([-2, 0, 1], dtype=torch.int32))
    with pytest.raises(TypeError, match="'k' must have the dtype of 'k_cache'"):
        attn.cache_write(kc, vc, k.bfloat16(), k, ok)
    with pytest.raises(ValueError, match=r"'k' must have shape \[3, 2, 8\], got \[3, 1, 8\]"):
        attn.cache_write(kc, vc, k[:, :1], k, ok)
    with pytest.raises(ValueError, match=r"'slots' must have shape \[3\]"):
        attn.cache_write(kc, vc, k, k, ok[:2])
    with pytest.raises(ValueError, match="'v_cache' must have shape"):
        attn.cache_write(kc, vc[:1], k, k, ok)
    with pytest.raises(TypeError, match="'slots' must have dtype int32"):
        attn.cache_write(kc, vc, k, k, ok.long())
    assert (kc == 0).all(), "a failed call wrote into the cache"
