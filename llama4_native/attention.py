"""Paged KV cache and paged attention (thin wrappers over llama4_native._C).

Shapes (see csrc/include/llama4/kv_cache.h and the attention section of llama4/ops.h):
    k_cache, v_cache: [num_pages, page_size, KV, d]     one layer's storage (KVCache.k(layer))
    k, v:             [T, KV, d]                         new tokens' keys/values
    q, out:           [T, H, d]                          H a multiple of KV (GQA)
    slots:            [T] int32                          page * page_size + offset, -1 = skip
    page_table:       [S, max_pages] int32               physical page per logical page, -1 = absent
    query_seq:        [T] int32                          row of page_table of each query
    query_pos:        [T] int32                          absolute position of each query
Inputs are any `__dlpack__` objects, used without copying; outputs come back as torch tensors when
the input was one (numpy otherwise), and the cache's views are torch tensors when torch is present.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from . import _C
from .ops import _like

CacheFullError = _C.CacheFullError


def cache_write(k_cache, v_cache, k, v, slots, k_scale=None, v_scale=None) -> None:
    """k_cache/v_cache[slot of token t] = k/v[t] (in place) for every slots[t] >= 0. FP8 caches
    (float8_e4m3fn) take k_scale/v_scale [num_pages, page_size, KV] float32: each (token, head) row
    is quantized with its own scale (amax / 448, as quantize_fp8_rowwise)."""
    _C.cache_write(k_cache, v_cache, k, v, slots, k_scale, v_scale)


def paged_attention(q, k_cache, v_cache, page_table, query_seq, query_pos, *,
                    scale: float | None = None, chunk_size: int = 0, attn_scale: float = 0.0,
                    floor_scale: float = 8192.0, kv_splits: int = 0, k_scale=None, v_scale=None,
                    kernel: str = "auto"):
    """Attention of q [T, H, d] over K/V read through page tables -> out [T, H, d].

    chunk_size 0: global causal (keys [0, p]); > 0: chunked-local (keys [floor(p/C)*C, p]).
    attn_scale > 0: Llama 4 temperature tuning of q (NoPE layers). scale defaults to d**-0.5.
    kv_splits: 0 = heuristic; > 0 forces a split of each key window (flash-decoding).
    FP8 caches: k_scale/v_scale as for cache_write; K/V are read as float(e4m3) * scale.
    kernel (CUDA only; the CPU has one kernel): "auto" picks from the shapes, "split_kv" is the
    per-query decode kernel, "prefill" the tensor-core kernel over tiles of consecutive queries
    (bf16 q, bf16 or FP8 cache, head_dim 64 or 128)."""
    if kernel not in _KERNELS:
        raise ValueError(f"paged_attention: kernel must be one of {sorted(_KERNELS)}, got {kernel!r}")
    if scale is None:
        scale = 1.0 / math.sqrt(int(q.shape[-1]))
    out = _C.paged_attention(q, k_cache, v_cache, page_table, query_seq, query_pos, float(scale),
                             int(chunk_size), float(attn_scale), float(floor_scale), int(kv_splits),
                             k_scale, v_scale, _KERNELS[kernel])
    return _like(out, q)


_KERNELS = {"auto": 0, "split_kv": 1, "prefill": 2}  # ops::AttentionKernel


def _dtype_name(dtype: Any) -> str:
    s = str(dtype)
    return s[len("torch."):] if s.startswith("torch.") else s


def _tensor(x):
    """An engine tensor as a torch tensor when torch is installed, else a numpy array."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is how the engine is used in practice
        import numpy as np

        return np.from_dlpack(x)
    return torch.from_dlpack(x)


class KVCache:
    """Paged KV cache: group 0 = chunked-local (RoPE) layers, group 1 = global (NoPE) layers.

    Per step: reserve(seqs, n_new) -> plan(seqs, n_new) -> per layer cache_write +
    paged_attention with plan["page_table"][group_of(layer)] -> commit(seqs, n_new).
    reserve raises CacheFullError (a RuntimeError) and changes nothing when a pool is full."""

    def __init__(self, *, num_layers: int, layer_chunked: Sequence[int], num_kv_heads: int,
                 head_dim: int, dtype: Any = "bfloat16", device: str = "cpu", page_size: int = 16,
                 chunk_size: int, num_pages_chunked: int, num_pages_global: int):
        self._c = _C.KVCache(
            num_layers=int(num_layers), layer_chunked=[int(x) for x in layer_chunked],
            num_kv_heads=int(num_kv_heads), head_dim=int(head_dim), dtype=_dtype_name(dtype),
            device=str(device), page_size=int(page_size), chunk_size=int(chunk_size),
            num_pages_chunked=int(num_pages_chunked), num_pages_global=int(num_pages_global))

    @classmethod
    def from_budget(cls, *, num_layers: int, layer_chunked: Sequence[int], num_kv_heads: int,
                    head_dim: int, dtype: Any = "bfloat16", device: str = "cpu", page_size: int = 16,
                    chunk_size: int, budget_bytes: int, max_seqs: int,
                    max_step_tokens: int = 0) -> "KVCache":
        """Size the pools from a byte budget: the chunked pool gets its per-sequence bound
        (chunked_pages_bound) for max_seqs sequences, the global pool the rest."""
        impl = _C.KVCache.from_budget(
            num_layers=int(num_layers), layer_chunked=[int(x) for x in layer_chunked],
            num_kv_heads=int(num_kv_heads), head_dim=int(head_dim), dtype=_dtype_name(dtype),
            device=str(device), page_size=int(page_size), chunk_size=int(chunk_size),
            budget_bytes=int(budget_bytes), max_seqs=int(max_seqs),
            max_step_tokens=int(max_step_tokens))
        obj = cls.__new__(cls)
        obj._c = impl
        return obj

    @staticmethod
    def chunked_pages_bound(page_size: int, chunk_size: int, max_step_tokens: int) -> int:
        """ceil(C/P) + ceil(n/P) + 1: the most chunked-group pages one sequence ever holds."""
        return _C.KVCache.chunked_pages_bound(int(page_size), int(chunk_size), int(max_step_tokens))

    @property
    def config(self) -> dict:
        return dict(self._c.config)

    def add_sequence(self) -> int:
        return self._c.add_sequence()

    def free_sequence(self, seq: int) -> None:
        self._c.free_sequence(int(seq))

    def length(self, seq: int) -> int:
        return self._c.length(int(seq))

    def reserve(self, seqs: Sequence[int], n_new: Sequence[int]) -> None:
        self._c.reserve([int(s) for s in seqs], [int(n) for n in n_new])

    def commit(self, seqs: Sequence[int], n_new: Sequence[int]) -> None:
        self._c.commit([int(s) for s in seqs], [int(n) for n in n_new])

    def plan(self, seqs: Sequence[int], n_new: Sequence[int]) -> dict:
        """{"page_table": (chunked, global) [S, max_pages] int32, "slots": (chunked, global) [T]
        int32, "query_seq": [T] int32, "query_pos": [T] int32}."""
        p = self._c.plan([int(s) for s in seqs], [int(n) for n in n_new])
        return {
            "page_table": tuple(_tensor(t) for t in p["page_table"]),
            "slots": tuple(_tensor(t) for t in p["slots"]),
            "query_seq": _tensor(p["query_seq"]),
            "query_pos": _tensor(p["query_pos"]),
        }

    def k(self, layer: int):
        """Layer storage [num_pages_of_group, page_size, KV, d], a zero-copy view."""
        return _tensor(self._c.k(int(layer)))

    def v(self, layer: int):
        return _tensor(self._c.v(int(layer)))

    def k_scale(self, layer: int):
        """FP8 caches: the layer's K scales [num_pages_of_group, page_size, KV] float32."""
        return _tensor(self._c.k_scale(int(layer)))

    def v_scale(self, layer: int):
        return _tensor(self._c.v_scale(int(layer)))

    def storage_bytes(self) -> int:
        """Bytes of K/V storage (and FP8 scales) allocated."""
        return self._c.storage_bytes()

    def group_of(self, layer: int) -> int:
        return self._c.group_of(int(layer))

    def free_pages(self, group: int) -> int:
        return self._c.free_pages(int(group))

    def total_pages(self, group: int) -> int:
        return self._c.total_pages(int(group))

    def pages_of(self, seq: int, group: int) -> list[int]:
        return list(self._c.pages_of(int(seq), int(group)))

    def num_sequences(self) -> int:
        return self._c.num_sequences()

    def __contains__(self, seq: int) -> bool:
        return self._c.__contains__(int(seq))


__all__ = ["CacheFullError", "KVCache", "cache_write", "paged_attention"]
