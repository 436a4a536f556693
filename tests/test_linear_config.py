"""The kernel choice of the CUDA linear / grouped_linear ops (llama4/linear_config.h): a pure host
rule, checked here on the CPU against the documented thresholds and TMA conditions."""
from __future__ import annotations

import pytest

from llama4_native import ops

BF, F32 = "bfloat16", "float32"


def kernel(m, n=5120, k=5120, *, arch=90, x=BF, out=BF, groups=0, ldx=None, aligned16=True):
    return ops.linear_kernel(arch, x, out, m, n, k, groups=groups, ldx=ldx, aligned16=aligned16)


@pytest.mark.parametrize("arch", [80, 89, 90, 100])
@pytest.mark.parametrize("m", [0, 1, 7, 16])
def test_few_rows_take_gemv_everywhere(arch, m):
    for x, out in ((BF, BF), (BF, F32), (F32, F32)):
        assert kernel(m, arch=arch, x=x, out=out) == "gemv"
        assert kernel(m, arch=arch, x=x, out=out, groups=16) == "gemv"


@pytest.mark.parametrize("m,want", [(17, "cutlass_64x64"), (64, "cutlass_64x64"), (65, "cutlass_64x128"),
                                    (128, "cutlass_64x128"), (129, "cutlass_128x128"),
                                    (2048, "cutlass_128x128"), (70000, "cutlass_128x128")])
def test_dense_tiles_by_rows(m, want):
    assert kernel(m) == want


@pytest.mark.parametrize("m,want", [(17, "cutlass_64x64"), (64, "cutlass_64x64"), (65, "cutlass_128x128"),
                                    (128, "cutlass_128x128"), (4096, "cutlass_128x128")])
def test_fp32_out_has_no_medium_tile(m, want):
    assert kernel(m, n=16, out=F32) == want  # the router: 16 experts, fp32 logits


def test_tma_conditions_fall_back_to_tiled():
    assert kernel(256) == "cutlass_128x128"
    assert kernel(256, arch=80) == "tiled"        # no wgmma / TMA
    assert kernel(256, arch=100) == "tiled"       # sm_90a SASS runs on 9.0 only
    assert kernel(256, x=F32, out=F32) == "tiled"
    assert kernel(256, aligned16=False) == "tiled"
    assert kernel(256, k=5124) == "tiled"         # row stride of w not a multiple of 16 bytes
    assert kernel(256, k=128, ldx=132) == "tiled"  # row stride of x
    assert kernel(256, k=128, ldx=136) == "cutlass_128x128"
    assert kernel(256, n=5124) == "tiled"         # bf16 out rows need 8 elements
    assert kernel(256, n=5124, out=F32) == "cutlass_128x128"  # fp32 out rows need 4
    assert kernel(256, n=5122, out=F32) == "tiled"
    assert kernel(2 ** 31, n=8, k=8) == "tiled"   # CUTLASS's int32 problem shape
    assert kernel(256, n=2 ** 31, k=8) == "tiled"


def test_grouped_by_rows_per_expert():
    # ceil(rows / min(rows, groups)) <= 32 -> swap-AB, else the 128x128 tile (the FP8 GEMM's rule)
    assert kernel(17, groups=16) == "cutlass_grouped_swap_ab_64x32"
    assert kernel(512, groups=16) == "cutlass_grouped_swap_ab_64x32"
    assert kernel(513, groups=16) == "cutlass_grouped_128x128"
    assert kernel(2048, groups=16) == "cutlass_grouped_128x128"
    assert kernel(2048, groups=128) == "cutlass_grouped_swap_ab_64x32"
    assert kernel(4097, groups=128) == "cutlass_grouped_128x128"
    assert kernel(40, groups=1) == "cutlass_grouped_128x128"
    assert kernel(32, groups=1) == "cutlass_grouped_swap_ab_64x32"
    assert ops.moe_gemm_config(512, 16)["swap_ab"] and not ops.moe_gemm_config(513, 16)["swap_ab"]


def test_grouped_conditions_fall_back_to_tiled():
    assert kernel(2048, groups=16, out=F32) == "tiled"  # grouped CUTLASS writes bf16 only
    assert kernel(2048, groups=16, arch=80) == "tiled"
    assert kernel(2048, groups=16, x=F32, out=F32) == "tiled"
    assert kernel(2048, n=72, k=68, groups=16) == "tiled"


def test_negative_sizes_are_value_errors():
    with pytest.raises(ValueError, match="linear_kernel"):
        kernel(-1)
    with pytest.raises(ValueError, match="linear_kernel"):
        kernel(20, groups=-2)
    with pytest.raises(ValueError, match="dtype"):
        kernel(20, x="int8")
