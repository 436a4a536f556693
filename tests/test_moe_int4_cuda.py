"""The CUDA INT4 (W4A16) grouped GEMM over experts — the decode kernel ("gemv") and the CUTLASS
mixed-input grouped GEMM ("cutlass", sm_90a) — against the CPU op and a float64 reference.

What each side computes (llama4/moe_int4.h, llama4/moe_int4_config.h):
  * the op's formula, out = bf16(sum_g s_g * sum_{k in g} x_k q_k) with fp32 sums: the CPU op and
    the gemv kernel (each in its own summation order);
  * "dequantize to bf16, then the bf16 matmul": the CUTLASS kernel (its mainloop rounds each q * s
    to bf16 before the tensor cores).
The float64 references are those two formulas evaluated exactly (every product x * q * s is exact
in float64, and float64 sums of K <= 2^13 such terms are far below the tolerances).

Tolerances are derived, not fitted (S = sum_k |x_k W_k|, the magnitude the sum is made of):
  * An fp32 sum of K terms is within K * u * S of the exact sum (recursive summation; u = 2^-24 for
    round to nearest). The tensor cores' fp32 accumulation may truncate: u = 2^-23 there.
  * The final rounding to bf16 (8 significant bits) moves a value by at most 2^-8 of itself.
  * bf16(q * s) differs from q * s by at most 2^-8 of itself, so the CUTLASS result differs from the
    op's formula by at most another 2^-8 * S.
  * Integer data with power-of-two scales makes every partial sum an exact small integer in fp32,
    so there every kernel must equal the CPU op bit for bit — which also proves the CUTLASS kernel
    is not the empty plain-sm_90 build of a wgmma kernel (TOOLCHAIN.md §2).
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
from llama4_native import ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not (l4.cuda_available() and torch.cuda.is_available()),
                       reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch"),
]

KERNELS = ("gemv", "cutlass")


def _offsets(counts) -> torch.Tensor:
    return torch.tensor([0] + list(torch.tensor(counts).cumsum(0).tolist()), dtype=torch.int32)


def _pack(q: torch.Tensor) -> torch.Tensor:
    """int4 values q [..., K] in -8..7 -> [..., K/2] uint8: k = 2j in the low nibble of byte j."""
    lo, hi = q[..., 0::2] & 0xF, q[..., 1::2] & 0xF
    return (lo | (hi << 4)).to(torch.uint8)


def _case(counts, N, K, G, seed, integer=False):
    g = torch.Generator().manual_seed(seed)
    E, R = len(counts), sum(counts)
    q = torch.randint(-8, 8, (E, N, K), generator=g)
    if integer:
        x = torch.randint(-2, 3, (R, K), generator=g).to(torch.bfloat16)
        s = (2.0 ** torch.randint(-6, -1, (E, N, K // G), generator=g).float()).to(torch.bfloat16)
    else:
        x = torch.randn(R, K, generator=g).to(torch.bfloat16)
        mant = 1 + torch.rand(E, N, K // G, generator=g)  # scales of every bf16 mantissa
        s = (mant * 2.0 ** torch.randint(-9, -4, (E, N, K // G), generator=g).float()).to(torch.bfloat16)
    return x, q, _pack(q), s, _offsets(counts)


def _reference(x, q, s, off, bf16_weights: bool):
    """float64 out [R, N] (rows past off[E] zero) and S = sum_k |x W| for each output."""
    G = q.shape[2] // s.shape[2]
    W = q.double() * s.double().repeat_interleave(G, dim=2)
    if bf16_weights:
        W = (q.float() * s.float().repeat_interleave(G, dim=2)).to(torch.bfloat16).double()
    R, N = x.shape[0], q.shape[1]
    ref, mag = torch.zeros(R, N, dtype=torch.float64), torch.zeros(R, N, dtype=torch.float64)
    for e in range(q.shape[0]):
        lo, hi = int(off[e]), int(off[e + 1])
        xe = x[lo:hi].double()
        ref[lo:hi] = xe @ W[e].T
        mag[lo:hi] = xe.abs() @ W[e].abs().T
    return ref, mag


def _tolerance(ref, mag, K, kernel, formula):
    """The bound on |kernel - float64 formula| (module docstring); formula "op" or "bf16"."""
    if kernel == "cutlass":  # tensor-core fp32 sums may truncate
        sums = K * 2.0**-23 * (1 + 2.0**-8)
        dequant = 2.0**-8 if formula == "op" else 0.0  # bf16(q * s) vs q * s
        return 2.0**-8 * ref.abs() + (1 + 2.0**-8) * (dequant + sums) * mag
    assert formula == "op"
    return 2.0**-8 * ref.abs() + (1 + 2.0**-8) * K * 2.0**-24 * mag  # fp32 sums, round to nearest


def _gpu(kernel, x, w, s, off, out=None):
    args = [t.cuda() for t in (x, w, s, off)]
    if kernel is None:
        y = ops.moe_grouped_gemm_int4(*args, out=out)
    else:
        y = ops.moe_grouped_gemm_int4_kernel(*args, kernel, out=out)
    torch.cuda.synchronize()
    return y.cpu()


def _check(name, got, x, q, s, off, kernel, formula="op"):
    """got's rows [0, off[E]) within the bound of `formula` for `kernel` ("cpu" bounds like gemv)."""
    rows, K = int(off[-1]), x.shape[1]
    ref, mag = _reference(x, q, s, off, bf16_weights=formula == "bf16")
    tol = _tolerance(ref[:rows], mag[:rows], K, "cutlass" if kernel == "cutlass" else "gemv", formula)
    err = (got[:rows].double() - ref[:rows]).abs()
    ratio = float((err / tol).max()) if rows else 0.0
    print(f"{name} vs the {formula} formula: max err/tol {ratio:.3f}")
    assert torch.isfinite(got[:rows].float()).all()
    assert bool((err <= tol).all()), f"{name}: max err/tol {ratio:.3f}"


# (counts per expert, N, K, G): empty experts first, in the middle and last; decode-sized and
# prefill-sized groups; N = 200 leaves partial tiles (32-channel gemv slabs, 128-row CUTLASS tiles);
# N = 384, K = 192 with G = 64 gives odd tile counts (3 weight tiles, 3 k tiles) and 129 rows two
# token tiles, the second of one row.
CASES = [
    ([0, 1, 0, 1, 1, 0], 256, 512, 128),
    ([2, 0, 3, 1, 0, 2], 256, 512, 128),  # 2 rows per busy expert on average: gemv's 2-row tile
    ([0, 2, 0, 3, 1, 0, 2, 0], 200, 1024, 128),
    ([0, 7, 0, 1, 0, 0, 5, 0], 200, 512, 64),
    ([0, 300, 0, 257, 130, 0], 256, 512, 128),
    ([64, 1, 0, 3], 200, 1280, 64),
    ([129, 0, 3, 129], 384, 192, 64),
]


@pytest.mark.parametrize("counts,N,K,G", CASES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernels_bit_identical_on_integer_data(counts, N, K, G, kernel):
    x, q, w, s, off = _case(counts, N, K, G, seed=K + N, integer=True)
    cpu = ops.moe_grouped_gemm_int4(x, w, s, off)
    gpu = _gpu(kernel, x, w, s, off)
    assert cpu.abs().max() > 0, "test data must not be all zeros"
    assert torch.equal(gpu.view(torch.int16), cpu.view(torch.int16))


@pytest.mark.parametrize("counts,N,K,G", CASES)
def test_both_kernels_within_bounds_of_their_formulas(counts, N, K, G):
    """Both kernels forced on the same inputs, each against the float64 value of the formula it
    computes and against the op's formula; the CPU op against the op's formula too."""
    x, q, w, s, off = _case(counts, N, K, G, seed=3 * K + N)
    cpu = ops.moe_grouped_gemm_int4(x, w, s, off)
    _check("cpu", cpu, x, q, s, off, "cpu")
    gemv = _gpu("gemv", x, w, s, off)
    _check("gemv", gemv, x, q, s, off, "gemv")
    cutlass = _gpu("cutlass", x, w, s, off)
    _check("cutlass", cutlass, x, q, s, off, "cutlass", formula="bf16")
    _check("cutlass", cutlass, x, q, s, off, "cutlass", formula="op")
    same = float((gemv.view(torch.int16) == cpu.view(torch.int16)).float().mean())
    print(f"counts {counts}: gemv bit-identical to the CPU op for {100 * same:.1f}% of outputs, "
          f"auto picks {ops.moe_int4_gemm_config(sum(counts), len(counts), N, G)['name']}")


@pytest.mark.parametrize("counts,N,K,G", CASES)
def test_op_runs_the_configured_kernel(counts, N, K, G):
    x, q, w, s, off = _case(counts, N, K, G, seed=N)
    name = ops.moe_int4_gemm_config(sum(counts), len(counts), N, G)["name"]
    assert torch.equal(_gpu(None, x, w, s, off).view(torch.int16), _gpu(name, x, w, s, off).view(torch.int16))


@pytest.mark.parametrize("N,G", [(64, 32), (100, 128)])
def test_shapes_only_gemv_takes(N, G):
    """G = 32 (not a multiple of CUTLASS's 64-deep K tile) and N % 8 != 0 (misaligned TMA rows) are
    legal for the op: prefill-sized groups still run (on gemv), and forcing cutlass is a clear error."""
    counts, K = [100, 50], 256
    x, q, w, s, off = _case(counts, N, K, G, seed=N + G)
    assert ops.moe_int4_gemm_config(150, 2, N, G)["name"] == "gemv"
    _check(f"auto, N = {N}, G = {G}", _gpu(None, x, w, s, off), x, q, s, off, "gemv")
    with pytest.raises(ValueError, match="the cutlass kernel needs N % 8 == 0"):
        _gpu("cutlass", x, w, s, off)


@pytest.mark.parametrize("kernel", KERNELS)
def test_128_experts_mostly_empty(kernel):
    g = torch.Generator().manual_seed(128)
    counts = [0] * 128
    for e in torch.randint(0, 128, (40,), generator=g).tolist():
        counts[e] += int(torch.randint(1, 20, (1,), generator=g))
    x, q, w, s, off = _case(counts, 128, 256, 128, seed=129)
    _check(f"128 experts, {kernel}", _gpu(kernel, x, w, s, off), x, q, s, off, kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_rows_past_the_last_offset_are_not_written(kernel):
    counts, N, K, G = [3, 0, 40], 64, 256, 128
    x, q, w, s, off = _case(counts, N, K, G, seed=7)
    x = torch.cat([x, torch.randn(5, K).to(torch.bfloat16)])  # 5 rows owned by no expert
    sentinel = torch.full((x.shape[0], N), float("nan"), dtype=torch.bfloat16, device="cuda")
    got = _gpu(kernel, x, w, s, off, out=sentinel)
    assert torch.isnan(got[43:].float()).all()
    _check(f"rows past off[E], {kernel}", got, x, q, s, off, kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_more_than_65535_rows(kernel):
    """Rows are never a grid dimension: 70000 rows in two experts."""
    x, q, w, s, off = _case([40000, 30000], 64, 128, 128, seed=65536)
    _check(f"70000 rows, {kernel}", _gpu(kernel, x, w, s, off), x, q, s, off, kernel)


def test_preallocated_workspace_and_too_small_one():
    counts, N, K, G = [200, 0, 100], 128, 256, 128
    x, q, w, s, off = _case(counts, N, K, G, seed=11)
    args = [t.cuda() for t in (x, w, s, off)]
    n = ops.moe_grouped_gemm_int4_workspace_bytes("cuda:0", 3)
    assert n > 0
    ws = torch.empty(n, dtype=torch.uint8, device="cuda")
    got = ops.moe_grouped_gemm_int4_kernel(*args, "cutlass", workspace=ws)
    want = ops.moe_grouped_gemm_int4_kernel(*args, "cutlass")
    torch.cuda.synchronize()
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="at least"):
        ops.moe_grouped_gemm_int4_kernel(*args, "cutlass", workspace=ws[: n // 2])



# ---- the dense INT4 linear (shared expert, dense MLP): one expert owning every row ---------------

@pytest.mark.parametrize("R,N,K,G", [(1, 256, 512, 128), (7, 200, 512, 64), (300, 256, 1024, 128),
                                     (129, 384, 192, 64), (5, 64, 256, 32)])
def test_linear_int4_equals_the_grouped_op_and_its_bound(R, N, K, G):
    """ops.linear_int4 on the GPU (its offsets [0, R] written on the device): bit for bit the
    grouped op with one expert and host-made offsets (the same configured kernel), within that
    kernel's bound of its formula, and bit for bit the CPU op on integer data."""
    x, q, w, s, off = _case([R], N, K, G, seed=R + N + K)
    got = ops.linear_int4(x.cuda(), w[0].cuda(), s[0].cuda())
    torch.cuda.synchronize()
    got = got.cpu()
    assert torch.equal(got.view(torch.int16), _gpu(None, x, w, s, off).view(torch.int16))
    kernel = ops.moe_int4_gemm_config(R, 1, N, G)["name"]
    _check(f"linear_int4 ({kernel})", got, x, q, s, off, kernel, formula="bf16" if kernel == "cutlass" else "op")
    xi, _, wi, si, _ = _case([R], N, K, G, seed=R + 1, integer=True)
    cpu = ops.linear_int4(xi, wi[0], si[0])
    gpu = ops.linear_int4(xi.cuda(), wi[0].cuda(), si[0].cuda())
    torch.cuda.synchronize()
    gpu = gpu.cpu()
    assert torch.equal(gpu.view(torch.int16), cpu.view(torch.int16))
