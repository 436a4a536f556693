"""Plain-PyTorch formulations of the FP8 MoE (llama4/moe_fp8.h), independent of the engine: torch
float8_e4m3fn casts, a float64 matmul and the epilogue's roundings. They reproduce the engine's CPU
emulation bit for bit (not a test file).

Why float64 and not an fp32 matmul: every e4m3 x e4m3 product and every partial sum of at most 65536
of them is exact in double (multiples of 2^-18 below 2^34), so `a.double() @ w.double().T` is the
exact sum whatever order BLAS adds in, and `.float()` rounds it once. An fp32 matmul rounds its
partial sums in an order that differs between BLAS builds (and from any GPU), so two correct fp32
implementations disagree in the last bits; test_moe_fp8.py prints how often that reaches bf16.
"""
from __future__ import annotations

import torch

E4M3_MAX = 448.0
AMAX_EPS = 1e-12


def quantize_rows(x: torch.Tensor, scale_ub: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """FBGEMM quantize_fp8_per_row in torch: amax per row (clamped to [1e-12, scale_ub]), inv = 448 /
    amax, q = e4m3(clamp(x * inv, -448, 448)), scale = 1 / inv (all fp32)."""
    xf = x.float()
    amax = xf.abs().amax(dim=-1).clamp(min=AMAX_EPS)
    if scale_ub:
        amax = amax.clamp(max=scale_ub)
    inv = torch.full_like(amax, E4M3_MAX) / amax
    q = (xf * inv[:, None]).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, torch.ones_like(inv) / inv


def grouped_gemm(a, a_scale, w, w_scale, offsets) -> torch.Tensor:
    """bf16 [R, N]: rows of expert e = bf16((float(exact sum) * w_scale[e]) * a_scale[rows])."""
    out = torch.empty(a.shape[0], w.shape[1], dtype=torch.bfloat16)
    for e in range(w.shape[0]):
        r0, r1 = int(offsets[e]), int(offsets[e + 1])
        acc = (a[r0:r1].double() @ w[e].double().T).float()
        out[r0:r1] = ((acc * w_scale[e]) * a_scale[r0:r1, None]).to(torch.bfloat16)
    return out


def sigmoid_f32(v: torch.Tensor) -> torch.Tensor:
    """1 / (1 + exp(-v)) in fp32 with a correctly rounded exp (what exp_f32 computes)."""
    e = torch.exp(-v.double()).float()
    return torch.ones_like(v) / (torch.ones_like(v) + e)


def silu_gate_bf16(gu: torch.Tensor) -> torch.Tensor:
    """bf16(bf16(silu(g)) * u) for gu [R, 2I] = [gate | up] (bf16), with exp rounded correctly."""
    i = gu.shape[1] // 2
    g, u = gu[:, :i].float(), gu[:, i:].float()
    act = (g / (1 + torch.exp(-g.double()).float())).to(torch.bfloat16).float()
    return (act * u).to(torch.bfloat16)


def moe_fp8(x, logits, shared, gate_up, gate_up_scale, down, down_scale, top_k: int,
            scale_ub: float | None = None) -> torch.Tensor:
    """The MoE block with FP8 experts, step by step as llama4/moe_fp8.h lists it."""
    T, _ = x.shape
    E = gate_up.shape[0]
    # route: top-k of the logits (lower index on ties), sigmoid rounded to x's dtype
    ids = torch.empty(T, top_k, dtype=torch.long)
    for t in range(T):
        row = logits[t].tolist()
        ranked = sorted(range(E), key=lambda e: (-row[e], e))
        ids[t] = torch.tensor(ranked[:top_k])
    scores = sigmoid_f32(logits.gather(1, ids)).to(x.dtype)
    # permute: pairs grouped by expert, stable in (token, choice) order; rows x[t] * score
    pairs = [(int(ids[t, j]), t, j) for t in range(T) for j in range(top_k)]
    pairs.sort(key=lambda p: p[0])  # stable
    xs = torch.stack([(x[t] * scores[t, j]) for _, t, j in pairs])
    counts = torch.bincount(ids.flatten(), minlength=E)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    a, a_scale = quantize_rows(xs, scale_ub)
    gu = grouped_gemm(a, a_scale, gate_up, gate_up_scale, offsets)
    h = silu_gate_bf16(gu)
    hq, h_scale = quantize_rows(h, scale_ub)
    y = grouped_gemm(hq, h_scale, down, down_scale, offsets)
    # un-permute: per token, the fp32 sum of its choices in choice order, rounded, plus shared
    slot = {(t, j): r for r, (_, t, j) in enumerate(pairs)}
    out = torch.empty_like(shared)
    for t in range(T):
        routed = torch.zeros(x.shape[1], dtype=torch.float32)
        for j in range(top_k):
            routed = routed + y[slot[(t, j)]].float()
        out[t] = (shared[t].float() + routed.to(x.dtype).float()).to(x.dtype)
    return out


def quantize_experts(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear-layout expert weights [E, N, K] -> (e4m3 [E, N, K], float32 scales [E, N])."""
    E, N, K = w.shape
    q, s = quantize_rows(w.reshape(E * N, K))
    return q.reshape(E, N, K), s.reshape(E, N)
