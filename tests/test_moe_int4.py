"""The INT4 (W4A16) grouped GEMM over experts and the int4 quantizer (llama4/moe_int4.h) on the CPU:
against "dequantize exactly, then matmul" in float64 within the derived fp32 summation bound, and
against compressed-tensors' "dequantize to bf16, then the bf16 matmul" within that bound plus the
bf16 rounding of each weight; both the AVX-512 kernel and the portable one (forced in a subprocess)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
import torch

import int4_reference as ref
from llama4_native import ops


def _offsets(counts) -> torch.Tensor:
    return torch.tensor([0] + torch.tensor(counts, dtype=torch.int64).cumsum(0).tolist(), dtype=torch.int32)


def _case(counts, N, K, G, seed, extra_rows=0):
    gen = torch.Generator().manual_seed(seed)
    E = len(counts)
    R = sum(counts) + extra_rows
    x = torch.randn(R, K, generator=gen).to(torch.bfloat16)
    q = torch.randint(-8, 8, (E, N, K), generator=gen, dtype=torch.int32)
    scale = (torch.rand(E, N, K // G, generator=gen) * 0.1 + 0.001).to(torch.bfloat16)
    return x, ref.pack(q), scale, _offsets(counts)


# (rows per expert, N, K, G): decode (1 row), several experts with empty ones, MR chunks (8),
# prefill past the 64-row chunk, N not a multiple of the 16-row blocks, one group (G = K), G = 32
# (one vector step per group) and G = 96 (an odd number of steps), the default G = 128.
SHAPES = [
    ([1], 64, 256, 128),
    ([1, 0, 2, 0, 1], 48, 256, 128),
    ([3, 8, 9, 0], 37, 384, 128),
    ([70, 0, 5, 130], 33, 256, 128),
    ([2, 4], 16, 64, 64),
    ([5, 1, 0], 40, 128, 32),
    ([7, 3], 24, 288, 96),
    ([0, 0, 0], 16, 128, 128),
]


@pytest.mark.parametrize("counts,N,K,G", SHAPES)
def test_grouped_gemm_within_fp32_bound(counts, N, K, G):
    """|out - exact| <= 2^-8 (|exact| + B) + B with B = gamma_n sum_k |x W| (int4_reference's n):
    the fp32 sums, then one bf16 rounding. Also against bf16-rounded weights (compressed-tensors'
    dequantization) with their extra 2^-8 sum_k |x W|."""
    x, w, scale, off = _case(counts, N, K, G, seed=len(counts) * 100 + N + K)
    out = ops.moe_grouped_gemm_int4(x, w, scale, off)
    assert out.shape == (x.shape[0], N) and out.dtype == torch.bfloat16
    exact, mag = ref.grouped_reference(x, w, scale, off)
    got = out.to(torch.float64)
    B = ref.fp32_sum_bound(K, G) * mag
    bound = ref.BF16_U * (exact.abs() + B) + B
    assert ((got - exact).abs() <= bound).all(), float(((got - exact).abs() / bound).max())
    ct, _ = ref.grouped_reference(x, w, scale, off, bf16_weights=True)
    bound_ct = bound + ref.BF16_U * mag
    assert ((got - ct).abs() <= bound_ct).all(), float(((got - ct).abs() / bound_ct).max())


def test_grouped_gemm_bound_is_not_vacuous():
    """The bound is far tighter than the output: a wrong scale group or a nibble-order swap breaks it."""
    counts, N, K, G = [4, 3], 32, 256, 128
    x, w, scale, off = _case(counts, N, K, G, seed=5)
    exact, mag = ref.grouped_reference(x, w, scale, off)
    B = ref.fp32_sum_bound(K, G) * mag
    bound = ref.BF16_U * (exact.abs() + B) + B
    swapped = ((w & 0xF) << 4) | (w >> 4)  # nibbles in the other order
    bad = ops.moe_grouped_gemm_int4(x, swapped, scale, off).to(torch.float64)
    assert ((bad - exact).abs() > bound).float().mean() > 0.9
    rolled = scale.roll(1, dims=-1)  # scales of the wrong groups
    bad = ops.moe_grouped_gemm_int4(x, w, rolled, off).to(torch.float64)
    assert ((bad - exact).abs() > bound).float().mean() > 0.9


def test_rows_beyond_the_last_offset_are_not_written():
    counts, N, K, G = [2, 0, 3], 24, 128, 32
    x, w, scale, off = _case(counts, N, K, G, seed=9, extra_rows=4)
    out = torch.full((x.shape[0], N), 7.0, dtype=torch.bfloat16)
    res = ops.moe_grouped_gemm_int4(x, w, scale, off, out=out)
    assert res is out
    assert (out[5:] == 7.0).all()
    exact, mag = ref.grouped_reference(x, w, scale, off)
    B = ref.fp32_sum_bound(K, G) * mag[:5]
    assert ((out[:5].double() - exact[:5]).abs() <= ref.BF16_U * (exact[:5].abs() + B) + B).all()


def test_strided_x_is_accepted():
    counts, N, K, G = [3, 2], 16, 128, 64
    x, w, scale, off = _case(counts, N, K, G, seed=11)
    wide = torch.zeros(x.shape[0], 2 * K, dtype=torch.bfloat16)
    wide[:, ::2] = x
    assert torch.equal(ops.moe_grouped_gemm_int4(wide[:, ::2], w, scale, off),
                       ops.moe_grouped_gemm_int4(x, w, scale, off))


def test_grouped_gemm_errors():
    x, w, scale, off = _case([2, 1], 16, 128, 64, seed=3)
    f = ops.moe_grouped_gemm_int4
    with pytest.raises(TypeError, match="'x' must have dtype bfloat16"):
        f(x.float(), w, scale, off)
    with pytest.raises(TypeError, match="'w' must have dtype uint8"):
        f(x, w.to(torch.int32), scale, off)
    with pytest.raises(ValueError, match="'w' must have shape"):
        f(x, w[:, :, :-1].contiguous(), scale, off)
    with pytest.raises(TypeError, match="'w_scale' must have dtype bfloat16"):
        f(x, w, scale.float(), off)
    with pytest.raises(ValueError, match="group size G dividing K"):  # K = 128 over 3 groups
        f(x, w, torch.ones(2, 16, 3, dtype=torch.bfloat16), off)
    with pytest.raises(ValueError, match="multiple of 32"):  # G = 16
        f(x, w, torch.ones(2, 16, 8, dtype=torch.bfloat16), off)
    with pytest.raises(ValueError, match="'w_scale' must have shape"):
        f(x, w, scale[:1].contiguous(), off)
    with pytest.raises(ValueError, match="'expert_offsets' must have shape"):
        f(x, w, scale, off[:2].contiguous())
    with pytest.raises(ValueError, match="'expert_offsets' must rise from 0"):
        f(x, w, scale, torch.tensor([0, 3, 2], dtype=torch.int32))
    with pytest.raises(ValueError, match="'expert_offsets' must rise from 0"):
        f(x, w, scale, torch.tensor([0, 2, 9], dtype=torch.int32))
    with pytest.raises(ValueError, match="'w' must be contiguous"):
        f(x, w.transpose(0, 1).contiguous().transpose(0, 1), scale, off)
    with pytest.raises(ValueError, match="output 'out' must be contiguous"):
        f(x, w, scale, off, out=torch.empty(16, 3, dtype=torch.bfloat16).t())


# ---- the dense INT4 linear (shared expert, dense MLP) ----------------------------------------------

# (rows, N, K, G): decode, a prefill past the kernels' row chunks, N off the 16-row blocks, G = K.
DENSE_SHAPES = [(1, 64, 256, 128), (70, 33, 384, 128), (9, 48, 192, 32), (3, 16, 128, 128), (0, 16, 64, 32)]


@pytest.mark.parametrize("R,N,K,G", DENSE_SHAPES)
def test_linear_int4_within_fp32_bound(R, N, K, G):
    """Every row against x @ W^T of the exactly dequantized weight, within the grouped GEMM's bound,
    and bit for bit the grouped GEMM with one expert owning all rows (the same kernel)."""
    x, w, scale, _ = _case([R], N, K, G, seed=R * 7 + N + K)
    out = ops.linear_int4(x, w[0], scale[0])
    assert out.shape == (R, N) and out.dtype == torch.bfloat16
    W = ref.dequantize(w[0], scale[0])
    exact, mag = x.double() @ W.T, x.double().abs() @ W.abs().T
    B = ref.fp32_sum_bound(K, G) * mag
    assert ((out.double() - exact).abs() <= ref.BF16_U * (exact.abs() + B) + B).all()
    assert torch.equal(out, ops.moe_grouped_gemm_int4(x, w, scale, _offsets([R])))
    if R and K > G:  # not vacuous: scales of the wrong groups break the bound
        bad = ops.linear_int4(x, w[0], scale[0].roll(1, dims=-1)).double()
        assert ((bad - exact).abs() > ref.BF16_U * (exact.abs() + B) + B).float().mean() > 0.5


def test_linear_int4_errors():
    x, w, scale, _ = _case([3], 16, 128, 64, seed=4)
    w, scale = w[0], scale[0]
    f = ops.linear_int4
    with pytest.raises(TypeError, match="linear_int4: 'x' must have dtype bfloat16"):
        f(x.float(), w, scale)
    with pytest.raises(ValueError, match=r"linear_int4: 'w' must have shape \[N, 64\]"):
        f(x, w[:, :-1].contiguous(), scale)
    with pytest.raises(ValueError, match="linear_int4: 'w' must be 2-d"):
        f(x, w[None], scale)
    with pytest.raises(ValueError, match=r"linear_int4: 'w_scale' must have shape \[16, K / G\]"):
        f(x, w, scale[:8].contiguous())
    with pytest.raises(ValueError, match="multiple of 32"):  # G = 16
        f(x, w, torch.ones(16, 8, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="'w' must be contiguous"):
        f(x, w.t().contiguous().t(), scale)


# ---- the quantizer -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("group", [32, 128])
def test_quantize_matches_the_rule(dtype, group):
    """Bit for bit the header's rule (int4_reference.quantize), with a zero group and ties."""
    gen = torch.Generator().manual_seed(group)
    w = (torch.randn(3, 8, 256, generator=gen) * 0.05).to(dtype)
    w[0, 0, :group] = 0  # a zero group: scale 0, q 0
    w[1, 2, :group] = torch.arange(group, dtype=torch.float32).remainder(15).sub(7).to(dtype)  # integer ties
    q, s = ops.quantize_int4_grouped(w, group)
    q_ref, s_ref = ref.quantize(w, group)
    assert q.dtype == torch.uint8 and q.shape == (3, 8, 128)
    assert s.dtype == torch.bfloat16 and s.shape == (3, 8, 256 // group)
    assert torch.equal(s.view(torch.int16), s_ref.view(torch.int16))
    assert torch.equal(q, q_ref)
    assert float(s[0, 0, 0]) == 0 and (q[0, 0, : group // 2] == 0).all()
    # round to nearest: every weight within half a step of its dequantized value
    err = (ref.dequantize(q, s) - w.double()).abs()
    step = s.double().repeat_interleave(group, dim=-1)
    assert (err <= step / 2 * (1 + 2 ** -7) + 1e-30).all()


def test_quantize_errors():
    w = torch.randn(4, 256)
    with pytest.raises(ValueError, match="multiple of group = 128"):
        ops.quantize_int4_grouped(w[:, :192].contiguous(), 128)
    with pytest.raises(ValueError, match="group must be a multiple of 32"):
        ops.quantize_int4_grouped(w, 48)
    with pytest.raises(TypeError, match="'w' must have dtype"):
        ops.quantize_int4_grouped(w.to(torch.float16), 128)
    bad = w.clone()
    bad[2, 5] = float("nan")
    with pytest.raises(ValueError, match="row 2 of 'w' holds a non-finite value"):
        ops.quantize_int4_grouped(bad, 128)


def test_quantized_gemm_close_to_the_bf16_matmul():
    """End to end: quantize bf16 weights, then the GEMM is within int4 rounding (half a step per
    weight) plus the fp32 bound of x @ W^T with the original weights."""
    gen = torch.Generator().manual_seed(2)
    E, N, K, G = 3, 32, 256, 128
    w = (torch.randn(E, N, K, generator=gen) * 0.05).to(torch.bfloat16)
    x = torch.randn(10, K, generator=gen).to(torch.bfloat16)
    off = _offsets([4, 0, 6])
    q, s = ops.quantize_int4_grouped(w, G)
    got = ops.moe_grouped_gemm_int4(x, q, s, off).double()
    exact, mag = ref.grouped_reference(x, q, s, off)
    orig = torch.cat([x[0:4].double() @ w[0].double().T, x[4:10].double() @ w[2].double().T])
    half_step = (s.double() / 2).repeat_interleave(G, dim=-1)
    quant_err = torch.cat([x[0:4].double().abs() @ half_step[0].T, x[4:10].double().abs() @ half_step[2].T])
    B = ref.fp32_sum_bound(K, G) * mag
    assert ((got - orig).abs() <= ref.BF16_U * (exact.abs() + B) + B + quant_err * (1 + 2 ** -7)).all()


def test_portable_path_without_avx512_bf16():
    """The portable kernel, forced in a subprocess (has_avx512_bf16() reads the variable once): the
    same bound checks."""
    import llama4_native

    code = (
        "import sys; sys.path.insert(0, {tests!r}); import test_moe_int4 as t\n"
        "for c in t.SHAPES: t.test_grouped_gemm_within_fp32_bound(*c)\n"
        "t.test_rows_beyond_the_last_offset_are_not_written()\n"
        "t.test_grouped_gemm_bound_is_not_vacuous()\n"
        "for c in t.DENSE_SHAPES: t.test_linear_int4_within_fp32_bound(*c)\n"
        "print('ok')\n").format(tests=os.path.dirname(__file__))
    env = dict(os.environ, LLAMA4_NO_AVX512_BF16="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(llama4_native.__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
