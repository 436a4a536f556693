"""Python entry points of the engine's ops (thin: the C++ op entry validates and dispatches).

Inputs are any `__dlpack__` objects (torch tensors, numpy arrays) on CPU or CUDA and are used
without copying; outputs come back in the input's framework (torch in, torch out).
"""
from __future__ import annotations

from typing import Any

from . import _C


def _like(out: Any, ref: Any) -> Any:
    """Wrap an engine tensor as the framework of `ref` (zero-copy through DLPack)."""
    mod = type(ref).__module__
    if mod.startswith("torch"):
        import torch

        return torch.from_dlpack(out)
    import numpy as np

    return np.from_dlpack(out)


def rms_norm(x, weight=None, eps: float = 1e-5):
    """RMSNorm over the last dim: cast(x * rsqrt(mean(x^2) + eps)) * weight. weight=None: QK-norm."""
    return _like(_C.rms_norm(x, weight, float(eps)), x)


def qk_norm(x, eps: float = 1e-5):
    """Llama 4 QK-norm: RMS norm over head_dim without a weight."""
    return _like(_C.rms_norm(x, None, float(eps)), x)


def rope(x, positions, inv_freq):
    """Interleaved-pair RoPE. x: [T, H, d]; positions: [T] int; inv_freq: [d/2] float32."""
    return _like(_C.rope(x, positions, inv_freq), x)


def rope_inv_freq(head_dim: int, theta: float, rope_scaling: dict | None = None) -> list[float]:
    """RoPE inverse frequencies (fp32), with llama3 scaling when rope_scaling says so."""
    s = dict(rope_scaling or {})
    rope_type = s.get("rope_type", s.get("type", "default")) or "default"
    if rope_type == "default":
        return _C.rope_inv_freq(int(head_dim), float(theta), "default")
    return _C.rope_inv_freq(
        int(head_dim), float(theta), rope_type,
        float(s.get("factor", 1.0)), float(s.get("low_freq_factor", 1.0)),
        float(s.get("high_freq_factor", 4.0)),
        int(s.get("original_max_position_embeddings", 8192)),
    )


def silu_gate(gate, up):
    """silu(gate) * up, rounding as transformers' Llama4TextMLP does."""
    return _like(_C.silu_gate(gate, up), gate)


def quantize_fp8_rowwise(x, scale_ub: float | None = None):
    """Row-wise e4m3 quantization -> (q [R, K] float8_e4m3fn, scale [R] float32), x ~ q * scale.

    scale_ub bounds the per-row amax (Meta's recipe uses 1200 for activations)."""
    if scale_ub is not None and not scale_ub > 0:
        raise ValueError(
            f"quantize_fp8_rowwise: 'scale_ub' must be positive or None, got {scale_ub}")
    q, s = _C.quantize_fp8_rowwise(x, float(scale_ub or 0.0))
    return _like(q, x), _like(s, x)


def dequantize_fp8_rowwise(q, scale, dtype: str = "float32"):
    """float(q) * scale[row], as `dtype` ('float32', 'bfloat16', 'float16')."""
    return _like(_C.dequantize_fp8_rowwise(q, scale, str(dtype)), q)


def cast(x, dtype: str):
    """Convert between float32/bfloat16/float16/float8_e4m3fn with PyTorch's rounding."""
    return _like(_C.cast(x, str(dtype)), x)


def contiguous(x):
    """A contiguous copy made by the engine (exercises the strided-copy kernels)."""
    return _like(_C.contiguous(x), x)


def linear(x, w, out_dtype: str | None = None):
    """x [M, K] . w[N, K]^T (nn.Linear layout), fp32 accumulation; out in x's dtype or out_dtype."""
    return _like(_C.linear(x, w, out_dtype or ""), x)


def linear_kernel(arch: int, x_dtype: str, out_dtype: str, m: int, n: int, k: int, groups: int = 0,
                  ldx: int | None = None, aligned16: bool = True) -> str:
    """The CUDA kernel linear (groups = 0) or grouped_linear (groups >= 1) runs for an [m, k] x
    (row stride ldx, default k) and n outputs on a device of compute capability `arch` (major * 10
    + minor, 90 = H100): "gemv", "tiled" or a "cutlass_..." configuration (a pure host rule)."""
    return _C.linear_kernel(int(arch), str(x_dtype), str(out_dtype), int(m), int(n), int(k), int(groups),
                            -1 if ldx is None else int(ldx), bool(aligned16))


def add(a, b):
    """a + b elementwise (same shape and dtype), one rounding: the residual add."""
    return _like(_C.add(a, b), a)


def grouped_linear(x, w, offsets):
    """Rows [offsets[e], offsets[e + 1]) of x times w[e]^T (w: [E, N, K]), for every group e: the
    experts of a MoE layer in one call. offsets: [E + 1] int32. On the CPU w may also be Hugging
    Face's fused [E, K, N] viewed as [E, N, K] (w_hf.transpose(1, 2)), read in place."""
    return _like(_C.grouped_linear(x, w, offsets), x)


def embedding(table, ids):
    """table[ids] -> [T, D]; an id outside the table raises ValueError."""
    return _like(_C.embedding(table, ids), table)


def moe_route(logits, k: int, score_dtype: str | None = None):
    """Top-k experts per token on the router logits, and sigmoid(logit) scores (Llama 4)."""
    ids, scores = _C.moe_route(logits, int(k), score_dtype or "")
    return _like(ids, logits), _like(scores, logits)


def moe_localize(topk_ids, first: int, count: int) -> None:
    """Expert parallelism, in place: ids of experts [first, first + count) become id - first, the
    others `count` (a group no grouped GEMM computes)."""
    _C.moe_localize(topk_ids, int(first), int(count))


def moe_permute(x, topk_ids, topk_scores, num_experts: int):
    """Group (token, choice) pairs by expert: -> (x_perm = x[t] * score, perm_token, perm_slot,
    expert_offsets [E + 1])."""
    return tuple(_like(t, x) for t in _C.moe_permute(x, topk_ids, topk_scores, int(num_experts)))


def moe_unpermute(y_perm, perm_slot, shared):
    """shared[t] + sum over t's choices of y_perm rows (one rounding of the sum)."""
    return _like(_C.moe_unpermute(y_perm, perm_slot, shared), shared)


# ---- FP8 MoE (llama4/moe_fp8.h) ------------------------------------------------------------------

def moe_gemm_config(rows: int, experts: int) -> dict:
    """The CUDA FP8 grouped GEMM's tile configuration for `rows` rows (tokens x top_k) over
    `experts` experts: {"name", "swap_ab", "tile", "cluster", "schedule"} (a pure host function)."""
    return dict(_C.moe_gemm_config(int(rows), int(experts)))


def moe_grouped_gemm_fp8(a, a_scale, w, w_scale, expert_offsets, out=None, workspace=None):
    """bf16 [R, N]: row r of expert e = bf16((float(sum_k a[r,k] * w[e,:,k]) * w_scale[e]) * a_scale[r]).

    a [R, K] / w [E, N, K] float8_e4m3fn, a_scale [R] / w_scale [E, N] float32, expert_offsets
    [E + 1] int32 (expert e owns rows [off[e], off[e+1])). `out`/`workspace` may be preallocated
    (workspace: uint8 of moe_grouped_gemm_fp8_workspace_bytes); the CPU sums over k exactly."""
    res = _C.moe_grouped_gemm_fp8(a, a_scale, w, w_scale, expert_offsets, out, workspace)
    return out if out is not None else _like(res, a)


def moe_grouped_gemm_fp8_workspace_bytes(device: str, experts: int) -> int:
    return int(_C.moe_grouped_gemm_fp8_workspace_bytes(str(device), int(experts)))


def moe_fp8(x, router_logits, shared, gate_up, gate_up_scale, down, down_scale, top_k: int,
            scale_ub: float | None = None, out=None, workspace=None):
    """A Llama 4 MoE block with FP8 experts: shared + routed experts (x [T, D] f32/bf16, router
    logits [T, E] f32, shared [T, D]; gate_up [E, 2I, D] / down [E, D, I] e4m3 with per-output-
    channel scales [E, 2I] / [E, D]). scale_ub bounds the activations' per-row amax (None: none)."""
    if scale_ub is not None and not scale_ub > 0:
        raise ValueError(f"moe_fp8: 'scale_ub' must be positive or None, got {scale_ub}")
    res = _C.moe_fp8(x, router_logits, shared, gate_up, gate_up_scale, down, down_scale, int(top_k),
                     float(scale_ub or 0.0), out, workspace)
    return out if out is not None else _like(res, x)


def moe_fp8_workspace_bytes(device: str, tokens: int, hidden: int, intermediate: int, experts: int,
                            top_k: int) -> int:
    return int(_C.moe_fp8_workspace_bytes(str(device), int(tokens), int(hidden), int(intermediate),
                                          int(experts), int(top_k)))


# ---- INT4 MoE (llama4/moe_int4.h) ------------------------------------------------------------------

def moe_grouped_gemm_int4(x, w, w_scale, expert_offsets, out=None, workspace=None):
    """bf16 [R, N]: row r of expert e = bf16(sum_g w_scale[e, n, g] * sum_{k in g} x[r, k] * q[e, n, k]).

    x [R, K] bfloat16; w [E, N, K/2] uint8 (k = 2j in the low nibble of byte j, 2j + 1 in the high
    one, signed int4); w_scale [E, N, K/G] bfloat16 (G: the group size); expert_offsets [E + 1]
    int32 (expert e owns rows [off[e], off[e+1]); rows from off[E] on are not written)."""
    res = _C.moe_grouped_gemm_int4(x, w, w_scale, expert_offsets, out, workspace)
    return out if out is not None else _like(res, x)


def linear_int4(x, w, w_scale, out=None, workspace=None):
    """bf16 [R, N]: moe_grouped_gemm_int4 with one weight for every row (the shared expert and the
    dense MLP in INT4): x [R, K] bfloat16, w [N, K/2] uint8, w_scale [N, K/G] bfloat16."""
    res = _C.linear_int4(x, w, w_scale, out, workspace)
    return out if out is not None else _like(res, x)


def quantize_int4_grouped(w, group: int = 128):
    """(q [..., N, K/2] uint8, scale [..., N, K/group] bfloat16): symmetric int4 per group of
    `group` along K, scale = bf16(amax / 7), q = clamp(round_half_even(w / scale), -8, 7)."""
    q, s = _C.quantize_int4_grouped(w, int(group))
    return _like(q, w), _like(s, w)


# ---- the CUDA INT4 grouped GEMM's two kernels (llama4/moe_int4_config.h) ------------------------

def moe_int4_gemm_config(rows: int, experts: int, n: int, group_size: int) -> dict:
    """The CUDA INT4 grouped GEMM's kernel for `rows` rows over `experts` experts, N output
    channels and group size `group_size`: {"name", "kernel"}, "gemv" (decode) or "cutlass"."""
    return dict(_C.moe_int4_gemm_config(int(rows), int(experts), int(n), int(group_size)))


def moe_grouped_gemm_int4_kernel(x, w, w_scale, expert_offsets, kernel: str, out=None, workspace=None):
    """moe_grouped_gemm_int4 with the CUDA kernel named ("gemv" or "cutlass") instead of the one
    moe_int4_gemm_config picks (tests and benchmarks); CPU tensors run the CPU op."""
    res = _C.moe_grouped_gemm_int4_kernel(x, w, w_scale, expert_offsets, str(kernel), out, workspace)
    return out if out is not None else _like(res, x)


def moe_grouped_gemm_int4_workspace_bytes(device: str, experts: int) -> int:
    """Scratch bytes moe_grouped_gemm_int4 needs on `device` for `experts` experts (0 on CPU)."""
    return int(_C.moe_grouped_gemm_int4_workspace_bytes(str(device), int(experts)))


# ---- early fusion and the vision encoder's ops ----------------------------------------------------


def embedding_fused(table, ids, image_features=None, image_token_id: int = -1):
    """Decoder input rows: table[ids[t]], or the next row of image_features where
    ids[t] == image_token_id (rows consumed in order). table: [V, D]; ids: [T] int;
    image_features: [R, D] with R = the number of placeholders (ValueError otherwise)."""
    return _like(_C.embedding_fused(table, ids, image_features, int(image_token_id)), table)


def layer_norm(x, weight, bias, eps: float = 1e-5):
    """nn.LayerNorm over the last dim (weight and bias, biased variance)."""
    return _like(_C.layer_norm(x, weight, bias, float(eps)), x)


def gelu(x):
    """Exact (erf) GELU, nn.GELU()."""
    return _like(_C.gelu(x), x)


def add_bias(x, bias, out_dtype: str = ""):
    """x + bias (broadcast over rows), rounded once; x may be float32 with out_dtype the bias's."""
    return _like(_C.add_bias(x, bias, str(out_dtype)), x)


def rope_table(x, cos, sin):
    """Interleaved-pair rotation by per-position angles. x: [B, N, H, d]; cos, sin: [N, d/2] fp32."""
    return _like(_C.rope_table(x, cos, sin), x)


def attention_dense(q, k, v, scale: float):
    """Unmasked attention per batch row and head. q, k, v: [B, N, H, d] -> [B, N, H, d]."""
    return _like(_C.attention_dense(q, k, v, float(scale)), q)


def pixel_shuffle(x, factor: int):
    """[B, S*S, C] -> [B, (S/f)^2, C*f*f], transformers' pixel_shuffle with ratio 1/factor."""
    return _like(_C.pixel_shuffle(x, int(factor)), x)


def patchify(pixels, patch: int, out_dtype: str = "float32"):
    """[B, C, H, W] -> [B, (H/p)(W/p), C*p*p]: unfold into p x p patches, (C, ky, kx) order."""
    return _like(_C.patchify(pixels, int(patch), str(out_dtype)), pixels)


# ---- the sampler (llama4/sampling.h) --------------------------------------------------------------

SamplingParams = _C.SamplingParams


def sample(logits, params, *, seeds=None, sample_indices=None, token_indices=None,
           prompt_tokens=None, output_tokens=None, num_top: int = 0, workspace=None):
    """One token per row of logits [B, V] float32 (CPU or CUDA) -> (tokens [B] int32, logprobs [B]
    float32, top_ids [B, N] int32, top_logprobs [B, N] float32, status [B] int32).

    params: a SamplingParams (every row) or one per row. Row r draws with params.seed, else
    seeds[r] (default 0), at (sample_indices[r], token_indices[r]) (default 0): the seeding
    contract of llama4/sampling.h. prompt_tokens / output_tokens: per-row token ids the penalties
    look at (repetition: both; presence / frequency: the output). Logprobs are the raw model's
    (log_softmax of the logits before penalties and temperature); N = max(num_top, the largest
    params.logprobs). status[r] != 0 marks a row whose logits were unusable (token -1; see
    sample_status_message)."""
    B = int(logits.shape[0]) if len(logits.shape) >= 1 else 0
    V = int(logits.shape[-1]) if len(logits.shape) >= 1 else 0
    rows = list(params) if isinstance(params, (list, tuple)) else [params] * B

    def per_row(v, name):
        if v is None:
            return []
        v = list(v)
        if len(v) != B:
            raise ValueError(f"sample: '{name}' must have one entry per row ({B}), got {len(v)}")
        return v

    def ints(v, name, lo, hi, what="entries"):  # ValueError naming the argument, not a binding error
        out = [int(t) for t in v]
        for t in out:
            if not lo <= t < hi:
                raise ValueError(f"sample: '{name}' {what} must be in [{lo}, {hi}), got {t}")
        return out

    vocab = "token ids (the vocabulary)"
    res = _C.sample(logits, rows, ints(per_row(seeds, "seeds"), "seeds", 0, 1 << 64),
                    ints(per_row(sample_indices, "sample_indices"), "sample_indices", 0, 1 << 31),
                    ints(per_row(token_indices, "token_indices"), "token_indices", 0, 1 << 63),
                    [ints(p, "prompt_tokens", 0, V, vocab)
                     for p in per_row(prompt_tokens, "prompt_tokens")],
                    [ints(p, "output_tokens", 0, V, vocab)
                     for p in per_row(output_tokens, "output_tokens")],
                    int(num_top), workspace)
    return tuple(_like(t, logits) for t in res)


def sample_workspace_bytes(logits, params, *, prompt_tokens=None, output_tokens=None) -> int:
    """Bytes of the `workspace` that sample() needs for this batch on logits' device (0 on CPU);
    a CUDA workspace of that size keeps sample() free of allocations and host waits."""
    B = int(logits.shape[0])
    rows = list(params) if isinstance(params, (list, tuple)) else [params] * B
    return int(_C.sample_workspace_bytes(logits, rows,
                                         [[int(t) for t in p] for p in (prompt_tokens or [])],
                                         [[int(t) for t in p] for p in (output_tokens or [])]))


def sample_status_message(status: int) -> str:
    return _C.sample_status_message(int(status))
