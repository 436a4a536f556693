# CPU op parity: one table-driven harness runs every engine op against an independent plain-PyTorch
# formulation of what the reference computes (transformers 5.23's Llama 4 modules; FBGEMM's
# quantize_fp8_per_row), over float32 / bfloat16 / float16, odd sizes (1, 19, 111), empty inputs
# (0 rows) and non-contiguous inputs (transposed and strided views of the same values).
# The references are written from the HF / FBGEMM code, never from ours.
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

from llama4_native import ops

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
SIZES = [0, 1, 19, 111]  # rows (tokens); 0 is the empty input
LAYOUTS = ["contiguous", "transposed", "strided"]
E4M3 = torch.float8_e4m3fn
DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}

# ---- references -----------------------------------------------------------------------------------


def ref_rms_norm(x, weight, eps):
    # Llama4TextRMSNorm.forward (weight) / Llama4TextL2Norm.forward (QK-norm, no weight):
    # normalise in fp32, cast back to x's dtype, then multiply by the weight in that dtype.
    out = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).type_as(x)
    return out if weight is None else out * weight


def ref_rope(x, positions, inv_freq):
    # Llama4TextRotaryEmbedding.forward + apply_rotary_emb: adjacent pairs as complex numbers.
    # x: [T, H, d]; positions: [T] int; inv_freq: [d/2] float32.
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [T, d/2] fp32
    freqs_cis = torch.polar(torch.ones_like(freqs), freqs)
    xc = torch.view_as_complex(x.float().contiguous().reshape(*x.shape[:-1], x.shape[-1] // 2, 2))
    return torch.view_as_real(xc * freqs_cis[:, None, :]).flatten(2).type_as(x)


def ref_silu_gate(gate, up):
    # Llama4TextMLP: act_fn(gate_proj(x)) * up_proj(x), each op rounding to the activation dtype.
    return F.silu(gate) * up


def ref_quantize_fp8(x, scale_ub):
    # FBGEMM quantize_fp8_per_row, in plain torch. torch.div / torch.reciprocal rather than
    # `448.0 / amax`: Python's scalar/tensor division is reciprocal(amax) * 448 in torch, two
    # roundings, where FBGEMM's kernel (and ours) divides once.
    xf = x.float()
    amax = xf.abs().amax(dim=-1, keepdim=True)
    amax = amax.clamp(min=1e-12) if scale_ub is None else amax.clamp(min=1e-12, max=scale_ub)
    inv = torch.div(torch.tensor(448.0), amax)
    q = (xf * inv).clamp(-448.0, 448.0).to(E4M3)
    return q, torch.reciprocal(inv).squeeze(-1)


def ref_dequantize_fp8(q, scale, out_dtype):
    return (q.float() * scale[:, None]).to(out_dtype)


# ---- inputs -------------------------------------------------------------------------------------


def special_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows the FP8 quantizer must handle: all zeros (amax clamps to 1e-12), an inf (without
    scale_ub: scale inf and that element inf * 0 = NaN; with it: 448), a NaN (the row turns NaN)."""
    if x.shape[0] >= 19:
        x[0] = 0
        x[5, 3] = float("inf")
        x[9, 2] = float("nan")
    return x


def make_quantize(n, dtype, gen):
    rows = torch.logspace(-3, 3, max(n, 1))[:n, None]  # amax from 1e-3 to 1e3: some rows hit scale_ub
    return dict(x=special_rows(torch.randn(n, 333, generator=gen) * rows).to(dtype))


def make_dequantize(n, dtype, gen):
    # All codes, NaNs included; `dtype` is the output dtype here.
    codes = torch.randint(0, 256, (n, 77), generator=gen, dtype=torch.int32).to(torch.uint8)
    return dict(q=codes.view(E4M3), scale=torch.logspace(-4, 2, max(n, 1))[:n], out_dtype=dtype)


def make_rope(n, dtype, gen, pos_dtype=torch.int64):
    d = 128
    inv_freq = 1.0 / (5e5 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    return dict(x=torch.randn(n, 3, d, generator=gen).to(dtype),
                positions=torch.randint(0, 20000, (n,), generator=gen).to(pos_dtype),
                inv_freq=inv_freq)


@dataclass
class Case:
    name: str
    make: Callable  # (rows, dtype, generator) -> inputs (tensors get the layout, others pass)
    ours: Callable  # (**inputs) -> output(s)
    ref: Callable   # (**inputs) -> output(s)
    exact: bool = False  # compare bits (NaN by isnan) instead of within tolerance
    roundings: int = 1   # dtype roundings in the reference's chain (see tolerance())


CASES = [
    Case("rms_norm",
         lambda n, dt, g: dict(x=(torch.randn(n, 111, generator=g) * 3).to(dt),
                               weight=(1 + 0.5 * torch.randn(111, generator=g)).to(dt)),
         lambda x, weight: ops.rms_norm(x, weight, 1e-5),
         lambda x, weight: ref_rms_norm(x, weight, 1e-5), roundings=2),
    Case("qk_norm",  # [tokens, heads, head_dim], normalised over head_dim without weight
         lambda n, dt, g: dict(x=(torch.randn(n, 5, 64, generator=g) * 2).to(dt)),
         lambda x: ops.qk_norm(x, 1e-6),
         lambda x: ref_rms_norm(x, None, 1e-6)),
    Case("rope", make_rope, ops.rope, ref_rope),
    Case("rope_int32_positions", lambda n, dt, g: make_rope(n, dt, g, torch.int32), ops.rope, ref_rope),
    Case("silu_gate",
         lambda n, dt, g: dict(gate=(torch.randn(n, 300, generator=g) * 4).to(dt),
                               up=torch.randn(n, 300, generator=g).to(dt)),
         ops.silu_gate, ref_silu_gate, roundings=2),
    Case("quantize_fp8", make_quantize,
         lambda x: ops.quantize_fp8_rowwise(x), lambda x: ref_quantize_fp8(x, None), exact=True),
    Case("quantize_fp8_scale_ub", make_quantize,  # 1200: Meta's activation recipe
         lambda x: ops.quantize_fp8_rowwise(x, scale_ub=1200.0),
         lambda x: ref_quantize_fp8(x, 1200.0), exact=True),
    Case("dequantize_fp8", make_dequantize,
         lambda q, scale, out_dtype: ops.dequantize_fp8_rowwise(q, scale, DTYPE_NAME[out_dtype]),
         ref_dequantize_fp8, exact=True),
]


# ---- layouts and comparison ------------------------------------------------------------------------


def as_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values in a non-contiguous view: column-major ('transposed') or every other
    element of a twice-as-wide buffer ('strided')."""
    if layout == "contiguous":
        return t
    if layout == "transposed" and t.dim() >= 2:
        return t.transpose(0, -1).contiguous().transpose(0, -1)
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    view = wide[..., ::2]
    view.copy_(t)
    return view


def tolerance(dtype: torch.dtype, roundings: int) -> dict:
    """Engine and reference do the same fp32 math and round to `dtype` at the same points; they can
    only differ by fp32 noise: summation order (our sequential sum vs torch's blocked reduction),
    libm (glibc expf/cosf/sinf vs torch's SLEEF) and FMA contraction, a few fp32 ulps each.
    - float32 output: that noise is all: ~8 ulps relative (1e-6), and 1e-6 absolute for RoPE's
      a*cos - b*sin that cancels to ~0 on the O(1) inputs used here.
    - bfloat16/float16 output: the noise can flip each rounding of the chain once, one output ulp
      (finfo.eps relative, an upper bound on an ulp) per rounding: 1 for a single cast (QK-norm,
      RoPE), 2 where the rounded value is multiplied and rounded again (RMSNorm's weight, SiLU * up).
      Plus the same 1e-6 absolute for the fp32 noise around zero."""
    if dtype == torch.float32:
        return dict(rtol=1e-6, atol=1e-6)
    return dict(rtol=roundings * torch.finfo(dtype).eps, atol=1e-6)


def assert_exact(got: torch.Tensor, ref: torch.Tensor) -> None:
    """Same dtype and shape, same NaN positions, same bits elsewhere."""
    assert got.dtype == ref.dtype and got.shape == ref.shape
    got_nan, ref_nan = got.float().isnan(), ref.float().isnan()
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[got.element_size()]
    bad = (got_nan != ref_nan) | ((got.view(ints) != ref.view(ints)) & ~ref_nan)
    if bad.any():
        first = bad.nonzero()[0].tolist()
        raise AssertionError(f"{int(bad.sum())} of {bad.numel()} differ, first at {first}")


def run_case(case: Case, n: int, dtype: torch.dtype, layout: str):
    gen = torch.Generator().manual_seed(1000 * n + DTYPES.index(dtype))
    inputs = case.make(n, dtype, gen)
    expected = case.ref(**inputs)
    laid_out = {k: as_layout(v, layout) if isinstance(v, torch.Tensor) else v
                for k, v in inputs.items()}
    return case.ours(**laid_out), expected


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"rows{n}")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_op_parity(case, dtype, n, layout):
    got, expected = run_case(case, n, dtype, layout)
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert isinstance(g, torch.Tensor) and g.is_contiguous()
        if case.exact:
            assert_exact(g, e)
        else:
            assert g.dtype == e.dtype and g.shape == e.shape
            torch.testing.assert_close(g, e, **tolerance(dtype, case.roundings))


def test_layouts_are_really_non_contiguous():
    """Guard on as_layout: the engine's copy-to-contiguous path is what the layouts exercise."""
    t = torch.randn(19, 111)
    for layout in ["transposed", "strided"]:
        v = as_layout(t, layout)
        assert not v.is_contiguous() and torch.equal(v, t)


def test_special_rows_are_exercised():
    """Guard: the quantize cases do contain a zero row, an inf and a NaN, and rows above scale_ub."""
    x = make_quantize(111, torch.float16, torch.Generator().manual_seed(0))["x"]
    assert (x[0] == 0).all() and x[5].isinf().any() and x[9].isnan().any()
    assert int((x.float().abs().amax(-1) > 1200).sum()) >= 5


# ---- RoPE frequencies vs transformers' own init functions ---------------------------------------

SCOUT = dict(rope_type="llama3", rope_theta=5e5, factor=16.0, low_freq_factor=1.0,
             high_freq_factor=1.0, original_max_position_embeddings=8192)
ROPE_PARAMS = {
    "default": (128, dict(rope_type="default", rope_theta=5e5)),
    # Scout: low == high, where transformers divides by zero inside a masked torch.where.
    "llama3_scout": (128, SCOUT),
    # low < high: a smoothing band between wavelengths 8192/4 and 8192 (Llama 3.1's parameters).
    "llama3_band": (128, dict(SCOUT, factor=8.0, high_freq_factor=4.0)),
    "llama3_band_theta1e4_hd64": (64, dict(SCOUT, rope_theta=1e4, factor=8.0, high_freq_factor=4.0)),
    # Bounds that are not powers of two (1000/3), and more of the table inside the band.
    "llama3_band_odd_bounds": (128, dict(SCOUT, factor=32.0, high_freq_factor=3.0,
                                         original_max_position_embeddings=1000)),
}


def transformers_inv_freq(head_dim: int, params: dict) -> torch.Tensor:
    from transformers import Llama4TextConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama4.modeling_llama4 import Llama4TextRotaryEmbedding

    config = Llama4TextConfig(head_dim=head_dim, hidden_size=4 * head_dim, num_attention_heads=4,
                              rope_parameters=dict(params))
    if params["rope_type"] == "default":  # transformers 5 keeps "default" on the model class
        inv_freq, _ = Llama4TextRotaryEmbedding.compute_default_rope_parameters(config)
    else:
        inv_freq, _ = ROPE_INIT_FUNCTIONS[params["rope_type"]](config)
    return inv_freq


@pytest.mark.filterwarnings("ignore")  # transformers warns that Scout's low == high is unusual
@pytest.mark.parametrize("name", list(ROPE_PARAMS))
def test_rope_inv_freq_matches_transformers(name):
    """Bit-identical fp32 table: it is computed once per model and feeds every RoPE layer."""
    head_dim, params = ROPE_PARAMS[name]
    expected = transformers_inv_freq(head_dim, params)
    got = torch.tensor(ops.rope_inv_freq(head_dim, params["rope_theta"], params), dtype=torch.float32)
    assert got.shape == expected.shape == (head_dim // 2,)
    if params["rope_type"] == "llama3":  # the case really rescales something
        default = 1.0 / (params["rope_theta"] ** (torch.arange(0, head_dim, 2).float() / head_dim))
        assert not torch.equal(got, default)
    bad = (got.view(torch.int32) != expected.view(torch.int32)).nonzero().flatten().tolist()
    assert not bad, [(j, got[j].item(), expected[j].item()) for j in bad]


def test_rope_inv_freq_band_is_exercised():
    """Guard: the smoothing-band cases put several frequencies strictly inside the band."""
    import math
    for name in ["llama3_band", "llama3_band_odd_bounds"]:
        head_dim, p = ROPE_PARAMS[name]
        inv = 1.0 / (p["rope_theta"] ** (torch.arange(0, head_dim, 2).double() / head_dim))
        wavelen = 2 * math.pi / inv
        L = p["original_max_position_embeddings"]
        inside = (wavelen > L / p["high_freq_factor"]) & (wavelen < L / p["low_freq_factor"])
        assert int(inside.sum()) >= 3, name
