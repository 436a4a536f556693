"""Every CUDA op against its CPU twin: the same llama4_native.ops call on CUDA and on CPU tensors.

All tests are marked `cuda` and skipped unless this build has the CUDA backend, it sees a GPU, and
torch is a CUDA build. Cases are table-driven over sizes 1, 19 and 111, head_dim 88, rows long
enough for the block-per-row kernels, non-contiguous and misaligned views, and empty tensors.

Exactness: the CUDA kernels round where the CPU kernels round and take sin/cos/exp from the shared
llama4/mathfn.h, so rope, silu_gate, quantize (codes and scales), dequantize, cast and copy must
match bit for bit. A NaN only has to be a NaN: GPU arithmetic returns a canonical NaN whose sign
and payload differ from the x86 result. rms_norm is the exception, see assert_rms_norm_close.
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
from llama4_native import ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (l4.cuda_available() and torch.cuda.is_available()),
        reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch",
    ),
]

ACT_DTYPES = [torch.float32, torch.bfloat16, torch.float16]
DTYPE_NAMES = {
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
    torch.float8_e4m3fn: "float8_e4m3fn",
}


# ---- comparison helpers --------------------------------------------------------------------------

def _int_view(t: torch.Tensor) -> torch.Tensor:
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.contiguous().view(ints[t.element_size()])


def assert_bitwise_equal(got: torch.Tensor, want: torch.Tensor) -> None:
    """Same dtype, shape and bits; any NaN equals any NaN (sign and payload are not compared)."""
    got, want = got.cpu(), want.cpu()
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    same = _int_view(got) == _int_view(want)
    if got.is_floating_point():
        got_nan, want_nan = torch.isnan(got.float()), torch.isnan(want.float())
        assert torch.equal(got_nan, want_nan), "NaN positions differ"
        same |= got_nan
    if not bool(same.all()):
        bad = (~same).nonzero()
        first = tuple(bad[0].tolist())
        raise AssertionError(
            f"{bad.shape[0]} of {same.numel()} elements differ; first at {first}: "
            f"cuda {got[first].item()!r} vs cpu {want[first].item()!r}"
        )


def assert_rms_norm_close(got: torch.Tensor, want: torch.Tensor) -> None:
    """RMSNorm is the one op that is not bit-exact, and only through its sum of squares: the CPU
    adds the squares in order, the GPU in a tree (per-thread partial sums, then warp shuffles), so
    rsqrt's argument differs in its last bits (about 1e-6 relative for 5120 terms). An output then
    differs only where that moves a value across a rounding boundary of its dtype: by one ulp, or
    two after the weight multiply rounds again, and rarely."""
    got, want = got.cpu(), want.cpu()
    rtol = {torch.float32: 2e-5, torch.bfloat16: 2.0**-6, torch.float16: 2.0**-9}[want.dtype]
    torch.testing.assert_close(got, want, rtol=rtol, atol=1e-6)
    if want.numel():
        exact = (_int_view(got) == _int_view(want)).float().mean().item()
        if want.dtype != torch.float32:
            assert exact >= 0.99, f"only {exact:.4f} of the elements are bit-identical"


def _cuda(t: torch.Tensor) -> torch.Tensor:
    """The same bits with the same strides and storage offset on the GPU (a view stays a view, so
    a misaligned CPU view is just as misaligned there)."""
    whole = torch.empty(0, dtype=t.dtype).set_(t.untyped_storage())
    return torch.as_strided(whole.cuda(), t.shape, t.stride(), t.storage_offset())


def views(x: torch.Tensor, kind: str) -> torch.Tensor:
    """x itself ("contiguous"), the same values in a strided view ("strided"), or in a view whose
    data pointer is one element past an aligned address ("misaligned", disables wide loads)."""
    if kind == "contiguous":
        return x
    if kind == "strided":
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1] + 1, dtype=x.dtype)
        wide[..., 1::2] = x
        return wide[..., 1::2]
    if kind == "misaligned":
        flat = torch.zeros(x.numel() + 1, dtype=x.dtype)
        flat[1:] = x.reshape(-1)
        return flat[1:].view(x.shape)
    raise ValueError(kind)


def both(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cpu view, cuda view) holding identical bits with identical strides."""
    return x, _cuda(x)


def randn(*shape, dtype=torch.float32, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).to(dtype)


# ---- RMSNorm / QK-norm ---------------------------------------------------------------------------

# (rows, D): sizes 1/19/111, head_dim 88 and 128 (QK-norm: warp per row), 333 and 2047 (scalar
# loads, block per row), 5120 (hidden size: vector loads, block per row), and empty.
RMS_SHAPES = [(1, 1), (19, 19), (111, 111), (37, 88), (64, 128), (5, 333), (3, 2047), (4, 5120),
              (0, 64)]


@pytest.mark.parametrize("dtype", ACT_DTYPES)
@pytest.mark.parametrize("rows,dim", RMS_SHAPES)
@pytest.mark.parametrize("kind", ["contiguous", "strided", "misaligned"])
@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm(dtype, rows, dim, kind, with_weight):
    x_cpu, x_gpu = both(views(randn(rows, dim, dtype=dtype, scale=3.0), kind))
    w_cpu = w_gpu = None
    if with_weight:
        w_cpu, w_gpu = both(views(randn(dim, dtype=dtype, seed=1), kind))
    got = ops.rms_norm(x_gpu, w_gpu, eps=1e-5)
    assert got.device.type == "cuda"
    assert_rms_norm_close(got, ops.rms_norm(x_cpu, w_cpu, eps=1e-5))


def test_qk_norm_4d():
    x_cpu, x_gpu = both(randn(19, 5, 88, dtype=torch.bfloat16))
    assert_rms_norm_close(ops.qk_norm(x_gpu, eps=1e-6), ops.qk_norm(x_cpu, eps=1e-6))


# ---- RoPE ----------------------------------------------------------------------------------------

# (tokens, heads, head_dim): d = 2 and 18 take the element path (d % 8 != 0), 88 and 128 vectors.
ROPE_SHAPES = [(1, 1, 2), (19, 3, 18), (111, 8, 88), (7, 40, 128), (0, 4, 64)]


def _inv_freq(d: int) -> torch.Tensor:
    scaling = {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0,
               "high_freq_factor": 1.0, "original_max_position_embeddings": 8192}
    return torch.tensor(ops.rope_inv_freq(d, 500000.0, scaling), dtype=torch.float32)


@pytest.mark.parametrize("dtype", ACT_DTYPES)
@pytest.mark.parametrize("tokens,heads,dim", ROPE_SHAPES)
@pytest.mark.parametrize("pos_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("kind", ["contiguous", "strided", "misaligned"])
def test_rope(dtype, tokens, heads, dim, pos_dtype, kind):
    x_cpu, x_gpu = both(views(randn(tokens, heads, dim, dtype=dtype), kind))
    g = torch.Generator().manual_seed(2)
    pos = torch.randint(0, 10_000_000, (tokens,), generator=g, dtype=torch.int64)
    if tokens > 2:  # positions 0 and 1, and angles past 2^28 (exact Payne-Hanek reduction)
        pos[:2] = torch.tensor([0, 1])
        pos[-1] = 2**31 - 1 if pos_dtype == torch.int32 else 3 * 10**9
    p_cpu, p_gpu = both(views(pos.to(pos_dtype), "strided" if kind == "strided" else "contiguous"))
    f_cpu, f_gpu = both(_inv_freq(dim))
    got = ops.rope(x_gpu, p_gpu, f_gpu)
    assert_bitwise_equal(got, ops.rope(x_cpu, p_cpu, f_cpu))


# ---- SiLU-gate -----------------------------------------------------------------------------------

SILU_SHAPES = [(1,), (19,), (111, 111), (3, 8192), (0, 5)]


def _with_specials(x: torch.Tensor) -> torch.Tensor:
    """Puts +-inf, NaN, +-0 and large magnitudes (exp overflow and underflow) at the front."""
    flat = x.reshape(-1)
    specials = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 95.0, -95.0,
                             120.0, -120.0])[: flat.numel()]
    flat[: specials.numel()] = specials.to(x.dtype)
    return x


@pytest.mark.parametrize("dtype", ACT_DTYPES)
@pytest.mark.parametrize("shape", SILU_SHAPES)
@pytest.mark.parametrize("kind", ["contiguous", "strided", "misaligned"])
def test_silu_gate(dtype, shape, kind):
    gate = _with_specials(randn(*shape, dtype=dtype, scale=4.0))
    g_cpu, g_gpu = both(views(gate, kind))
    u_cpu, u_gpu = both(views(randn(*shape, dtype=dtype, seed=3), kind))
    assert_bitwise_equal(ops.silu_gate(g_gpu, u_gpu), ops.silu_gate(g_cpu, u_cpu))


# ---- FP8 row-wise quantize / dequantize ----------------------------------------------------------

# (rows, K): K = 2047 is a block per row with element loads, 5120 a block per row with vectors;
# (5, 0) still writes 5 scales.
QUANT_SHAPES = [(1, 1), (19, 19), (111, 111), (16, 128), (3, 2047), (4, 5120), (0, 16), (5, 0)]


@pytest.mark.parametrize("dtype", ACT_DTYPES)
@pytest.mark.parametrize("rows,cols", QUANT_SHAPES)
@pytest.mark.parametrize("kind", ["contiguous", "strided", "misaligned"])
@pytest.mark.parametrize("scale_ub", [None, 1200.0])
def test_quantize_fp8_rowwise(dtype, rows, cols, kind, scale_ub):
    x = randn(rows, cols, dtype=dtype, scale=500.0)  # some rows exceed scale_ub
    if rows > 2 and cols > 2:
        x[0, :2] = 0.0                     # a row with zeros still has amax >= 1e-12 ...
        x[1] = 0.0                         # ... and an all-zero row
        x[2, 0] = float("nan")             # a NaN makes its row's codes and scale NaN
    x_cpu, x_gpu = both(views(x, kind))
    q_gpu, s_gpu = ops.quantize_fp8_rowwise(x_gpu, scale_ub)
    q_cpu, s_cpu = ops.quantize_fp8_rowwise(x_cpu, scale_ub)
    assert_bitwise_equal(q_gpu, q_cpu)
    assert_bitwise_equal(s_gpu, s_cpu)


def test_quantize_fp8_rowwise_inf_row():
    x = randn(3, 40)
    x[1, 7] = float("inf")  # amax = inf -> scale inf, other codes 0, the inf becomes NaN
    x_cpu, x_gpu = both(x)
    for a, b in zip(ops.quantize_fp8_rowwise(x_gpu), ops.quantize_fp8_rowwise(x_cpu)):
        assert_bitwise_equal(a, b)


@pytest.mark.parametrize("out_dtype", ACT_DTYPES)
@pytest.mark.parametrize("rows,cols", [(1, 1), (19, 19), (111, 111), (4, 5120), (0, 8)])
@pytest.mark.parametrize("kind", ["contiguous", "strided", "misaligned"])
def test_dequantize_fp8_rowwise(out_dtype, rows, cols, kind):
    g = torch.Generator().manual_seed(4)
    codes = torch.randint(0, 256, (rows, cols), generator=g, dtype=torch.uint8)  # NaN codes too
    q = codes.view(torch.float8_e4m3fn)
    scale = torch.rand(rows, generator=g) * 10.0
    q_cpu, q_gpu = both(views(q, kind))
    s_cpu, s_gpu = both(views(scale, kind))
    name = DTYPE_NAMES[out_dtype]
    assert_bitwise_equal(ops.dequantize_fp8_rowwise(q_gpu, s_gpu, name),
                         ops.dequantize_fp8_rowwise(q_cpu, s_cpu, name))


# ---- casts and copies ----------------------------------------------------------------------------

CAST_DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn]


def _cast_source(dtype: torch.dtype, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    if dtype == torch.float8_e4m3fn:
        return torch.randint(0, 256, (n,), generator=g, dtype=torch.uint8).view(dtype)
    # Normal values over many binades, then specials: overflow for f16/fp8, fp8's rounding
    # boundary 464, subnormals of every target, signed zeros, inf and NaN.
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-30, 20, (n,), generator=g).float())
    specials = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 448.0, 464.0,
                             480.0, -500.0, 65504.0, 65520.0, 1e5, 2.0**-9, 2.0**-10, 2.0**-24,
                             2.0**-25, 1e-40, -1e-45])[:n]
    x[: specials.numel()] = specials
    return x.to(dtype)


@pytest.mark.parametrize("src_dtype", CAST_DTYPES)
@pytest.mark.parametrize("dst_dtype", CAST_DTYPES)
@pytest.mark.parametrize("n", [1, 19, 111, 4099, 0])
@pytest.mark.parametrize("kind", ["contiguous", "strided", "misaligned"])
def test_cast(src_dtype, dst_dtype, n, kind):
    x_cpu, x_gpu = both(views(_cast_source(src_dtype, n), kind))
    name = DTYPE_NAMES[dst_dtype]
    assert_bitwise_equal(ops.cast(x_gpu, name), ops.cast(x_cpu, name))


COPY_DTYPES = [torch.uint8, torch.float16, torch.float32, torch.int64, torch.float8_e4m3fn]


def _copy_cases(x: torch.Tensor) -> list[torch.Tensor]:
    """Non-contiguous views of a 6-d tensor: permuted, sliced with steps, broadcast (stride 0)."""
    return [
        x.permute(5, 3, 1, 0, 2, 4),
        x[:, ::2, :, 1:, :, ::3],
        x[1:2, :, 1, :, 0:1, :],
        x.transpose(0, 5)[..., :1],
        x[:, :, :, :, :, :1].expand(*x.shape[:5], 7),
        x[0, 0, 0, 0, 0, :1].expand(19),
        x.reshape(-1)[1:].reshape(-1)[::111],
    ]


@pytest.mark.parametrize("dtype", COPY_DTYPES)
def test_contiguous_copy(dtype):
    g = torch.Generator().manual_seed(6)
    x = torch.randint(0, 256, (3, 4, 2, 5, 3, 6), generator=g, dtype=torch.uint8)
    x = x.to(torch.int64).to(dtype) if dtype != torch.float8_e4m3fn else x.view(dtype)
    for view in _copy_cases(x):
        v_cpu, v_gpu = both(view)
        got = ops.contiguous(v_gpu)
        assert got.is_contiguous() and got.device.type == "cuda"
        assert_bitwise_equal(got, ops.contiguous(v_cpu))
        assert_bitwise_equal(got, view.contiguous())


def test_contiguous_copy_empty_and_single():
    for shape in [(0,), (3, 0, 2), (1,), (1, 1, 1)]:
        x = torch.arange(int(torch.tensor(shape).prod()), dtype=torch.float32).reshape(shape)
        v_cpu, v_gpu = both(x.transpose(0, -1) if x.dim() > 1 else x)
        assert_bitwise_equal(ops.contiguous(v_gpu), ops.contiguous(v_cpu))


# ---- devices -------------------------------------------------------------------------------------

def test_mixed_devices_raise_type_error():
    x = randn(4, 16)
    w = randn(16)
    xg = _cuda(x)
    with pytest.raises(TypeError, match="is on cpu but 'x' is on cuda:0"):
        ops.rms_norm(xg, w)
    with pytest.raises(TypeError, match="is on cpu"):
        ops.silu_gate(xg, x)
    with pytest.raises(TypeError, match="is on cpu"):
        ops.rope(xg.view(4, 2, 8), torch.arange(4, device="cuda"), _inv_freq(8))
    q, s = ops.quantize_fp8_rowwise(xg)
    with pytest.raises(TypeError, match="is on cpu"):
        ops.dequantize_fp8_rowwise(q, s.cpu())


def test_outputs_stay_ordered_with_torch():
    # Our kernels and torch's share the legacy default stream: a torch kernel queued right after
    # ours reads its finished output without an explicit synchronize.
    x = torch.randn(4096, 1024, generator=torch.Generator().manual_seed(7)).to(torch.bfloat16)
    xg = x.cuda()
    after = ops.silu_gate(xg, xg).float().neg()
    assert_bitwise_equal(after, ops.silu_gate(x, x).float().neg())
    assert torch.cuda.current_device() == 0  # the device guard restored it
