"""transformers with an FP8 KV cache emulated: every key and value row (token, KV head) passes
through the engine's per-row e4m3 quantization before attention (not a test file).

`fake_quant_kv(hf_model)` is a context manager: inside it the model's text attention runs eagerly on
quantized-then-dequantized K and V (fp32 arithmetic: float(e4m3) * scale), which is what the engine
reads from an FP8 cache (llama4/ops.h KVScales)."""
from __future__ import annotations

import contextlib

import torch

E4M3_MAX = 448.0


def quantize_rows(x: torch.Tensor):
    """Per-row (last dim) e4m3 with FBGEMM's rule -> (e4m3 tensor, float32 scales [...])."""
    xf = x.float()
    amax = xf.abs().amax(-1, keepdim=True).clamp(min=1e-12)  # NaN rows stay NaN
    inv = torch.tensor(E4M3_MAX) / amax
    q = torch.clamp(xf * inv, -E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, (1.0 / inv).squeeze(-1)


def dequantize_rows(q, scale):
    return q.float() * scale.unsqueeze(-1)


def fake_quant(x: torch.Tensor) -> torch.Tensor:
    return dequantize_rows(*quantize_rows(x)).to(x.dtype)


@contextlib.contextmanager
def fake_quant_kv(hf_model, capture: dict | None = None):
    """capture: if given, capture[layer_idx] = (key, value) [B, KV, T, d] of each layer's last call,
    before quantization."""
    import transformers.models.llama4.modeling_llama4 as M

    orig = M.eager_attention_forward

    def quantized(module, query, key, value, *args, **kwargs):  # key/value: [B, KV, T, d]
        if capture is not None:
            capture[module.layer_idx] = (key, value)
        return orig(module, query, fake_quant(key), fake_quant(value), *args, **kwargs)

    text = hf_model.config.get_text_config()
    configs = [c for c in {id(hf_model.config): hf_model.config, id(text): text}.values()]
    saved = [c._attn_implementation for c in configs]
    M.eager_attention_forward = quantized
    for c in configs:
        c._attn_implementation = "eager"
    try:
        yield hf_model
    finally:
        M.eager_attention_forward = orig
        for c, s in zip(configs, saved):
            c._attn_implementation = s
