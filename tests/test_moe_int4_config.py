"""The CUDA INT4 grouped GEMM's kernel choice (llama4/moe_int4_config.h), a pure host rule, checked
on the CPU against the rule as documented, written out here independently."""
from __future__ import annotations

import math

import pytest
import torch

from llama4_native import ops

GEMV_MAX_ROWS_PER_EXPERT = 8  # kMoeInt4GemvMaxRowsPerExpert
CUTLASS_GROUP_MULTIPLE = 64   # kMoeInt4CutlassGroupMultiple (CUTLASS's K tile)


def _documented_rule(rows, experts, n, group):
    if n % 8 or group % CUTLASS_GROUP_MULTIPLE:
        return "gemv"
    busy = max(1, min(rows, experts))
    return "cutlass" if math.ceil(rows / busy) > GEMV_MAX_ROWS_PER_EXPERT else "gemv"


@pytest.mark.parametrize("rows,experts,n,group,want", [
    (1, 16, 16384, 128, "gemv"),        # Scout decode, one token
    (64, 128, 16384, 128, "gemv"),      # Maverick decode batch: fewer rows than experts
    (8 * 16, 16, 5120, 128, "gemv"),    # 8 rows per expert: the last gemv size
    (8 * 16 + 1, 16, 5120, 128, "cutlass"),
    (4096, 16, 16384, 128, "cutlass"),  # prefill
    (4096, 16, 16384, 32, "gemv"),      # group 32: not a multiple of CUTLASS's K tile
    (4096, 16, 16384, 64, "cutlass"),
    (4096, 16, 200, 128, "cutlass"),    # N % 8 == 0: CUTLASS takes partial tiles
    (4096, 16, 100, 128, "gemv"),       # N % 8 != 0: TMA rows would be misaligned
    (0, 16, 5120, 128, "gemv"),
    (9, 1, 64, 128, "cutlass"),
])
def test_kernel_choice(rows, experts, n, group, want):
    assert _documented_rule(rows, experts, n, group) == want
    c = ops.moe_int4_gemm_config(rows, experts, n, group)
    assert c["name"] == want and c["kernel"] == want


def test_kernel_choice_matches_the_rule_on_a_grid():
    for rows in (0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 1000, 70000):
        for experts in (1, 2, 16, 128):
            for n, group in ((5120, 128), (200, 64), (100, 128), (4096, 32)):
                want = _documented_rule(rows, experts, n, group)
                assert ops.moe_int4_gemm_config(rows, experts, n, group)["name"] == want


@pytest.mark.parametrize("args", [(-1, 16, 64, 128), (4, 0, 64, 128), (4, 16, 0, 128), (4, 16, 64, 0)])
def test_bad_arguments(args):
    with pytest.raises(ValueError, match="moe_int4_gemm_config"):
        ops.moe_int4_gemm_config(*args)


def test_named_kernel_on_cpu_is_the_cpu_op():
    """On CPU tensors the kernel name is validated and otherwise ignored: the CPU op runs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 128, generator=g).to(torch.bfloat16)
    w = torch.randint(0, 256, (2, 64, 64), generator=g).to(torch.uint8)
    s = (torch.rand(2, 64, 1, generator=g) / 64).to(torch.bfloat16)
    off = torch.tensor([0, 2, 5], dtype=torch.int32)
    want = ops.moe_grouped_gemm_int4(x, w, s, off)
    for kernel in ("gemv", "cutlass"):
        assert torch.equal(ops.moe_grouped_gemm_int4_kernel(x, w, s, off, kernel), want)
    with pytest.raises(ValueError, match="'gemv' or 'cutlass'"):
        ops.moe_grouped_gemm_int4_kernel(x, w, s, off, "marlin")
