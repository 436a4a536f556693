"""The host planning of CUDA paged attention (csrc/ops/attention_plan.h), run on the CPU:
which kernel the shapes choose, and the tiling of a batch's queries that the prefill kernel's
device planner must reproduce, against a plain Python loop written independently."""
from __future__ import annotations

import random

import pytest
import torch

from llama4_native import _C
from llama4_native import attention as attn


def reference_tiles(qseq, qpos, chunk, tile_tokens):
    """Group the batch into runs (same sequence, positions +1, same chunk), cut each run into
    pieces of tile_tokens; returns the first entry of every piece, then T."""
    def chunk_of(p):
        return p // chunk if chunk else 0

    runs, start = [], 0
    for t in range(1, len(qseq) + 1):
        if t == len(qseq) or not (qseq[t] == qseq[t - 1] and qpos[t] == qpos[t - 1] + 1
                                  and chunk_of(qpos[t]) == chunk_of(qpos[t - 1])):
            runs.append((start, t))
            start = t
    firsts = [a for a, b in runs for a in range(a, b, tile_tokens)]
    return firsts + [len(qseq)]


def engine_batch(lengths, chunk_start=None):
    """query_seq/query_pos of a step as KVCache.plan lays it out: (past, new) per sequence."""
    qseq, qpos = [], []
    for i, (past, new) in enumerate(lengths):
        qseq += [i] * new
        qpos += list(range(past, past + new))
    return qseq, qpos


@pytest.mark.parametrize("tile_tokens", [1, 8, 12, 64])
@pytest.mark.parametrize("chunk", [0, 20, 64])
def test_prefill_tiles_engine_layout(tile_tokens, chunk):
    # a prefill, a later chunk crossing chunk boundaries, decode tokens, a prefill of exactly a tile
    qseq, qpos = engine_batch([(0, 300), (50, 1), (117, 90), (9, 1), (0, tile_tokens), (63, 2)])
    got = _C._prefill_tiles(qseq, qpos, chunk, tile_tokens)
    assert got == reference_tiles(qseq, qpos, chunk, tile_tokens)
    # every tile: one sequence, consecutive positions, one window, at most tile_tokens queries
    for a, b in zip(got[:-1], got[1:]):
        assert 1 <= b - a <= tile_tokens
        assert len(set(qseq[a:b])) == 1 and qpos[a:b] == list(range(qpos[a], qpos[a] + b - a))
        if chunk:
            assert len({p // chunk for p in qpos[a:b]}) == 1


def test_prefill_tiles_scattered_batches():
    """Direct callers may pass any order: repeated sequences, gaps, interleaving."""
    rng = random.Random(3)
    for _ in range(200):
        T = rng.randint(1, 80)
        qseq = [rng.randint(0, 3) for _ in range(T)]
        qpos = [rng.randint(0, 40) for _ in range(T)]
        if rng.random() < 0.5:  # long runs too
            qseq = sorted(qseq)
            start = rng.randint(0, 30)
            qpos = list(range(start, start + T))
        chunk, tt = rng.choice([0, 5, 16]), rng.choice([1, 3, 12])
        assert _C._prefill_tiles(qseq, qpos, chunk, tt) == reference_tiles(qseq, qpos, chunk, tt)


def test_prefill_tiles_empty_and_errors():
    assert _C._prefill_tiles([], [], 0, 12) == [0]
    with pytest.raises(ValueError, match="tile_tokens"):
        _C._prefill_tiles([0], [0], 0, 0)


def choice(**kw):
    shape = dict(T=2048, S=1, H=40, KV=8, d=128, page_size=64, table_width=32, chunk=8192,
                 q_dtype="bfloat16", cache_dtype="bfloat16")
    shape.update(kw)
    return _C._attention_kernel_choice(**shape)


def test_kernel_choice():
    assert choice() == "prefill"                                         # Scout prefill
    assert choice(cache_dtype="float8_e4m3fn") == "prefill"              # FP8 cache
    assert choice(d=64, H=8, KV=8, page_size=16) == "prefill"            # R = 1
    assert choice(T=32, S=32) == "split_kv"                              # decode batch
    assert choice(T=600, S=512) == "split_kv"                            # decode-dominated mix
    assert choice(T=575, S=64) == "prefill"                              # a prefill chunk + decodes
    assert choice(q_dtype="float32", cache_dtype="float32") == "split_kv"
    assert choice(q_dtype="float16", cache_dtype="float16") == "split_kv"
    assert choice(d=88) == "split_kv" and choice(d=256) == "split_kv"
    assert choice(H=130, KV=2) == "split_kv"                              # R = 65 > 64 rows
    assert choice(kv_splits=4) == "split_kv"                             # the caller wants splits
    assert choice(aligned=False) == "split_kv"
    # few tiles over long windows: split-KV spreads each window over the GPU ...
    assert choice(T=24, S=1, table_width=2048, chunk=0) == "split_kv"
    # ... short windows do not need it
    assert choice(T=24, S=1, table_width=16, chunk=0) == "prefill"
    assert choice(T=24, S=1, table_width=2048, chunk=1024) == "prefill"
    # forced choices
    assert choice(T=32, S=32, kernel=2) == "prefill"
    assert choice(kernel=1) == "split_kv"
    with pytest.raises(ValueError, match="head_dim must be 64 or 128"):
        choice(d=88, kernel=2)
    with pytest.raises(ValueError, match="bfloat16"):
        choice(q_dtype="float32", cache_dtype="float32", kernel=2)


def test_kernel_argument_on_cpu():
    """The CPU has one kernel: every choice gives its result; a bad name is a ValueError."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, 4, 64, generator=g).bfloat16()
    kc = torch.randn(2, 16, 2, 64, generator=g).bfloat16()
    vc = torch.randn(2, 16, 2, 64, generator=g).bfloat16()
    table = torch.tensor([[1, 0]], dtype=torch.int32)
    qseq = torch.zeros(5, dtype=torch.int32)
    qpos = torch.arange(12, 17, dtype=torch.int32)
    outs = [attn.paged_attention(q, kc, vc, table, qseq, qpos, kernel=k) for k in ("auto", "split_kv", "prefill")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    with pytest.raises(ValueError, match="kernel"):
        attn.paged_attention(q, kc, vc, table, qseq, qpos, kernel="tensor")
