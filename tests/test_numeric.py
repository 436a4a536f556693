# Scalar dtype conversions of the engine (csrc/include/llama4/numeric.h, reached through
# llama4_native.ops.cast) against PyTorch's own casts, bit for bit, exhaustively where the input
# space is small (every bfloat16 / float16 pattern, every e4m3 code) and on a large set of float32
# patterns otherwise (uniformly random bits plus each target dtype's rounding ties and their
# neighbours, overflow thresholds, denormals, infinities and NaN payloads).
# NaN is compared with isnan only: torch itself does not keep NaN signs/payloads consistently (its
# vectorised and scalar paths differ), and no consumer of ours depends on them. Everything else must
# match in every bit, signed zeros included.
from __future__ import annotations

import pytest
import torch

from llama4_native import ops

E4M3 = torch.float8_e4m3fn
SIXTEEN_BIT = [torch.bfloat16, torch.float16]
NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16",
        E4M3: "float8_e4m3fn"}
INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32}

# pytorch/pytorch#178817 made torch's float32 -> float8_e4m3fn cast saturate (finite overflow and
# inf -> +-448) where it used to return NaN; the engine follows the current behaviour. On an older
# torch only the overflow region can disagree, so only that part is skipped there.
TORCH_SATURATES_E4M3 = bool(torch.tensor([1000.0, float("inf")]).to(E4M3).float().isfinite().all())


def ids(v) -> str:
    return NAME.get(v, str(v))


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(INT_OF_SIZE[t.element_size()])


def all_patterns(dtype: torch.dtype) -> torch.Tensor:
    """Every bit pattern of a 1- or 2-byte dtype, as that dtype."""
    size = torch.tensor([], dtype=dtype).element_size()
    return torch.arange(1 << (8 * size), dtype=torch.int32).to(INT_OF_SIZE[size]).view(dtype)


def e4m3_overflow(x: torch.Tensor) -> torch.Tensor:
    """Inputs whose e4m3 image depends on the saturation convention: |x| > 464, inf included."""
    xf = x.float()
    return (xf.abs() > 464) & ~xf.isnan()


def assert_same_bits(got: torch.Tensor, ref: torch.Tensor, inputs: torch.Tensor) -> None:
    assert got.dtype == ref.dtype and got.shape == ref.shape
    got_nan, ref_nan = got.float().isnan(), ref.float().isnan()  # float() is exact for all of these
    bad = (got_nan != ref_nan) | ((bits(got) != bits(ref)) & ~ref_nan)
    if bad.any():
        def hex_bits(t, i):
            return f"{bits(t)[i].item() & ((1 << 8 * t.element_size()) - 1):#x}"

        rows = [f"input {inputs[i].item()!r} ({hex_bits(inputs, i)}): "
                f"ours {hex_bits(got, i)}, torch {hex_bits(ref, i)}"
                for i in bad.nonzero().flatten()[:8]]
        raise AssertionError(f"{int(bad.sum())} of {bad.numel()} conversions differ:\n"
                             + "\n".join(rows))


def float32_patterns(dst: torch.dtype) -> torch.Tensor:
    """float32 inputs that exercise every decision of a conversion to `dst`."""
    gen = torch.Generator().manual_seed(0)
    random_bits = torch.randint(-(2**31), 2**31 - 1, (1 << 20,), dtype=torch.int32, generator=gen)
    # Ties: the midpoint of each pair of adjacent positive finite dst values (exact in float32: dst
    # has at most 11 significant bits), one float32 ulp either side, and the values themselves.
    # The last midpoint lies between the max and the next binade's first value (the overflow tie).
    vals = all_patterns(dst).double()
    vals = vals[vals.isfinite() & (vals >= 0)].unique()  # sorted; -0 folds into 0
    top = vals[-1] + (vals[-1] - vals[-2])
    mids = ((vals + torch.cat([vals[1:], top.view(1)])) / 2).float()
    near = torch.cat([vals.float(), mids, mids.nextafter(torch.tensor(float("inf"))),
                      mids.nextafter(torch.tensor(0.0))])
    specials = torch.tensor(
        [0x00000000, 0x00000001, 0x007FFFFF, 0x00800000,  # 0, denormals, smallest normal
         0x7F7FFFFF, 0x7F800000,                          # max, inf
         0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0x7FA00000, 0x7F812345],  # NaN payloads
        dtype=torch.int64).to(torch.int32).view(torch.float32)
    positive = torch.cat([near, specials])
    return torch.cat([random_bits.view(torch.float32), positive, -positive])


# ---- 16-bit patterns -> e4m3 --------------------------------------------------------------------

@pytest.mark.parametrize("via_float32", [True, False], ids=["via_float32", "direct"])
@pytest.mark.parametrize("src", SIXTEEN_BIT, ids=ids)
def test_16bit_patterns_to_e4m3(src, via_float32):
    """Every bf16/f16 value -> e4m3 (through float32 as the spec asks, and straight from 16 bits),
    outside the overflow region: rounding, subnormals (down to 2^-9 and the flush to 0), NaN."""
    x16 = all_patterns(src)
    x = x16.float() if via_float32 else x16
    keep = ~e4m3_overflow(x) | TORCH_SATURATES_E4M3
    ref = x16.float().to(E4M3)
    assert_same_bits(ops.cast(x, "float8_e4m3fn")[keep], ref[keep], x16[keep])


@pytest.mark.skipif(not TORCH_SATURATES_E4M3, reason="this torch predates the saturating e4m3 cast")
@pytest.mark.parametrize("src", SIXTEEN_BIT, ids=ids)
def test_16bit_overflow_to_e4m3_saturates_like_torch(src):
    """|x| > 464 and +-inf: torch gives +-448, and so must we (NaN only from NaN)."""
    x16 = all_patterns(src)
    over = e4m3_overflow(x16)
    assert int(over.sum()) > 1000  # the region is really exercised
    x = x16.float()[over]
    assert_same_bits(ops.cast(x, "float8_e4m3fn"), x.to(E4M3), x)


# ---- e4m3 codes and 16-bit patterns -> wider / other types ---------------------------------------

@pytest.mark.parametrize("dst", [torch.float32, torch.bfloat16, torch.float16], ids=ids)
def test_all_e4m3_codes(dst):
    """All 256 codes: normals, the 2^-9 subnormal steps, +-0, max +-448, the NaNs 0x7F / 0xFF."""
    codes = all_patterns(E4M3)
    assert_same_bits(ops.cast(codes, NAME[dst]), codes.to(dst), codes)


@pytest.mark.parametrize("dst", [torch.float32, torch.bfloat16, torch.float16], ids=ids)
@pytest.mark.parametrize("src", SIXTEEN_BIT, ids=ids)
def test_all_16bit_patterns(src, dst):
    """Every bf16/f16 pattern -> float32 (exact) and -> the other 16-bit type (one rounding)."""
    x = all_patterns(src)
    assert_same_bits(ops.cast(x, NAME[dst]), x.to(dst), x)


# ---- float32 patterns -> narrower types ----------------------------------------------------------

@pytest.mark.parametrize("dst", [torch.bfloat16, torch.float16, E4M3], ids=ids)
def test_float32_patterns(dst):
    """Round-to-nearest-even from float32, ties and overflow included, on ~1.2M patterns."""
    x = float32_patterns(dst)
    keep = torch.ones_like(x, dtype=torch.bool)
    if dst == E4M3:
        keep = ~e4m3_overflow(x) | TORCH_SATURATES_E4M3
    assert_same_bits(ops.cast(x, NAME[dst])[keep], x.to(dst)[keep], x[keep])


def test_float32_patterns_cover_ties():
    """Guard on the generator above: it holds thousands of exact bf16 ties, and on them our result
    is even (round half to even), whichever way that rounds."""
    x = float32_patterns(torch.bfloat16)
    ties = x[((bits(x) & 0xFFFF) == 0x8000) & x.isfinite()]
    assert ties.numel() > 10000
    assert bool(((bits(ops.cast(ties, "bfloat16")) & 1) == 0).all())
