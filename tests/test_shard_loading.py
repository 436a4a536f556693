"""A rank of a tensor-parallel group loads only its share (llama4/shard.h): every text tensor comes
in the rank's shape and equals the matching slice of the single-rank tensor (re-derived here from
the sharding rules), and across the ranks each sharded checkpoint tensor is read once in total —
only the replicated norms and routers are read by every rank."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from llama4_native import _C


def _even(n: int, rank: int, size: int) -> tuple[int, int]:
    a, b = n * rank // size, n * (rank + 1) // size
    return a, b - a


def _expected_part(name: str, full: torch.Tensor, c, rank: int, size: int) -> torch.Tensor:
    """Rank `rank`'s part of the full engine tensor `name`, from the rules llama4/shard.h states."""
    d, H, KV = c.head_dim, c.num_attention_heads, c.num_key_value_heads
    q_count = H // size
    q = slice(rank * q_count * d, (rank + 1) * q_count * d)
    kv_first = rank * (KV // size) if KV % size == 0 else rank // (size // KV)
    kv_count = KV // size if KV % size == 0 else 1
    padded = -(-c.vocab_size // size)
    v_first = rank * padded
    v_count = min(c.vocab_size, v_first + padded) - v_first
    role = name.split(".", 2)[2] if name.startswith("layers.") else name

    def halves(width: int) -> torch.Tensor:
        first, count = _even(width, rank, size)
        return torch.cat([full[first:first + count], full[width + first:width + first + count]])

    def columns(width: int) -> torch.Tensor:
        first, count = _even(width, rank, size)
        return full[:, first:first + count]

    if role in ("embed_tokens", "lm_head"):
        out = torch.zeros(padded + (2 if role == "embed_tokens" else 0), full.shape[1], dtype=full.dtype)
        out[:v_count] = full[v_first:v_first + v_count]
        return out
    if role == "attn.qkv":
        kv = lambda base: full[base + kv_first * d:base + (kv_first + kv_count) * d]  # noqa: E731
        return torch.cat([full[q], kv(H * d), kv((H + KV) * d)])
    if role == "attn.o":
        return full[:, q]
    if role.startswith("moe.") and role.split(".")[1] in ("gate_up", "down", "gate_up_scale", "down_scale"):
        first, count = _even(c.num_local_experts, rank, size)
        return full[first:first + count]
    if role == "moe.shared_gate_up":
        return halves(c.intermediate_size)
    if role == "mlp.gate_up":
        return halves(c.intermediate_size_mlp)
    if role == "moe.shared_down":
        return columns(c.intermediate_size)
    if role == "mlp.down":
        return columns(c.intermediate_size_mlp)
    return full  # norms, routers: replicated


def _load(folder: Path, rank: int = 0, size: int = 1):
    seen = []
    loaded = _C.load_checkpoint(str(folder), "float32", rank=rank, world_size=size,
                                progress=lambda done, total: seen.append((done, total)))
    weights = {n: torch.from_dlpack(t) for n, t in loaded.text_weights.items()}
    done, total = seen[-1]
    assert done == total
    return loaded, weights, total


def _file_bytes(folder: Path, *parts: str) -> int:
    """Bytes of the checkpoint's text tensors whose names contain one of `parts` (safetensors headers)."""
    total = 0
    for f in folder.glob("*.safetensors"):
        raw = f.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        for name, info in json.loads(raw[8:8 + n]).items():
            if name == "__metadata__" or name.startswith(("vision_model.", "multi_modal_projector.")):
                continue
            if any(p in name for p in parts):
                begin, end = info["data_offsets"]
                total += end - begin
    return total


@pytest.mark.parametrize("name", ["maverick", "scout"])
@pytest.mark.parametrize("size", [2, 4])
def test_each_rank_loads_exactly_its_share(tiny_checkpoint, name, size):
    folder, _ = tiny_checkpoint(name)
    single, full, single_bytes = _load(folder)
    c = single.config.text
    read = 0
    for rank in range(size):
        _, part, rank_bytes = _load(folder, rank, size)
        assert part.keys() == full.keys()
        for n, t in part.items():
            want = _expected_part(n, full[n], c, rank, size)
            assert t.shape == want.shape, n
            assert torch.equal(t, want), n
        read += rank_bytes
    # Every rank reads the norms and routers; with fewer KV heads than ranks, size / KV ranks read
    # each KV head (replicated, as llama4/shard.h says); everything else is read once in total.
    KV = c.num_key_value_heads
    kv_readers = 1 if KV % size == 0 else size // KV
    extra = (size - 1) * _file_bytes(folder, "norm", "router") + (kv_readers - 1) * _file_bytes(folder, "k_proj", "v_proj")
    assert read == single_bytes + extra


@pytest.mark.parametrize("size", [1, 2, 4])
def test_each_ranks_fused_experts_are_views_of_the_file(tiny_checkpoint, size):
    """The fused float experts stay where they lie in the memory map on every rank (expert
    parallelism cuts whole experts: rows of the fused [E, K, N], still one block of the file), as
    the KN view [E_rank, N, K] of exactly that rank's experts' bytes."""
    folder, _ = tiny_checkpoint("scout")
    for rank in range(size):
        loaded, part, _ = _load(folder, rank, size)
        c = loaded.config.text
        first, count = _even(c.num_local_experts, rank, size)
        ck = loaded.checkpoint
        for i in c.moe_layers:
            for role, hf in (("moe.gate_up", "gate_up_proj"), ("moe.down", "down_proj")):
                name = f"language_model.model.layers.{i}.feed_forward.experts.{hf}"
                info = ck.info(name)
                t = part[f"layers.{i}.{role}"]
                E, N, K = t.shape
                assert E == count and t.stride() == (K * N, 1, N), (rank, role)
                per_expert = info.nbytes // c.num_local_experts
                base = ck.file_of(name).address_range()[0]
                assert t.data_ptr() == base + info.start + first * per_expert, (rank, role)
