# The vision encoder's CPU ops and the early-fusion embedding against plain PyTorch formulations of
# what transformers 5.23 computes (nn.LayerNorm, nn.GELU, nn.Linear's bias, vision_apply_rotary_emb,
# sdpa, pixel_shuffle, nn.Unfold, embed_tokens + masked_scatter), over float32 / bfloat16 / float16,
# odd sizes (1, 19, 37 tokens; head_dim 88, the real model's), empty inputs and non-contiguous views.
# The CUDA early-fusion kernel is compared with the CPU op (marked `cuda`).
from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F

from llama4_native import _C, ops

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
LAYOUTS = ["contiguous", "transposed", "strided"]


def as_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as a non-contiguous view: column-major, or every other element of a buffer."""
    if layout == "contiguous":
        return t
    if layout == "transposed" and t.dim() >= 2:
        return t.transpose(0, -1).contiguous().transpose(0, -1)
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    view = wide[..., ::2]
    view.copy_(t)
    return view


def tolerance(dtype: torch.dtype, roundings: int = 1) -> dict:
    """Engine and reference round to `dtype` at the same points from fp32 values that differ only by
    fp32 noise (summation order, libm): a few fp32 ulps for float32 outputs, and one output ulp per
    rounding of the chain for bf16/f16 (the noise can flip a rounding). 1e-6 absolute for values
    that cancel to ~0."""
    if dtype == torch.float32:
        return dict(rtol=1e-6, atol=1e-6)
    return dict(rtol=roundings * torch.finfo(dtype).eps, atol=1e-6)


def gen(*key) -> torch.Generator:
    """A generator seeded from the key (crc32: the same in every process, unlike hash())."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


# ---- element-wise ops ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", [0, 1, 19, 111])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_layer_norm(dtype, n, layout):
    g = gen("ln", n)
    x = (torch.randn(n, 88, generator=g) * 3 + 1).to(dtype)
    w = (1 + 0.3 * torch.randn(88, generator=g)).to(dtype)
    b = (0.2 * torch.randn(88, generator=g)).to(dtype)
    expected = F.layer_norm(x.float(), (88,), w.float(), b.float(), 1e-5).to(dtype)  # nn.LayerNorm
    got = ops.layer_norm(as_layout(x, layout), as_layout(w, layout), b, 1e-5)
    torch.testing.assert_close(got, expected, **tolerance(dtype))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_gelu(dtype, layout):
    """Against the exact GELU (float64 erf). fp32 GELU kernels approximate erf (ours and torch's CPU
    kernel both use Abramowitz-Stegun 7.1.26, |error| <= 1.5e-7), so the fp32 error bound is
    0.5 |x| (1.5e-7 + 1 ulp of 1.0): 1.5e-7 * max|x| absolute (torch's own kernel is off by up to
    1.0e-6 on these inputs, ours by 4.5e-7)."""
    x = (torch.randn(19, 333, generator=gen("gelu")) * 4).to(dtype)
    exact = F.gelu(x.double()).to(dtype)
    atol = 1.5e-7 * x.float().abs().max().item()
    rtol = 1e-6 if dtype == torch.float32 else torch.finfo(dtype).eps
    torch.testing.assert_close(ops.gelu(as_layout(x, layout)), exact, rtol=rtol, atol=atol)


@pytest.mark.parametrize("x_f32", [False, True], ids=["x_same_dtype", "x_float32"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_add_bias(dtype, x_f32):
    """nn.Linear adds its bias before the single rounding: an fp32 product + bias rounds once."""
    g = gen("bias")
    x = torch.randn(19, 37, generator=g) * 5
    b = torch.randn(37, generator=g).to(dtype)
    x_in = x if x_f32 else x.to(dtype)
    expected = (x_in.float() + b.float()).to(dtype)
    got = ops.add_bias(as_layout(x_in, "strided"), b, DTYPE_NAME[dtype] if x_f32 else "")
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


# ---- 2D RoPE through an angle table --------------------------------------------------------------


def ref_vision_rope(x, angles):
    """vision_apply_rotary_emb: x.float() as complex pairs times freqs_ci = cos + i sin, type_as."""
    freqs_ci = torch.view_as_complex(torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1))
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs_ci[None, :, None, :]).flatten(3).type_as(x)


@pytest.mark.parametrize("layout", ["contiguous", "strided", "qkv_slice"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 88), (3, 19, 4, 88), (2, 37, 3, 8)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_rope_table(dtype, shape, layout):
    B, N, H, d = shape
    g = gen("rope", shape)
    angles = torch.rand(N, d // 2, generator=g) * 30
    angles[-1] = 0  # a CLS-like row: identity
    x = torch.randn(B, N, H, d, generator=g).to(dtype)
    if layout == "qkv_slice":  # q out of a fused [B*N, 3*H*d] projection, as the tower uses it
        buf = torch.randn(B * N, 3 * H * d, generator=g).to(dtype)
        buf[:, H * d:2 * H * d] = x.reshape(B * N, H * d)
        xin = buf[:, H * d:2 * H * d].view(B, N, H, d)
        assert B * N == 1 or not xin.is_contiguous()
    else:
        xin = as_layout(x, layout)
    got = ops.rope_table(xin, torch.cos(angles), torch.sin(angles))
    torch.testing.assert_close(got, ref_vision_rope(x, angles), **tolerance(dtype))
    assert torch.equal(got[:, -1], x[:, -1])


# ---- dense attention -----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["contiguous", "qkv_slice", "transposed"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 88), (2, 19, 3, 88), (3, 37, 2, 8), (1, 111, 2, 20)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_attention_dense(dtype, shape, layout):
    """Against sdpa (is_causal=False) in float64 on the same inputs, rounded once."""
    B, N, H, d = shape
    g = gen("attn", shape)
    q, k, v = ((torch.randn(B, N, H, d, generator=g) * s).to(dtype) for s in (2.0, 2.0, 1.0))
    scale = d ** -0.5
    ref = F.scaled_dot_product_attention(*(t.double().transpose(1, 2) for t in (q, k, v)),
                                         is_causal=False, scale=scale).transpose(1, 2).to(dtype)
    if layout == "qkv_slice":
        fused = torch.cat([t.reshape(B * N, H * d) for t in (q, k, v)], dim=1)
        q_, k_, v_ = (fused[:, i * H * d:(i + 1) * H * d].view(B, N, H, d) for i in range(3))
    else:
        q_, k_, v_ = (as_layout(t, layout) for t in (q, k, v))
    got = ops.attention_dense(q_, k_, v_, scale)
    # fp32 noise in attention is not relative to the output (a convex combination of v rows that
    # may cancel): a score error of ~eps * S, S = max_j scale * sum_x |q_x k_jx|, becomes a relative
    # error of the weights and so an absolute error of ~eps * S * max|v| in the output. One such
    # unit bounds it (measured: ours <= 0.21 units up to N = 577, torch's own fp32 sdpa <= 0.41).
    S = (torch.einsum("bnhd,bmhd->bhnm", q.float().abs(), k.float().abs()) * scale).max().item()
    unit = torch.finfo(torch.float32).eps * v.float().abs().max().item() * (1 + S)
    rtol = 0.0 if dtype == torch.float32 else torch.finfo(dtype).eps  # + one output ulp
    torch.testing.assert_close(got, ref, rtol=rtol, atol=unit)


def test_attention_dense_empty_and_one_key():
    q = torch.randn(0, 5, 2, 8)
    assert ops.attention_dense(q, q, q, 0.3).shape == (0, 5, 2, 8)
    q, k, v = torch.randn(3, 3, 1, 1, 4, generator=gen("one")).unbind(0)
    torch.testing.assert_close(ops.attention_dense(q, k, v, 0.5), v)  # softmax over one key is 1


# ---- pixel shuffle and patch extraction -----------------------------------------------------------


@pytest.mark.parametrize("factor,side,C,B", [(2, 4, 32, 3), (2, 24, 8, 1), (3, 6, 5, 2), (1, 3, 7, 1), (2, 6, 11, 0)])
@pytest.mark.parametrize("with_cls", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_pixel_shuffle(dtype, factor, side, C, B, with_cls):
    """Bit-identical to transformers' pixel_shuffle (ratio 1/factor), and equal to LLAMA4.md §3
    step 8: token (i, j) is [x(fi, fj), x(fi, fj+1), x(fi+1, fj), ...]. with_cls: the input is the
    encoder output with its trailing CLS token sliced off (a strided view)."""
    from transformers.models.llama4.modeling_llama4 import pixel_shuffle

    x = torch.randn(B, side * side + with_cls, C, generator=gen("ps", side, C)).to(dtype)
    x_in = x[:, :-1] if with_cls else x
    got = ops.pixel_shuffle(x_in, factor)
    so = side // factor
    if B == 0:  # transformers' view(-1) cannot infer the width of an empty batch
        assert got.shape == (0, so * so, C * factor * factor)
        return
    assert torch.equal(got, pixel_shuffle(x_in.contiguous(), 1.0 / factor))
    grid = x_in.reshape(B, side, side, C)
    for i, j in [(0, 0), (so - 1, 0), (0, so - 1), (so - 1, so - 1)]:
        parts = [grid[:, factor * i + n, factor * j + m] for n in range(factor) for m in range(factor)]
        assert torch.equal(got[:, i * so + j], torch.cat(parts, dim=-1))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("out_dtype", DTYPES, ids=DTYPE_NAME.get)
@pytest.mark.parametrize("shape,patch", [((2, 3, 56, 56), 14), ((1, 3, 42, 28), 14), ((3, 2, 5, 10), 5), ((0, 3, 14, 14), 14)], ids=str)
def test_patchify(shape, patch, out_dtype, layout):
    """Llama4UnfoldConvolution before its linear: nn.Unfold(kernel=p, stride=p), permute(0, 2, 1)."""
    px = torch.randn(*shape, generator=gen("px", shape))
    if layout == "channels_last":
        px_in = px.contiguous(memory_format=torch.channels_last)
    else:
        px_in = as_layout(px, layout)
    expected = torch.nn.Unfold(kernel_size=patch, stride=patch)(px).permute(0, 2, 1).to(out_dtype)
    got = ops.patchify(px_in, patch, DTYPE_NAME[out_dtype])
    assert got.dtype == out_dtype and torch.equal(got, expected)


# ---- early-fusion embedding ------------------------------------------------------------------------


def ref_fused(table, ids, features, image_id):
    """Llama4ForConditionalGeneration.forward: embed_tokens(ids).masked_scatter(ids == id, feats)."""
    emb = F.embedding(ids.long(), table)
    mask = (ids == image_id).unsqueeze(-1).expand_as(emb)
    return emb.masked_scatter(mask, features) if features is not None else emb


def fused_case(T, D, n_img, dtype, ids_dtype, seed=0):
    g = gen("fused", T, D, n_img, seed)
    V, image_id = 50, 7
    ids = torch.randint(0, V, (T,), generator=g)
    ids[ids == image_id] = 8
    where = torch.randperm(T, generator=g)[:n_img]
    ids[where] = image_id
    table = torch.randn(V, D, generator=g).to(dtype)
    feats = torch.randn(n_img, D, generator=g).to(dtype)
    return table, ids.to(ids_dtype), feats, image_id


@pytest.mark.parametrize("ids_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("T,n_img", [(1, 0), (1, 1), (19, 5), (111, 111), (111, 0), (0, 0)])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_embedding_fused_matches_masked_scatter(dtype, T, n_img, ids_dtype):
    table, ids, feats, image_id = fused_case(T, 88, n_img, dtype, ids_dtype)
    got = ops.embedding_fused(table, ids, feats, image_id)
    assert torch.equal(got, ref_fused(table, ids, feats, image_id))


def test_embedding_fused_batch_rows_are_consumed_in_order_across_sequences():
    """Two sequences laid out one after the other: the features of the first sequence's images come
    first (row-major over the batch's tokens, as masked_scatter fills a [batch, seq] mask)."""
    table, ids, feats, image_id = fused_case(40, 16, 12, torch.float32, torch.int64, seed=3)
    batch = ids.view(2, 20)
    ref = F.embedding(batch, table).masked_scatter((batch == image_id)[..., None].expand(2, 20, 16), feats)
    assert torch.equal(ops.embedding_fused(table, ids, feats, image_id), ref.reshape(40, 16))


def test_embedding_fused_non_contiguous_inputs():
    table, ids, feats, image_id = fused_case(37, 24, 9, torch.bfloat16, torch.int64, seed=1)
    got = ops.embedding_fused(as_layout(table, "transposed"), as_layout(ids, "strided"),
                              as_layout(feats, "strided"), image_id)
    assert torch.equal(got, ref_fused(table, ids, feats, image_id))


def test_embedding_fused_without_features_is_plain_embedding():
    table, ids, _, image_id = fused_case(19, 8, 3, torch.float32, torch.int64)
    assert torch.equal(ops.embedding_fused(table, ids, None, -1), F.embedding(ids, table))


@pytest.mark.parametrize("n_feats", [2, 4])
def test_embedding_fused_count_mismatch_is_a_value_error(n_feats):
    table, ids, _, image_id = fused_case(19, 8, 3, torch.float32, torch.int64)
    with pytest.raises(ValueError, match=r"3 image placeholder tokens \(id 7\).* has %d rows" % n_feats):
        ops.embedding_fused(table, ids, torch.zeros(n_feats, 8), image_id)


def test_embedding_fused_argument_errors():
    table, ids, feats, image_id = fused_case(19, 8, 3, torch.float32, torch.int64)
    with pytest.raises(TypeError, match="'image_features' must have the dtype of 'table'"):
        ops.embedding_fused(table, ids, feats.bfloat16(), image_id)
    with pytest.raises(ValueError, match=r"'image_features' must have shape \[R, 8\]"):
        ops.embedding_fused(table, ids, torch.zeros(3, 9), image_id)
    bad = ids.clone()
    pos = int((ids != image_id).nonzero()[0])
    bad[pos] = 50
    with pytest.raises(ValueError, match=f"token id 50 at position {pos} is outside the vocabulary"):
        ops.embedding_fused(table, bad, feats, image_id)


@pytest.mark.cuda
@pytest.mark.parametrize("ids_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
@pytest.mark.parametrize("T,D,n_img", [(1, 88, 1), (19, 3, 5), (111, 5120, 37), (20011, 64, 7001), (300, 1408, 0)])
def test_embedding_fused_cuda_matches_cpu(dtype, ids_dtype, T, D, n_img):
    """Bit-identical to the CPU op: one block owns a token range and counts the placeholders before
    it itself (T = 20011 spans many blocks); rows of 6 bytes (D = 3, bf16) take the 2-byte path."""
    table, ids, feats, image_id = fused_case(T, D, n_img, dtype, ids_dtype)
    expected = ops.embedding_fused(table, ids, feats, image_id)
    got = ops.embedding_fused(table.cuda(), ids.cuda(), feats.cuda(), image_id)
    assert got.is_cuda and torch.equal(got.cpu(), expected)


@pytest.mark.cuda
def test_embedding_fused_cuda_count_mismatch_is_a_value_error():
    table, ids, feats, image_id = fused_case(19, 8, 3, torch.float32, torch.int64)
    with pytest.raises(ValueError, match="has 2 rows"):
        ops.embedding_fused(table.cuda(), ids.cuda(), feats[:2].cuda(), image_id)


def test_vision_op_errors_name_the_argument():
    x = torch.randn(2, 5, 3, 8)
    cs = torch.zeros(5, 4)
    cases = [
        (lambda: ops.rope_table(x, cs, torch.zeros(5, 3)), ValueError, ["rope_table", "'sin'", "[5, 4]", "[5, 3]"]),
        (lambda: ops.rope_table(x, cs.double(), cs), TypeError, ["'cos'", "float64"]),
        (lambda: ops.attention_dense(x, x[:, :4], x, 1.0), ValueError, ["attention_dense", "'k'", "[2, 5, 3, 8]"]),
        (lambda: ops.layer_norm(x, torch.ones(7), torch.zeros(8)), ValueError, ["layer_norm", "'weight'", "[8]", "[7]"]),
        (lambda: ops.pixel_shuffle(torch.zeros(1, 15, 4), 2), ValueError, ["pixel_shuffle", "square grid", "15"]),
        (lambda: ops.pixel_shuffle(torch.zeros(1, 9, 4), 2), ValueError, ["3x3", "factor 2"]),
        (lambda: ops.patchify(torch.zeros(1, 3, 15, 14), 14), ValueError, ["patchify", "multiples of the patch size 14", "[1, 3, 15, 14]"]),
        (lambda: ops.add_bias(torch.zeros(2, 4), torch.zeros(4, dtype=torch.bfloat16)), TypeError, ["add_bias", "'bias'", "bfloat16"]),
    ]
    for call, exc, words in cases:
        with pytest.raises(exc) as e:
            call()
        assert all(w in str(e.value) for w in words), (str(e.value), words)
