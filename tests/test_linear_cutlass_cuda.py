"""The CUTLASS sm_90a bf16 GEMMs behind linear and grouped_linear (llama4/linear_config.h) against
an independent float64 reference (torch matmul in float64 of the same bf16 values).

Tolerance, from how each output is computed: products of two bf16 values are exact in fp32, so an
output differs from the exact sum only by the fp32 accumulation (at most K additions, each off by
at most one fp32 ulp of the running sum in any order: |err| <= 2 K 2^-24 sum_k |x_k w_k|, the 2
covering truncating tensor-core adders) and then one round-to-nearest to the output dtype
(<= 2^-8 relative for bf16, 2^-24 for fp32). Nothing is tuned to the kernels.

Each case first asserts which kernel the pure host rule picks on this GPU, so a case meant for a
CUTLASS configuration fails loudly if it would run elsewhere (on a non-sm_90 GPU the rule picks the
SIMT kernels, and the numbers are checked all the same). Marked `cuda` (skipped without a GPU).
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

EPS32 = 2.0 ** -24
OUT_EPS = {torch.bfloat16: 2.0 ** -8, torch.float32: EPS32}


def _arch() -> int:
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def _expect(cutlass_name: str) -> str:
    """The kernel a case runs: the named CUTLASS configuration on sm_90, the SIMT tile elsewhere."""
    return cutlass_name if _arch() == 90 else "tiled"


def _rand(shape, gen, device="cuda"):
    return torch.randn(*shape, generator=gen).bfloat16().to(device)


def _assert_close(got, x, w, out_dtype, what=""):
    """got ~ x . w^T within the fp32-accumulation + one-rounding bound (module docstring)."""
    xd, wd = x.double(), w.double()
    ref = xd @ wd.T
    mag = xd.abs() @ wd.abs().T
    acc = 2 * x.shape[1] * EPS32 * mag
    bound = acc + OUT_EPS[out_dtype] * (ref.abs() + acc)
    err = (got.double() - ref).abs()
    excess = (err - bound).flatten()
    worst = int(excess.argmax())
    assert float(excess[worst]) <= 0, (
        f"{what}: {int((excess > 0).sum())} of {excess.numel()} outputs outside the bound; worst at "
        f"{divmod(worst, ref.shape[1])}: error {float(err.flatten()[worst]):.3e}, "
        f"bound {float(bound.flatten()[worst]):.3e}")


# ---- linear --------------------------------------------------------------------------------------

# (M, N, K, configuration): partial M / N / K tiles everywhere (K % 64 != 0, N % tile != 0), odd
# tile counts (M tiles 3 and 5 under a 2x1 cluster, 9 N tiles under the 1x8 cluster), one-k-tile
# problems, and > 65535 rows.
DENSE = [
    (17, 72, 64, "cutlass_64x64"),
    (33, 520, 136, "cutlass_64x64"),
    (64, 576, 5120, "cutlass_64x64"),        # 9 N tiles: the second 1x8 cluster is mostly empty
    (65, 136, 200, "cutlass_64x128"),
    (128, 1000, 64, "cutlass_64x128"),
    (129, 264, 72, "cutlass_128x128"),
    (300, 1032, 520, "cutlass_128x128"),     # 3 M tiles under a 2x1 cluster, 9 N tiles
    (600, 5120, 5120, "cutlass_128x128"),    # 5 M tiles, Scout's o_proj width
    (70000, 72, 64, "cutlass_128x128"),      # > 65535 rows
]


@pytest.mark.parametrize("M,N,K,config", DENSE)
def test_linear_bf16(M, N, K, config):
    g = torch.Generator().manual_seed(M * 7919 + N * 31 + K)
    x, w = _rand((M, K), g), _rand((N, K), g)
    assert ops.linear_kernel(_arch(), "bfloat16", "bfloat16", M, N, K) == _expect(config)
    got = ops.linear(x, w)
    assert got.dtype == torch.bfloat16 and got.shape == (M, N)
    _assert_close(got, x, w, torch.bfloat16, f"{M}x{N}x{K}")


# fp32 out (the router: N = 16 / 128 experts; lm_head at a batch of 17..64 rows): no medium tile.
DENSE_F32 = [
    (17, 16, 5120, "cutlass_64x64"),
    (40, 1028, 264, "cutlass_64x64"),
    (100, 128, 5120, "cutlass_128x128"),
    (2048, 16, 5120, "cutlass_128x128"),
    (333, 260, 72, "cutlass_128x128"),
]


@pytest.mark.parametrize("M,N,K,config", DENSE_F32)
def test_linear_bf16_fp32_out(M, N, K, config):
    g = torch.Generator().manual_seed(M * 13 + N * 7 + K)
    x, w = _rand((M, K), g), _rand((N, K), g)
    assert ops.linear_kernel(_arch(), "bfloat16", "float32", M, N, K) == _expect(config)
    got = ops.linear(x, w, "float32")
    assert got.dtype == torch.float32 and got.shape == (M, N)
    _assert_close(got, x, w, torch.float32, f"{M}x{N}x{K} fp32 out")


@pytest.mark.parametrize("M", [40, 200])
def test_linear_row_strided_x(M):
    """x a column slice of a wider matrix: the row stride (256) goes to TMA as it is, no copy."""
    g = torch.Generator().manual_seed(M)
    base = _rand((M, 256), g)
    w = _rand((136, 128), g)
    for start in (64, 8):  # 128- and 16-byte aligned starts: both TMA-aligned
        x = base[:, start:start + 128]
        assert x.stride() == (256, 1)
        config = "cutlass_64x64" if M <= 64 else "cutlass_128x128"
        assert ops.linear_kernel(_arch(), "bfloat16", "bfloat16", M, 136, 128, ldx=256) == _expect(config)
        _assert_close(ops.linear(x, w), x, w, torch.bfloat16, f"start {start}")
        _assert_close(ops.linear(x, w, "float32"), x, w, torch.float32, f"start {start} fp32")


def test_linear_unaligned_views_fall_back():
    """Starts and strides TMA cannot take run on the SIMT tile kernel, with the same results."""
    g = torch.Generator().manual_seed(5)
    base = _rand((50, 3 * 64 + 1), g)
    w = _rand((72, 64), g)
    x = base[:, 1:65]  # 2-byte aligned start, odd row stride
    assert ops.linear_kernel(_arch(), "bfloat16", "bfloat16", 50, 72, 64, ldx=193, aligned16=False) == "tiled"
    _assert_close(ops.linear(x, w), x, w, torch.bfloat16, "unaligned")
    xk = _rand((50, 68), g)  # K % 8 != 0
    wk = _rand((72, 68), g)
    assert ops.linear_kernel(_arch(), "bfloat16", "bfloat16", 50, 72, 68) == "tiled"
    _assert_close(ops.linear(xk, wk), xk, wk, torch.bfloat16, "K % 8")


def test_linear_from_torch_side_stream():
    """Inputs written on a torch side stream, the op called inside torch.cuda.stream(side): the
    GEMM must run after the producer on that stream (the DLPack stream handshake)."""
    g = torch.Generator().manual_seed(11)
    x_cpu, w = _rand((256, 512), g, "cpu"), _rand((520, 512), g)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        a = torch.randn(2048, 2048, device="cuda")
        for _ in range(30):  # a queue the GPU needs a while to drain before x is written
            a = (a @ a).clamp_(-1, 1)
        x = torch.empty(256, 512, dtype=torch.bfloat16, device="cuda")
        x.copy_(x_cpu.cuda() + a[:1, :1].bfloat16() * 0)
        got = ops.linear(x, w)
        got_cpu = got.cpu()
    _assert_close(got_cpu, x_cpu, w.cpu(), torch.bfloat16, "side stream")


# ---- grouped_linear ------------------------------------------------------------------------------

def _offsets(sizes):
    return torch.tensor([0] + torch.tensor(sizes).cumsum(0).tolist(), dtype=torch.int32)


def _check_grouped(sizes, N, K, config, seed):
    g = torch.Generator().manual_seed(seed)
    E, R = len(sizes), sum(sizes)
    offsets = _offsets(sizes)
    x, w = _rand((R, K), g), _rand((E, N, K), g)
    assert ops.linear_kernel(_arch(), "bfloat16", "bfloat16", R, N, K, groups=E) == _expect(config)
    got = ops.grouped_linear(x, w, offsets.cuda())
    assert got.shape == (R, N)
    for e in range(E):
        a, b = int(offsets[e]), int(offsets[e + 1])
        if a < b:
            _assert_close(got[a:b], x[a:b], w[e], torch.bfloat16, f"group {e} of {E}")


@pytest.mark.parametrize("sizes,N,K,config", [
    # 16 experts, prefill-sized groups with empty ones, partial M / N / K tiles
    ([300, 0, 129, 1, 0, 64, 200, 0, 0, 77, 128, 256, 0, 3, 90, 500], 136, 200, "cutlass_grouped_128x128"),
    # 16 experts, few rows each: swap-AB (weights along the 64-row tile)
    ([2, 0, 1, 5, 0, 0, 3, 1, 0, 0, 2, 1, 0, 0, 1, 4], 1032, 264, "cutlass_grouped_swap_ab_64x32"),
    # 128 experts, Maverick-like: a few tokens each, most experts empty
    ([(e * 7) % 5 if e % 3 else 0 for e in range(128)], 520, 136, "cutlass_grouped_swap_ab_64x32"),
    # 128 experts with many rows each
    ([40 + (e * 37) % 90 if e % 5 else 0 for e in range(128)], 72, 64, "cutlass_grouped_128x128"),
    # > 65535 rows, most of them in one group
    ([66000, 0, 3000, 1000] + [0] * 12, 72, 64, "cutlass_grouped_128x128"),
])
def test_grouped_linear_bf16(sizes, N, K, config):
    _check_grouped(sizes, N, K, config, seed=len(sizes) * 1000 + N + K)


def test_grouped_linear_cached_setup_follows_new_offsets_and_shapes():
    """The initialized CUTLASS GEMM is cached per (device, groups, workspace address): calls with
    other row distributions and other N / K (same group count, so likely the same pooled workspace
    and the same cache entry) must still compute their own problems."""
    for seed, (sizes, N, K) in enumerate([([100, 0, 50, 200], 72, 64), ([0, 300, 1, 60], 136, 200),
                                          ([100, 0, 50, 200], 264, 520), ([5, 5, 5, 5], 72, 64)]):
        R = sum(sizes)
        config = "cutlass_grouped_swap_ab_64x32" if -(-R // min(R, 4)) <= 32 else "cutlass_grouped_128x128"
        _check_grouped(sizes, N, K, config, seed=seed)
