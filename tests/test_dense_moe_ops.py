"""linear, embedding and the MoE routing ops against plain PyTorch formulations.

linear covers every CPU path: the weight-streaming kernels (M <= 8; AVX-512 where the CPU has
AVX512-BF16, else AVX2), OpenBLAS sgemm (fp32, M > 8), and for bf16 with M > 8 the
AVX512-BF16 GEMM where the CPU has it (else widening + sgemm). The reference
is an fp64 matmul of the same (bf16-valued) inputs; our fp32 accumulation may differ from it by
a few fp32 ulps of the accumulated magnitude, and bf16 outputs by one bf16 rounding.
"""
from __future__ import annotations

import pytest
import torch

from llama4_native import ops

SIZES = [(1, 64, 48), (5, 19, 111), (8, 96, 33), (9, 111, 64), (19, 64, 200), (111, 40, 257),
         (3, 25, 70), (10, 35, 33), (4, 50, 40),
         # M > 8 (GEMM): N = 1 and remainders past 64-column blocks, M remainders of 4- and 6-row
         # tiles, odd K, K off multiples of 32
         (9, 1, 1), (13, 63, 31), (14, 129, 64), (12, 65, 129), (64, 200, 96), (11, 130, 1000),
         # the packed bf16 GEMM's blocking: several K blocks with an odd K (a half pair in the last
         # one), column chunks with a partial 16-column vector, row chunks (few columns, many rows)
         (600, 70, 515), (130, 1000, 777),
         # the GEMV: K below one vector, odd K, a tail after an odd number of vectors
         (2, 3, 5), (7, 70, 47), (6, 33, 80)]


def _ref_linear(x, w):
    return (x.double() @ w.double().T)


@pytest.mark.parametrize("M,N,K", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_matches_torch(M, N, K, dtype):
    g = torch.Generator().manual_seed(M * 1000 + N + K)
    x = torch.randn(M, K, generator=g).to(dtype)
    w = torch.randn(N, K, generator=g).to(dtype)
    ref = _ref_linear(x, w)
    bound = 1e-6 * (x.double().abs() @ w.double().abs().T) + 1e-12  # fp32 accumulation error
    out32 = ops.linear(x, w, "float32")
    assert out32.dtype == torch.float32
    assert ((out32.double() - ref).abs() <= 8 * bound).all()
    out = ops.linear(x, w)
    assert out.dtype == dtype
    # one rounding of the fp32 result to the output dtype
    torch.testing.assert_close(out, out32.to(dtype), rtol=0, atol=0)


# Decode shapes for the weight-streaming GEMV (M <= 8): K and N off every vector width (16 fp32,
# 32 bf16 lanes; 2 vectors per step), N large enough that both threads get rows (the kernel goes
# parallel from 128 KB of weights), K long enough that fp32 accumulation error shows.
GEMV_SHAPES = [(1, 1, 1), (1, 17, 15), (2, 31, 33), (3, 47, 63), (4, 65, 97), (1, 129, 4099),
               (2, 517, 1031), (3, 1023, 545), (4, 333, 2085)]


@pytest.mark.parametrize("M,N,K", GEMV_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_gemv_odd_shapes_against_float64(M, N, K, dtype):
    """The decode GEMV against torch's float64 matmul of the same values, through a row-strided x
    (a slice of a wider activation, as the fused QKV / gate_up outputs are read), with fp32 and
    output-dtype results."""
    g = torch.Generator().manual_seed(7 * M + N + 3 * K)
    wide = torch.randn(M, K + 5, generator=g).to(dtype)
    x = wide[:, 3:3 + K]  # row stride K + 5, offset 3 elements: no alignment anywhere
    w = torch.randn(N, K, generator=g).to(dtype)
    ref = torch.matmul(x.double(), w.double().T)
    # the bound of test_linear_matches_torch: fp32 sums in 16 lanes x 2 chains stay within a few
    # ulps of sum |x w| here (measured < 3% of it); a dropped or doubled product exceeds it ~100x
    bound = 8e-6 * (x.double().abs() @ w.double().abs().T) + 1e-12
    out32 = ops.linear(x, w, "float32")
    assert out32.dtype == torch.float32 and out32.shape == (M, N)
    err = (out32.double() - ref).abs()
    assert (err <= bound).all(), float((err / bound).max())
    # the output dtype: the same fp32 sums rounded once
    assert torch.equal(ops.linear(x, w), out32.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_same_bits_for_any_thread_count_and_batch(dtype):
    """Each output is the same fp32 sum whatever the thread count, and (within the GEMV, M <= 8,
    and within the GEMM, M > 8) whatever the other rows of the batch."""
    import llama4_native as l4

    g = torch.Generator().manual_seed(5)
    w = torch.randn(300, 260, generator=g).to(dtype)
    threads = l4.build_info()["cpu_threads"]
    try:
        for M in (1, 3, 8, 9, 40):
            x = torch.randn(M, 260, generator=g).to(dtype)
            l4.set_cpu_threads(1)
            one = ops.linear(x, w, "float32")
            l4.set_cpu_threads(2)
            two = ops.linear(x, w, "float32")
            assert torch.equal(one, two), M
            if M <= 8:
                assert torch.equal(two[M - 1:], ops.linear(x[M - 1:], w, "float32")), M
            elif dtype == torch.bfloat16:
                assert torch.equal(two[:9], ops.linear(x[:9], w, "float32")), M
    finally:
        l4.set_cpu_threads(threads)


def test_linear_row_stride_view_and_empty():
    x = torch.randn(7, 64)
    w = torch.randn(10, 32)
    view = x[:, 16:48]  # a column slice: row stride 64, unit column stride
    torch.testing.assert_close(ops.linear(view, w), (view.double() @ w.double().T).float(), rtol=1e-5, atol=1e-5)
    t = x.T.contiguous().T[:, :32]  # column-major: copied internally
    torch.testing.assert_close(ops.linear(t, w), (t.double() @ w.double().T).float(), rtol=1e-5, atol=1e-5)
    assert ops.linear(torch.randn(0, 32), w).shape == (0, 10)
    with pytest.raises(ValueError, match="'w' must have shape \\[N, 32\\]"):
        ops.linear(torch.randn(3, 32), torch.randn(4, 31))
    with pytest.raises(TypeError, match="'w' must have the dtype of 'x'"):
        ops.linear(torch.randn(3, 32), torch.randn(4, 32).bfloat16())


def test_embedding_matches_indexing_and_rejects_bad_ids():
    table = torch.randn(50, 24).bfloat16()
    ids = torch.tensor([0, 49, 7, 7, 13], dtype=torch.int32)
    torch.testing.assert_close(ops.embedding(table, ids), table[ids.long()], rtol=0, atol=0)
    torch.testing.assert_close(ops.embedding(table, ids.long()), table[ids.long()], rtol=0, atol=0)
    with pytest.raises(ValueError, match="token id 50 at position 1 is outside the vocabulary"):
        ops.embedding(table, torch.tensor([1, 50]))
    with pytest.raises(ValueError, match="token id -1"):
        ops.embedding(table, torch.tensor([-1]))


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_moe_route_is_topk_then_sigmoid(k, dtype):
    g = torch.Generator().manual_seed(k)
    # Distinct values per row (exact in bf16: multiples of 1/8 below 16), so top-k has no ties.
    logits = torch.stack([torch.randperm(64, generator=g)[:16] for _ in range(111)]).to(dtype) / 8 - 4
    ids, scores = ops.moe_route(logits, k)
    top = torch.topk(logits.float(), k, dim=-1)
    assert torch.equal(ids.long(), top.indices)
    # transformers: sigmoid in fp32, cast back. Our exp is not torch's vectorized one: the fp32
    # sigmoid may differ by an ulp or two, which can move a bf16 rounding by one bf16 ulp.
    ref = torch.sigmoid(top.values.float())
    _, s32 = ops.moe_route(logits, k, "float32")
    torch.testing.assert_close(s32, ref, rtol=3e-7, atol=0)
    torch.testing.assert_close(scores.float(), ref.to(dtype).float(),
                               rtol=0 if dtype == torch.float32 else 2 ** -8, atol=3e-7)


def test_moe_route_ties_take_the_lower_expert():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    ids, _ = ops.moe_route(logits, 2)
    assert ids.tolist() == [[1, 2], [0, 1]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_moe_permute_unpermute_match_dense_formulation(dtype):
    """The routed sum equals transformers' dense form: every expert on every token with a zero
    score for unselected experts, summed over experts, added to the shared output."""
    g = torch.Generator().manual_seed(3)
    T, D, E, k = 19, 24, 5, 2
    x = torch.randn(T, D, generator=g).to(dtype)
    logits = torch.randn(T, E, generator=g).to(dtype)
    ids, scores = ops.moe_route(logits, k)
    xp, ptok, pslot, off = ops.moe_permute(x, ids, scores, E)
    assert off[0] == 0 and off[-1] == T * k and torch.all(off[1:] >= off[:-1])
    for e in range(E):  # rows of expert e are its tokens, in token order, scaled by their score
        rows = range(int(off[e]), int(off[e + 1]))
        toks = [int(ptok[r]) for r in rows]
        assert toks == sorted(toks) and all(e in ids[t].tolist() for t in toks)
    dense_scores = torch.zeros(T, E, dtype=dtype).scatter(1, ids.long(), scores)
    for r in range(T * k):
        t = int(ptok[r])
        e = next(e for e in range(E) if off[e] <= r < off[e + 1])
        torch.testing.assert_close(xp[r], (x[t] * dense_scores[t, e]).to(dtype), rtol=0, atol=0)
    # Expert "outputs": any per-row function of the permuted input.
    y = (xp.float() * 1.5 + 0.25).to(dtype)
    shared = torch.randn(T, D, generator=g).to(dtype)
    out = ops.moe_unpermute(y, pslot, shared)
    routed = torch.zeros(T, D, dtype=torch.float64)
    for i in range(T * k):
        routed[i // k] += y[int(pslot[i])].double()
    ref = (shared.double() + routed.to(dtype).double()).to(dtype)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_linear_portable_path_without_avx512_bf16():
    """The bf16 fallback (weight-streaming kernel, widening + sgemm) for CPUs without AVX512-BF16,
    forced in a subprocess; the same checks as above."""
    import os
    import subprocess
    import sys
    import tempfile

    import llama4_native

    code = (
        "import torch, sys; sys.path.insert(0, {tests!r}); import test_dense_moe_ops as t\n"
        "for M, N, K in t.SIZES: t.test_linear_matches_torch(M, N, K, torch.bfloat16)\n"
        "print('ok')\n").format(tests=os.path.dirname(__file__))
    env = dict(os.environ, LLAMA4_NO_AVX512_BF16="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(llama4_native.__file__)))
    # From a neutral folder: `python -c` puts the working folder first on sys.path, where the
    # source tree would shadow the installed package.
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_linear_is_linear_per_group(dtype):
    """Each group's rows equal ops.linear of those rows with that group's weights (bit for bit),
    and the fp32 result is within the accumulation bound of a float64 product; empty groups and
    groups of one row included."""
    g = torch.Generator().manual_seed(7)
    E, N, K = 5, 24, 40
    sizes = [3, 0, 1, 9, 0]
    offsets = torch.tensor([0] + torch.tensor(sizes).cumsum(0).tolist(), dtype=torch.int32)
    x = torch.randn(sum(sizes), K, generator=g).to(dtype)
    w = torch.randn(E, N, K, generator=g).to(dtype)
    out = ops.grouped_linear(x, w, offsets)
    assert out.shape == (sum(sizes), N) and out.dtype == dtype
    for e in range(E):
        a, b = int(offsets[e]), int(offsets[e + 1])
        if a == b:
            continue
        torch.testing.assert_close(out[a:b], ops.linear(x[a:b], w[e]), rtol=0, atol=0)
        ref = _ref_linear(x[a:b], w[e])
        bound = 8e-6 * (x[a:b].double().abs() @ w[e].double().abs().T) + 1e-12
        slack = 0 if dtype == torch.float32 else ref.abs() * 2.0 ** -8  # one bf16 rounding
        assert ((out[a:b].double() - ref).abs() <= bound + slack).all()


def test_grouped_linear_leaves_rows_past_the_last_group_alone():
    """Expert parallelism (moe_localize): rows from offsets[E] on belong to another rank's experts."""
    x, w = torch.randn(5, 8), torch.randn(2, 3, 8)
    out = ops.grouped_linear(x, w, torch.tensor([0, 2, 3], dtype=torch.int32))
    assert out.shape == (5, 3)
    torch.testing.assert_close(out[:2], x[:2] @ w[0].T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[2:3], x[2:3] @ w[1].T, rtol=1e-5, atol=1e-5)


def test_grouped_linear_rejects_bad_offsets():
    x, w = torch.randn(4, 8), torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="'offsets' must run from 0 to at most 4"):
        ops.grouped_linear(x, w, torch.tensor([0, 2, 5], dtype=torch.int32))
    with pytest.raises(ValueError, match="non-decreasing"):
        ops.grouped_linear(x, w, torch.tensor([0, 5, 4], dtype=torch.int32))
    with pytest.raises(ValueError, match="'w' must have shape \\[E, N, 8\\]"):
        ops.grouped_linear(x, torch.randn(2, 3, 7), torch.tensor([0, 2, 4], dtype=torch.int32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_add_is_one_rounding_of_the_fp32_sum(dtype):
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 1000, generator=g).to(dtype), torch.randn(3, 1000, generator=g).to(dtype)
    assert torch.equal(ops.add(a, b), (a.float() + b.float()).to(dtype))
