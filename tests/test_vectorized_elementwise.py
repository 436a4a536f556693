"""The CPU elementwise ops go eight elements at a time (cpu/vec8.h) with the scalar code's exact
arithmetic, because the CUDA kernels match the scalar code bit for bit. Here every element of a
vectorized call must equal, bit for bit, the same element computed alone (a one-element call takes
the scalar path): SiLU-gate (its exp in double, the clamps at -110 and 100, NaN and infinities),
the residual add, and RoPE (each pair against a one-pair call with that pair's frequency)."""
from __future__ import annotations

import pytest
import torch

from llama4_native import ops

DTYPES = [torch.float32, torch.bfloat16]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int16)


def _specials() -> torch.Tensor:
    v = [0.0, -0.0, 1e-40, -1e-40, 1.0, -1.0, 99.9, 100.0, 100.00001, 150.0, -109.9, -110.0, -110.00002,
         -200.0, 88.7, -87.3, float("inf"), float("-inf"), float("nan"), 3.4e38, -3.4e38, 20.5, -20.5]
    return torch.tensor(v, dtype=torch.float32)


def _inputs(dtype: torch.dtype, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gate = torch.randn(n, generator=g) * torch.logspace(-3, 2, n)[torch.randperm(n, generator=g)]
    gate[:23] = _specials()
    up = torch.randn(n, generator=g) * 3
    up[5] = float("inf")
    return gate.to(dtype), up.to(dtype)


def _assert_same_bits(got: torch.Tensor, want: torch.Tensor) -> None:
    nan = want.float().isnan()
    assert torch.equal(got.float().isnan(), nan)
    diff = (_bits(got) != _bits(want)) & ~nan
    assert not diff.any(), f"{int(diff.sum())} elements differ, first at {diff.nonzero()[0].item()}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_silu_gate_vector_lanes_equal_the_scalar_path(dtype):
    gate, up = _inputs(dtype, 1029, seed=1)  # 128 vectors and a 5-element tail
    got = ops.silu_gate(gate, up)
    alone = torch.stack([ops.silu_gate(gate[i:i + 1], up[i:i + 1])[0] for i in range(gate.numel())])
    _assert_same_bits(got, alone)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_add_vector_lanes_equal_the_scalar_path(dtype):
    a, b = _inputs(dtype, 1029, seed=2)
    got = ops.add(a, b)
    alone = torch.stack([ops.add(a[i:i + 1], b[i:i + 1])[0] for i in range(a.numel())])
    _assert_same_bits(got, alone)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rope_vector_pairs_equal_the_scalar_path(dtype):
    g = torch.Generator().manual_seed(3)
    T, H, d = 5, 3, 128
    x = (torch.randn(T, H, d, generator=g) * 4).to(dtype)
    x[0, 0, :4] = torch.tensor([float("inf"), 1.0, float("nan"), -2.0])
    positions = torch.tensor([0, 1, 977, 8191, 1 << 20], dtype=torch.int64)
    inv_freq = 1.0 / (5e5 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    got = ops.rope(x, positions, inv_freq)
    alone = torch.empty_like(got)
    for j in range(d // 2):  # a head_dim-2 call is all scalar
        pair = x[:, :, 2 * j:2 * j + 2].contiguous()
        alone[:, :, 2 * j:2 * j + 2] = ops.rope(pair, positions, inv_freq[j:j + 1].contiguous())
    _assert_same_bits(got, alone)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fp8_quantize_every_code_and_rounding_boundary(dtype):
    # One row quantized with scale 1 (amax bounded by scale_ub = 448): every e4m3 value, every
    # midpoint between neighbours (the round-half-to-even cases), points just beside them, the
    # subnormal range and values past 448 (clamped), in both signs; mostly vector lanes, a tail of
    # 5 on the scalar path. Reference: torch's clamp and cast.
    codes = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()  # 0 .. 448
    mids = (codes[:-1] + codes[1:]) / 2
    near = torch.cat([mids * (1 + 2**-20), mids * (1 - 2**-20)])
    extra = torch.tensor([448.0, 450.0, 463.9, 464.0, 464.1, 479.0, 1e4, 2**-10, 2**-12, 1e-30])
    row = torch.cat([codes, mids, near, extra])
    row = torch.cat([row, -row])
    row = torch.cat([row, torch.full((5 - row.numel() % 8 + 8,), 3.3)]).to(dtype)  # numel = 5 (mod 8)
    assert row.numel() % 8 == 5
    q, scale = ops.quantize_fp8_rowwise(row[None, :], scale_ub=448.0)
    assert scale.item() == 1.0
    want = row.float().clamp(-448, 448).to(torch.float8_e4m3fn)
    assert torch.equal(q[0].view(torch.uint8), want.view(torch.uint8))
