"""Plain-torch references for the INT4 (W4A16) expert weights (llama4/moe_int4.h): packing,
the quantization rule, dequantization, and the error bounds the kernels are held to."""
from __future__ import annotations

import torch

U = 2.0 ** -24  # fp32 unit roundoff
BF16_U = 2.0 ** -8  # unit roundoff of bf16 (8 significant bits): |bf16(y) - y| <= 2^-8 |y|


def pack(q: torch.Tensor) -> torch.Tensor:
    """int values in [-8, 7] [..., K] -> uint8 [..., K/2]: k = 2j low nibble, 2j + 1 high nibble."""
    n = (q.to(torch.int32) & 0xF)
    return (n[..., 0::2] | (n[..., 1::2] << 4)).to(torch.uint8)


def unpack(w: torch.Tensor) -> torch.Tensor:
    """uint8 [..., K/2] -> int32 [..., K] signed int4 values."""
    b = w.to(torch.int32)
    lo, hi = b & 0xF, (b >> 4) & 0xF
    q = torch.stack([lo, hi], dim=-1).flatten(-2)
    return torch.where(q >= 8, q - 16, q)


def dequantize(w: torch.Tensor, scale: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """W[..., n, k] = q * scale[..., n, k // G], exactly (float64)."""
    q = unpack(w).to(torch.float64)
    G = q.shape[-1] // scale.shape[-1]
    return (q * scale.to(torch.float64).repeat_interleave(G, dim=-1)).to(dtype)


def quantize(w: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The header's rule in torch: scale = bf16(amax / 7) (fp32 quotient), q = clamp(rne(w / scale))."""
    wf = w.to(torch.float32)
    g = wf.unflatten(-1, (wf.shape[-1] // group, group))
    amax = g.abs().amax(dim=-1)
    scale = (amax / torch.tensor(7.0, dtype=torch.float32)).to(torch.bfloat16)
    sf = scale.to(torch.float32).unsqueeze(-1)
    q = torch.where(sf == 0, torch.zeros_like(g), torch.round(g / torch.where(sf == 0, torch.ones_like(sf), sf)))
    q = q.clamp(-8, 7).flatten(-2).to(torch.int32)
    return pack(q), scale


def grouped_reference(x, w, scale, offsets, bf16_weights: bool = False):
    """float64 out [R, N] over rows < off[E] (rows beyond stay 0) and sum_k |x| |W| for the bounds.
    bf16_weights: compressed-tensors' reference, each dequantized weight rounded to bf16 first."""
    E, N = w.shape[0], w.shape[1]
    R = x.shape[0]
    W = dequantize(w, scale)
    if bf16_weights:
        W = W.to(torch.bfloat16).to(torch.float64)
    xd = x.to(torch.float64)
    out = torch.zeros(R, N, dtype=torch.float64)
    mag = torch.zeros(R, N, dtype=torch.float64)
    off = offsets.tolist()
    for e in range(E):
        a, b = off[e], off[e + 1]
        out[a:b] = xd[a:b] @ W[e].T
        mag[a:b] = xd[a:b].abs() @ W[e].abs().T
    return out, mag


def fp32_sum_bound(K: int, G: int) -> float:
    """gamma_n for the longest chain of fp32 roundings any product passes through in either CPU
    kernel: <= G additions inside its group (the portable kernel sums a group in k order; the
    AVX-512 one sums G/16 per lane, then adds two chains), one scale multiply (or FMA), K/G
    additions over the groups, 4 levels of the 16-lane reduction, plus margin for a fused
    two-product step: n = G + K/G + 8."""
    n = G + K // G + 8
    return n * U / (1 - n * U)
