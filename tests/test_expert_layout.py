"""Routed experts read in Hugging Face's fused layout (ops.expert_layout KN): grouped_linear over
w_hf [E, K, N] viewed as [E, N, K] (w_hf.transpose(1, 2)), as the loader hands the experts over
from the memory map, against float64 torch products of the same values, against the row-major
(NK) path, and decode (the GEMV, <= 8 rows) against prefill (the packed GEMM) bit for bit.

Bounds (derived, not tuned): every output is an fp32 sum of K products; bf16 x bf16 products are
exact in fp32 and an fp32 product rounds once, so a sum in any order is within
gamma(K + 1) * sum_k |x_k w_k| of the exact one, gamma(n) = n u / (1 - n u), u = 2^-24. A bf16
output adds one rounding to nearest: 2^-8 of its magnitude (bf16 keeps 8 significant bits). Two
orders of the same sum (KN vs NK) differ by at most twice the first term plus both roundings.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
import torch

from llama4_native import _C, ops

U = 2.0 ** -24
GEMV_MAX_ROWS = 8  # cpu/gemv.h kGemvMaxRows: more rows take the packed GEMM (bf16) or sgemm (fp32)

# (E, N, K, rows per expert): E = 1; odd N and K; K past one GEMM K block (256) and not a
# multiple of it; N not a multiple of 16/32/64 columns (the GEMV units and the GEMM panels);
# groups of 0 rows, 1 .. 8 rows (decode) and more (prefill).
SHAPES = [
    (1, 37, 29, [3]),
    (1, 64, 64, [1]),
    (3, 33, 300, [0, 8, 2]),
    (2, 130, 513, [13, 1]),
    (4, 97, 257, [5, 0, 21, 7]),
    (2, 200, 70, [9, 64]),
]


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


def _case(E, N, K, sizes, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    w_hf = torch.randn(E, K, N, generator=g).to(dtype)  # x @ W layout, as the checkpoint stores it
    x = torch.randn(sum(sizes), K, generator=g).to(dtype)
    offsets = torch.tensor([0] + torch.tensor(sizes).cumsum(0).tolist(), dtype=torch.int32)
    return x, w_hf, offsets


def _groups(offsets):
    return [(e, int(offsets[e]), int(offsets[e + 1])) for e in range(len(offsets) - 1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("E,N,K,sizes", SHAPES)
def test_kn_experts_match_float64(E, N, K, sizes, dtype):
    x, w_hf, offsets = _case(E, N, K, sizes, dtype)
    w = w_hf.transpose(1, 2)  # [E, N, K], strides [K N, 1, N]: no copy
    assert _C.expert_layout(w) == "kn"
    out = ops.grouped_linear(x, w, offsets)
    nk = ops.grouped_linear(x, w.contiguous(), offsets)  # the row-major path, same values
    assert out.shape == (x.shape[0], N) and out.dtype == dtype
    rounding = 0.0 if dtype == torch.float32 else 2.0 ** -8
    for e, a, b in _groups(offsets):
        if a == b:
            continue
        xd, wd = x[a:b].double(), w_hf[e].double()
        ref = xd @ wd
        mag = xd.abs() @ wd.abs()
        err = (out[a:b].double() - ref).abs()
        assert (err <= _gamma(K + 1) * mag + rounding * ref.abs() + 1e-300).all(), (e, err.max().item())
        diff = (out[a:b].double() - nk[a:b].double()).abs()
        two = 2 * _gamma(K + 1) * mag + rounding * (out[a:b].double().abs() + nk[a:b].double().abs())
        assert (diff <= two).all(), (e, diff.max().item())


@pytest.mark.skipif(not _C.cpu_has_avx512_bf16(), reason="the GEMV/GEMM bit identity is the AVX512-BF16 kernels'")
@pytest.mark.parametrize("K", [29, 256, 300, 513])
def test_kn_decode_rows_equal_prefill_rows_bf16(K):
    """The KN GEMV and the packed GEMM (pack_kn) sum each output as one chain over K pairs
    (vdpbf16ps): a token's expert output has the same bits whether its group holds 3 rows (decode)
    or 20 (prefill), for fp32 and bf16 outputs."""
    N = 75
    x, w_hf, _ = _case(1, N, K, [20], torch.bfloat16, seed=K)
    w = w_hf.transpose(1, 2)
    few = ops.grouped_linear(x[:3].contiguous(), w, torch.tensor([0, 3], dtype=torch.int32))
    many = ops.grouped_linear(x, w, torch.tensor([0, 20], dtype=torch.int32))
    assert torch.equal(few, many[:3])
    # one row alone, and the rows of a batch of 8 (the largest GEMV), against the GEMM
    for rows in (1, GEMV_MAX_ROWS):
        got = ops.grouped_linear(x[:rows].contiguous(), w, torch.tensor([0, rows], dtype=torch.int32))
        assert torch.equal(got, many[:rows]), rows


def test_kn_rows_past_the_last_group_are_left_alone():
    """Expert parallelism (moe_localize): rows from offsets[E] on are other ranks' and stay as they are."""
    x, w_hf, _ = _case(2, 24, 40, [5], torch.float32)
    out = ops.grouped_linear(x, w_hf.transpose(1, 2), torch.tensor([0, 2, 3], dtype=torch.int32))
    torch.testing.assert_close(out[:2], x[:2] @ w_hf[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[2:3], x[2:3] @ w_hf[1], rtol=1e-5, atol=1e-5)


def test_expert_layout_classifies_strides():
    w = torch.randn(3, 5, 7)
    assert _C.expert_layout(w) == "nk"
    assert _C.expert_layout(torch.randn(3, 7, 5).transpose(1, 2)) == "kn"
    assert _C.expert_layout(torch.randn(6, 7, 5).transpose(1, 2)[::2]) == "kn"  # experts spaced apart
    assert _C.expert_layout(torch.randn(5, 3, 7).transpose(0, 1)) == "other"
    assert _C.expert_layout(torch.randn(3, 7, 10)[:, :, ::2]) == "other"


def test_other_strides_are_refused():
    x = torch.randn(4, 7)
    w = torch.randn(5, 2, 7).transpose(0, 1)  # [2, 5, 7], neither layout
    with pytest.raises(ValueError, match="'w' must be contiguous or each expert a transposed row-major"):
        ops.grouped_linear(x, w, torch.tensor([0, 2, 4], dtype=torch.int32))


def test_kn_portable_path_without_avx512_bf16():
    """The AVX2 fallbacks (gather-eight GEMV, widened columns + sgemm without the transpose) for
    CPUs without AVX512-BF16, forced in a subprocess; the same checks as above."""
    import llama4_native

    code = (
        "import torch, sys; sys.path.insert(0, {tests!r}); import test_expert_layout as t\n"
        "for s in t.SHAPES:\n"
        "    for d in (torch.float32, torch.bfloat16): t.test_kn_experts_match_float64(*s, d)\n"
        "print('ok')\n").format(tests=os.path.dirname(__file__))
    env = dict(os.environ, LLAMA4_NO_AVX512_BF16="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(llama4_native.__file__)))
    # From a neutral folder: the source tree would shadow the installed package.
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def _upload_case():
    g = torch.Generator().manual_seed(5)
    w_hf = torch.randn(3, 40, 24, generator=g).to(torch.bfloat16)
    return {"layers.0.moe.gate_up": w_hf.transpose(1, 2), "norm": torch.randn(8, generator=g)}


def test_upload_experts_makes_them_row_major():
    """The GPU kernels read row-major experts: engine._upload_experts transposes a KN view expert by
    expert into a contiguous [E, N, K] (checked here on the CPU; the CUDA run is below)."""
    from llama4_native.engine import _upload_experts

    w = _upload_case()["layers.0.moe.gate_up"]
    out = _upload_experts(w, "cpu")
    assert out.is_contiguous() and _C.expert_layout(out) == "nk" and torch.equal(out, w)


@pytest.mark.cuda
def test_upload_to_cuda_gives_row_major_experts():
    from llama4_native.engine import _upload

    weights = _upload_case()
    out = _upload(weights, "cuda:0")
    for k, v in weights.items():
        assert out[k].is_cuda and out[k].is_contiguous() and torch.equal(out[k].cpu(), v), k
