"""The CUDA kernels of the text model's path against their CPU twins: linear (decode and prefill
shapes), grouped_linear (the MoE experts), add, cache_write, paged attention, and the bf16/fp32
MoE routing ops.

Exactness: add, cache_write, moe_route, moe_permute and moe_unpermute round where the CPU rounds,
in the same order, so they must match bit for bit. linear and attention sum in a different order
than the CPU: linear is held to the fp32 accumulation bound of the dot products plus one rounding
of the output; attention to a float64 reference as tests/test_paged_attention.py holds the CPU.
Marked `cuda` (skipped without a GPU).
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
from llama4_native import attention as attn
from llama4_native import ops
from test_paged_attention import MIXED, Case, assert_matches

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (l4.cuda_available() and torch.cuda.is_available()),
        reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch",
    ),
]

EPS32 = 2.0 ** -24


def _rand(shape, dtype, gen):
    return torch.randn(*shape, generator=gen).to(dtype)


# ---- linear --------------------------------------------------------------------------------------

# M <= 16 takes the warp-per-column kernel, larger M the tiled one; K values cover vector
# remainders (K % 8 != 0 falls back to scalar loads), N covers partial tiles.
LINEAR_SHAPES = [(1, 1, 5), (1, 256, 64), (3, 33, 1000), (16, 130, 128), (17, 64, 72),
                 (100, 257, 129), (64, 64, 16)]


@pytest.mark.parametrize("M,N,K", LINEAR_SHAPES)
@pytest.mark.parametrize("dtype,out_dtype", [(torch.float32, "float32"), (torch.bfloat16, "bfloat16"),
                                             (torch.bfloat16, "float32")])
def test_linear(M, N, K, dtype, out_dtype):
    g = torch.Generator().manual_seed(M * 7919 + N * 31 + K)
    x, w = _rand((M, K), dtype, g), _rand((N, K), dtype, g)
    want = ops.linear(x, w, out_dtype)
    got = ops.linear(x.cuda(), w.cuda(), out_dtype)
    assert got.device.type == "cuda" and got.dtype == want.dtype
    got_d, want_d = got.cpu().double(), want.double()
    mag = x.double().abs() @ w.double().abs().T
    out_eps = EPS32 if want.dtype == torch.float32 else 2.0 ** -8
    bound = 2 * K * EPS32 * mag + 2 * out_eps * want_d.abs()
    assert bool(((got_d - want_d).abs() <= bound).all())


def test_linear_row_stride_and_misaligned_views():
    g = torch.Generator().manual_seed(3)
    base = _rand((9, 3 * 64 + 1), torch.bfloat16, g)
    w = _rand((40, 64), torch.bfloat16, g)
    for x in (base[:, 64:128], base[:, 1:65]):  # a column slice; a misaligned start
        for rows in (4, 9):
            xs = x[:rows]
            want = ops.linear(xs, w, "float32")
            got = ops.linear(xs.cuda(), w.cuda(), "float32")
            bound = 2 * 64 * EPS32 * (xs.double().abs() @ w.double().abs().T) + 2 * EPS32 * want.double().abs()
            assert bool(((got.cpu().double() - want.double()).abs() <= bound).all())


@pytest.mark.parametrize("sizes", [[1, 0, 0, 0], [0, 3, 0, 2, 1, 0, 4, 0], [40, 0, 33, 1], [0, 0, 70]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_linear(sizes, dtype):
    g = torch.Generator().manual_seed(sum(sizes) * 13 + len(sizes))
    E, N, K = len(sizes), 72, 48
    offsets = torch.tensor([0] + torch.tensor(sizes).cumsum(0).tolist(), dtype=torch.int32)
    x, w = _rand((sum(sizes), K), dtype, g), _rand((E, N, K), dtype, g)
    want = ops.grouped_linear(x, w, offsets)
    got = ops.grouped_linear(x.cuda(), w.cuda(), offsets.cuda())
    out_eps = EPS32 if dtype == torch.float32 else 2.0 ** -8
    for e in range(E):
        a, b = int(offsets[e]), int(offsets[e + 1])
        if a == b:
            continue
        mag = x[a:b].double().abs() @ w[e].double().abs().T
        bound = 2 * K * EPS32 * mag + 2 * out_eps * want[a:b].double().abs()
        assert bool(((got[a:b].cpu().double() - want[a:b].double()).abs() <= bound).all()), f"group {e}"


# ---- add -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n", [1, 19, 5120 * 3 + 7])
def test_add_bitwise(dtype, n):
    g = torch.Generator().manual_seed(n)
    a, b = _rand((n,), dtype, g), _rand((n,), dtype, g)
    assert torch.equal(ops.add(a.cuda(), b.cuda()).cpu(), ops.add(a, b))


# ---- KV cache writes and paged attention ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cache_write_bitwise(dtype):
    g = torch.Generator().manual_seed(5)
    pages, P, KV, d, T = 7, 16, 2, 64, 11
    kc = _rand((pages, P, KV, d), dtype, g)
    vc = _rand((pages, P, KV, d), dtype, g)
    big = _rand((T, KV, 2 * d), dtype, g)
    k, v = big[:, :, :d], big[:, :, d:]  # strided (row stride 2d), last dim contiguous
    slots = torch.tensor([3, -1, 17, 0, 111, -1, 50, 64, 65, 2, 31], dtype=torch.int32)
    kc_cpu, vc_cpu = kc.clone(), vc.clone()
    attn.cache_write(kc_cpu, vc_cpu, k, v, slots)
    kc_gpu, vc_gpu = kc.cuda(), vc.cuda()
    attn.cache_write(kc_gpu, vc_gpu, k.cuda(), v.cuda(), slots.cuda())
    assert torch.equal(kc_gpu.cpu(), kc_cpu) and torch.equal(vc_gpu.cpu(), vc_cpu)


def _run_cuda(c: Case, **kw):
    # The split-KV kernel, whose fp32 math rounds once like the CPU's (assert_matches wants nearly
    # every output correctly rounded); the tensor-core prefill kernel rounds P to bf16 and has its
    # own tests and bound (test_paged_prefill_cuda.py).
    kw.setdefault("kernel", "split_kv")
    return attn.paged_attention(c.q.cuda(), c.k_cache.cuda(), c.v_cache.cuda(), c.page_table.cuda(),
                                c.query_seq.cuda(), c.query_pos.cuda(), chunk_size=c.chunk, **kw).cpu()


@pytest.mark.parametrize("H,KV", [(4, 2), (5, 1), (40, 8)])
@pytest.mark.parametrize("d", [8, 64, 88, 128])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk,page", [(0, 16), (12, 4), (32, 16), (128, 64)])
def test_paged_attention_mixed_batch(H, KV, d, dtype, chunk, page):
    gen = torch.Generator().manual_seed(H * 1000 + KV * 100 + d + chunk * 7 + page)
    c = Case(MIXED, H, KV, d, dtype, page, chunk, gen)
    assert_matches(_run_cuda(c), c.reference(), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk", [0, 64])
def test_paged_attention_temperature(dtype, chunk):
    gen = torch.Generator().manual_seed(11 + chunk)
    c = Case([(300, 3), (150, 1)], 4, 2, 64, dtype, 16, chunk, gen)
    kw = dict(attn_scale=0.1, floor_scale=16.0)  # a small floor scale: the temperature varies
    assert_matches(_run_cuda(c, **kw), c.reference(**kw), dtype)


@pytest.mark.parametrize("splits", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("chunk", [0, 96])
def test_paged_attention_kv_splits(splits, chunk):
    """Forced flash-decoding splits (with empty splits for short windows) give the same result."""
    gen = torch.Generator().manual_seed(splits * 3 + chunk)
    c = Case([(700, 1), (5, 1), (129, 2)], 8, 2, 128, torch.bfloat16, 16, chunk, gen)
    assert_matches(_run_cuda(c, kv_splits=splits), c.reference(), torch.bfloat16)


def test_paged_attention_long_decode_uses_splits():
    """Batch-1 decode over 20k keys: the heuristic splits the window across the GPU."""
    gen = torch.Generator().manual_seed(2)
    c = Case([(20000, 1)], 8, 2, 128, torch.bfloat16, 64, 0, gen)
    assert_matches(_run_cuda(c), c.reference(), torch.bfloat16)


def test_paged_attention_missing_page_gives_nan():
    """A window that needs an absent page: the CUDA kernel cannot raise without reading the table
    back, so that query's output is NaN (and only that query's)."""
    gen = torch.Generator().manual_seed(4)
    c = Case([(40, 1), (20, 1)], 4, 2, 64, torch.float32, 8, 0, gen)
    row = int(c.query_seq[0])
    c.page_table[row, 2] = -1
    out = _run_cuda(c)
    assert torch.isnan(out[0]).all()
    assert torch.isfinite(out[1]).all()


# ---- MoE routing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("T,E,k", [(1, 16, 1), (19, 16, 1), (33, 128, 1), (7, 8, 2), (300, 16, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_moe_routing_bitwise(T, E, k, dtype):
    g = torch.Generator().manual_seed(T * 100 + E + k)
    D = 40
    logits = torch.randn(T, E, generator=g)
    logits[0, :2] = 1.5  # a tie: the lower expert wins on both devices
    x = _rand((T, D), dtype, g)
    ids, scores = ops.moe_route(logits, k, str(dtype).replace("torch.", ""))
    gids, gscores = ops.moe_route(logits.cuda(), k, str(dtype).replace("torch.", ""))
    assert torch.equal(gids.cpu(), ids) and torch.equal(gscores.cpu(), scores)
    want = ops.moe_permute(x, ids, scores, E)
    got = ops.moe_permute(x.cuda(), gids, gscores, E)
    for name, a, b in zip(("x_perm", "perm_token", "perm_slot", "expert_offsets"), got, want):
        assert torch.equal(a.cpu(), b), name
    y = _rand((T * k, D), dtype, g)
    shared = _rand((T, D), dtype, g)
    assert torch.equal(ops.moe_unpermute(y.cuda(), got[2], shared.cuda()).cpu(),
                       ops.moe_unpermute(y, want[2], shared))
