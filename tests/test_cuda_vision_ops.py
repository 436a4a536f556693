"""The vision encoder's CUDA kernels against their CPU twins (the CPU ops are held to transformers'
formulations in test_vision_ops.py), and the whole vision tower on CUDA against the CPU tower.

Exactness: add_bias, pixel_shuffle and patchify move or add exactly as the CPU does: bit for bit.
layer_norm, gelu and rope_table round at the CPU's points from fp32 values that differ by fp32
noise (a fused product, exp, summation order): test_vision_ops.py's tolerance. attention_dense sums
in another order: two of the fp32 units test_vision_ops.py derives (the CPU and the CUDA kernel
each within one of float64). Marked `cuda` (skipped without a GPU).
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
from llama4_native import ops
from test_vision_ops import DTYPE_NAME, DTYPES, as_layout, gen, tolerance

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (l4.cuda_available() and torch.cuda.is_available()),
        reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch",
    ),
]


def cuda_view(t: torch.Tensor) -> torch.Tensor:
    """The same values and the same strides on the GPU (a non-contiguous view stays one)."""
    base = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cuda")
    base.copy_(t)
    return base


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("n", [0, 1, 19, 577])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_layer_norm(dtype, n, layout):
    g = gen("cuda-ln", n)
    x = (torch.randn(n, 1408, generator=g) * 3 + 1).to(dtype)
    w = (1 + 0.3 * torch.randn(1408, generator=g)).to(dtype)
    b = (0.2 * torch.randn(1408, generator=g)).to(dtype)
    x_in = as_layout(x, layout)
    want = ops.layer_norm(x_in, w, b, 1e-5)
    got = ops.layer_norm(cuda_view(x_in), w.cuda(), b.cuda(), 1e-5)
    torch.testing.assert_close(got.cpu(), want, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_gelu(dtype):
    x = (torch.randn(19, 333, generator=gen("cuda-gelu")) * 4).to(dtype)
    torch.testing.assert_close(ops.gelu(x.cuda()).cpu(), ops.gelu(x), **tolerance(dtype))


@pytest.mark.parametrize("x_f32", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_add_bias(dtype, x_f32):
    g = gen("cuda-bias")
    x = torch.randn(19, 37, generator=g) * 5
    b = torch.randn(37, generator=g).to(dtype)
    x_in = x if x_f32 else x.to(dtype)
    out_dtype = DTYPE_NAME[dtype] if x_f32 else ""
    assert torch.equal(ops.add_bias(x_in.cuda(), b.cuda(), out_dtype).cpu(), ops.add_bias(x_in, b, out_dtype))


@pytest.mark.parametrize("layout", ["contiguous", "qkv_slice"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 88), (3, 19, 4, 88), (2, 577, 16, 88)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_rope_table(dtype, shape, layout):
    B, N, H, d = shape
    g = gen("cuda-rope", shape)
    angles = torch.rand(N, d // 2, generator=g) * 30
    cos, sin = torch.cos(angles), torch.sin(angles)
    if layout == "qkv_slice":
        buf = torch.randn(B * N, 3 * H * d, generator=g).to(dtype)
        x_in = buf[:, H * d:2 * H * d].view(B, N, H, d)
        x_gpu = buf.cuda()[:, H * d:2 * H * d].view(B, N, H, d)
    else:
        x_in = torch.randn(B, N, H, d, generator=g).to(dtype)
        x_gpu = x_in.cuda()
    torch.testing.assert_close(ops.rope_table(x_gpu, cos.cuda(), sin.cuda()).cpu(), ops.rope_table(x_in, cos, sin),
                               **tolerance(dtype))


@pytest.mark.parametrize("layout", ["contiguous", "qkv_slice"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 88), (2, 19, 3, 88), (3, 37, 2, 8), (1, 577, 16, 88)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_attention_dense(dtype, shape, layout):
    B, N, H, d = shape
    g = gen("cuda-attn", shape)
    q, k, v = ((torch.randn(B, N, H, d, generator=g) * s).to(dtype) for s in (2.0, 2.0, 1.0))
    scale = d ** -0.5
    if layout == "qkv_slice":
        fused = torch.cat([t.reshape(B * N, H * d) for t in (q, k, v)], dim=1)
        cpu_in = [fused[:, i * H * d:(i + 1) * H * d].view(B, N, H, d) for i in range(3)]
        fused_gpu = fused.cuda()
        gpu_in = [fused_gpu[:, i * H * d:(i + 1) * H * d].view(B, N, H, d) for i in range(3)]
    else:
        cpu_in, gpu_in = [q, k, v], [t.cuda() for t in (q, k, v)]
    want = ops.attention_dense(*cpu_in, scale)
    got = ops.attention_dense(*gpu_in, scale).cpu()
    S = (torch.einsum("bnhd,bmhd->bhnm", q.float().abs(), k.float().abs()) * scale).max().item()
    unit = torch.finfo(torch.float32).eps * v.float().abs().max().item() * (1 + S)
    rtol = 0.0 if dtype == torch.float32 else torch.finfo(dtype).eps
    torch.testing.assert_close(got, want, rtol=rtol, atol=2 * unit)


@pytest.mark.parametrize("factor,side,C,B", [(2, 4, 32, 3), (2, 24, 1408, 2), (3, 6, 5, 2)])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_NAME.get)
def test_pixel_shuffle(dtype, factor, side, C, B):
    x = torch.randn(B, side * side + 1, C, generator=gen("cuda-ps", side, C)).to(dtype)
    x_in = x[:, :-1]  # the encoder output without its trailing CLS: a strided view
    assert torch.equal(ops.pixel_shuffle(cuda_view(x_in), factor).cpu(), ops.pixel_shuffle(x_in, factor))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("out_dtype", DTYPES, ids=DTYPE_NAME.get)
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16], ids=DTYPE_NAME.get)
def test_patchify(in_dtype, out_dtype, layout):
    px = torch.randn(3, 3, 336, 336, generator=gen("cuda-px")).to(in_dtype)
    px_in = px.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else px
    want = ops.patchify(px_in, 14, DTYPE_NAME[out_dtype])
    assert torch.equal(ops.patchify(cuda_view(px_in), 14, DTYPE_NAME[out_dtype]).cpu(), want)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_vision_tower_on_cuda_matches_the_cpu_tower(tiny_checkpoint, dtype):
    """The whole tower (patch embedding, encoder layers, shuffle, adapter, projector) of a model
    loaded on CUDA against the same checkpoint on the CPU: fp32 within 1e-4 of the features' scale
    (linear and attention sum in other orders through 2 layers), bf16 within 2 bf16 ulps."""
    folder, _ = tiny_checkpoint("scout")
    pixels = torch.randn(5, 3, 56, 56, generator=gen("cuda-tower"))
    image = l4.ImageInput(pixel_values=pixels, aspect_ratio=(2, 2))
    cpu = l4.load(folder, dtype=dtype).encode_images([image])
    gpu = l4.load(folder, device="cuda", dtype=dtype).encode_images([image])
    assert gpu.device.type == "cuda" and gpu.shape == cpu.shape
    scale = cpu.float().abs().max().item()
    if dtype == "float32":
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4 * scale)
    else:
        torch.testing.assert_close(gpu.cpu().float(), cpu.float(), rtol=2 * 2.0 ** -8, atol=1e-3 * scale)


def test_image_prompt_on_cuda_gives_the_cpu_tokens(tiny_checkpoint):
    """Early fusion end to end on the GPU: the tower's rows fill the <|patch|> positions of the
    prompt (fp32: the same greedy tokens and logits within 1e-4 as the CPU engine)."""
    from test_vision_parity import TOKENS  # the tiny vocabulary's image tokens

    folder, _ = tiny_checkpoint("scout")
    cpu = l4.load(folder, dtype="float32")
    gpu = l4.load(folder, device="cuda", dtype="float32")
    cpu.image_tokens = gpu.image_tokens = TOKENS
    image = l4.ImageInput(pixel_values=torch.randn(5, 3, 56, 56, generator=gen("cuda-img")), aspect_ratio=(2, 2))
    prompt = [1, 7, TOKENS.image, 9, 11]
    want = cpu.generate(input_ids=prompt, images=[image], max_new_tokens=8, temperature=0.0, return_logits=True)
    got = gpu.generate(input_ids=prompt, images=[image], max_new_tokens=8, temperature=0.0, return_logits=True)
    assert got.token_ids == want.token_ids
    assert (got.logits.cpu() - want.logits).abs().max().item() <= 1e-4
