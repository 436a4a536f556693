"""CUDA graphs for decode steps (csrc/model/decode_graphs.h): a decode step on the GPU runs in a
layout (batch padded to a bucket, page tables to a power-of-two width); with graphs on, each
layout's forward is captured once and replayed. The same checkpoint loaded twice, graphs on and
enforce_eager=True, must give the same logits BIT FOR BIT and the same tokens: batch sizes that hit
a bucket (1, 8) and that pad one (3 -> 4, 11 -> 16), sequences finishing mid-batch (the bucket
shrinks), tables that widen (4 -> 8 pages), chunked-local layers whose 8-token window is crossed
many times, float32 and bfloat16, an FP8 KV cache, FP8 and INT4 experts, and sampled decoding with seeds through the
scheduler. Graphs against the CPU engine: fp32 logits within 1e-4 with identical tokens.
Marked `cuda` (skipped without a GPU).
"""
from __future__ import annotations

import pytest
import torch

import llama4_native as l4
import tiny_checkpoints as tc

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (l4.cuda_available() and torch.cuda.is_available()),
        reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch",
    ),
]

MAX_SEQS = 16  # buckets 1, 2, 4, 8, 16


def _prompt(seed: int, vocab: int, n: int) -> list[int]:
    """Text ids below the tiny vocabulary's image tokens."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, min(vocab, tc.IMAGE_IDS["boi_token_index"]), (n,), generator=g).tolist()


def _pair(folder, dtype="float32", **kw):
    graphs = l4.load(folder, device="cuda", dtype=dtype, max_sequences=MAX_SEQS, **kw)
    eager = l4.load(folder, device="cuda", dtype=dtype, max_sequences=MAX_SEQS, enforce_eager=True, **kw)
    assert graphs.cuda_graphs and not graphs.enforce_eager
    assert not eager.cuda_graphs and eager.enforce_eager
    return graphs, eager


def _greedy_decode(model, prompts: list[list[int]], steps: int, finish_every: int = 0):
    """Prefill each prompt, then `steps` greedy decode steps of the whole live batch through the
    engine; every `finish_every` steps the first live sequence finishes (leaves the batch).
    Returns the logits of every decode step (a [live, V] tensor each) and the tokens."""
    seqs = [model._new_sequence() for _ in prompts]
    last = model._step([(s, p, False) for s, p in zip(seqs, prompts)]).cpu()
    toks = last.argmax(-1).tolist()
    live = list(range(len(seqs)))
    logits, tokens = [], []
    for k in range(steps):
        out = model._step([(seqs[i], [toks[i]], False) for i in live]).cpu()
        logits.append(out)
        for j, i in enumerate(live):
            toks[i] = int(out[j].argmax())
        tokens.append([toks[i] for i in live])
        if finish_every and (k + 1) % finish_every == 0 and len(live) > 1:
            model._free_sequence(seqs[live.pop(0)])
    return logits, tokens


def _assert_bitwise(graphs, eager, prompts, steps, finish_every=0):
    lg, tg = _greedy_decode(graphs, prompts, steps, finish_every)
    le, te = _greedy_decode(eager, prompts, steps, finish_every)
    assert tg == te
    for k, (a, b) in enumerate(zip(lg, le)):
        assert torch.equal(a, b), f"decode step {k}: graph replay differs from eager by {(a - b).abs().max():.3e}"
    sg, se = graphs.decode_graph_stats(), eager.decode_graph_stats()
    assert sg["error"] == "", sg["error"]
    assert sg["replays"] > 0 and sg["graphs"] > 0 and sg["captures"] == sg["graphs"] + sg["evictions"]
    assert sg["replays"] + sg["eager_steps"] == se["eager_steps"]  # every decode step went through a layout
    assert se["replays"] == 0 and se["captures"] == 0


@pytest.mark.parametrize("batch", [1, 3, 8, 11])
def test_graph_replay_equals_eager_bitwise(tiny_checkpoint, batch):
    """Prompts of different lengths; 48 steps take the longest sequences past 64 tokens (tables
    widen from 4 to 8 pages) and cross the 8-token chunk windows six times."""
    folder, _ = tiny_checkpoint("scout")
    graphs, eager = _pair(folder)
    prompts = [_prompt(10 + i, graphs.vocab_size, 9 + 5 * i) for i in range(batch)]
    _assert_bitwise(graphs, eager, prompts, steps=48)


def test_sequences_finishing_mid_batch(tiny_checkpoint):
    """11 sequences, one finishing every 4 steps: buckets 16 -> 8 -> 4 -> 2 -> 1 as the batch shrinks."""
    folder, _ = tiny_checkpoint("maverick_text")
    graphs, eager = _pair(folder)
    prompts = [_prompt(40 + i, graphs.vocab_size, 5 + 3 * i) for i in range(11)]
    _assert_bitwise(graphs, eager, prompts, steps=44, finish_every=4)


@pytest.mark.parametrize("name", ["scout_text", "tied_text"])
def test_bf16_graph_replay_equals_eager(tiny_checkpoint, name):
    folder, _ = tiny_checkpoint(name)
    graphs, eager = _pair(folder, dtype="bfloat16")
    prompts = [_prompt(70 + i, graphs.vocab_size, 13 + 4 * i) for i in range(5)]
    _assert_bitwise(graphs, eager, prompts, steps=40)


def test_fp8_kv_cache_graph_replay_equals_eager(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout")
    graphs, eager = _pair(folder, dtype="bfloat16", kv_cache_dtype="fp8")
    prompts = [_prompt(90 + i, graphs.vocab_size, 7 + 6 * i) for i in range(6)]
    _assert_bitwise(graphs, eager, prompts, steps=40)


@pytest.mark.parametrize("name, kw", [("maverick", dict(quantization="fp8")),
                                      ("scout_i32", dict(quantization="int4", int4_group_size=32))])
def test_quantized_experts_graph_replay_equals_eager(tiny_checkpoint, name, kw):
    """FP8 experts (CUTLASS grouped GEMMs with their on-device arguments) and INT4 experts."""
    folder, _ = tiny_checkpoint(name)
    graphs, eager = _pair(folder, dtype="bfloat16", **kw)
    prompts = [_prompt(110 + i, graphs.vocab_size, 11 + 2 * i) for i in range(4)]
    _assert_bitwise(graphs, eager, prompts, steps=24)


def test_graphs_match_cpu_engine(tiny_checkpoint):
    """Padding rows and replays change nothing that matters: fp32 logits of 5 sequences over 40
    greedy steps agree with the CPU engine to 1e-4, with the same tokens."""
    folder, _ = tiny_checkpoint("scout")
    cpu = l4.load(folder, dtype="float32", max_sequences=MAX_SEQS)
    gpu = l4.load(folder, device="cuda", dtype="float32", max_sequences=MAX_SEQS)
    prompts = [_prompt(130 + i, cpu.vocab_size, 6 + 7 * i) for i in range(5)]
    lc, tcpu = _greedy_decode(cpu, prompts, 40)
    lg, tgpu = _greedy_decode(gpu, prompts, 40)
    assert tgpu == tcpu
    err = max((a - b).abs().max().item() for a, b in zip(lg, lc))
    print(f"graphs vs CPU engine: max|dlogit| = {err:.2e}")
    assert err <= 1e-4
    assert gpu.decode_graph_stats()["replays"] > 0


def test_sampled_generation_with_seeds_same_with_and_without_graphs(tiny_checkpoint):
    """Through the scheduler: 6 prompts, two samples each (forks), different lengths so that
    requests finish mid-batch; seeded sampling gives the same tokens and logits either way."""
    folder, _ = tiny_checkpoint("scout")
    graphs, eager = _pair(folder)
    prompts = [_prompt(150 + i, graphs.vocab_size, 8 + 5 * i) for i in range(6)]
    sampling = [l4.SamplingParams(temperature=0.9, top_p=0.95, seed=7 + i, n=2, max_new_tokens=10 + 6 * i)
                for i in range(6)]
    outs = [m.generate(input_ids=prompts, sampling=sampling, return_logits=True) for m in (graphs, eager)]
    for a, b in zip(*outs):
        assert len(a.samples) == len(b.samples) == 2
        for x, y in zip(a.samples, b.samples):
            assert x.token_ids == y.token_ids
            assert torch.equal(x.logits.cpu(), y.logits.cpu())
    assert graphs.decode_graph_stats()["replays"] > 0


def test_graph_eviction_keeps_results(tiny_checkpoint):
    """max_decode_graphs=2 while 11 sequences finish one by one (buckets 16, 8, 4, 2, 1; tables 4
    then 8 pages wide): graphs are destroyed and recaptured as layouts come back, and every step
    still equals the eager engine's bit for bit."""
    from llama4_native import _C
    from llama4_native.engine import _upload

    folder, _ = tiny_checkpoint("scout")
    graphs, eager = _pair(folder)
    weights = _upload(dict(graphs._checkpoint.text_weights), "cuda")
    graphs._engine = _C.Engine(graphs.config.text, "float32", weights,
                               {"max_sequences": MAX_SEQS, "max_decode_graphs": 2})
    prompts = [_prompt(170 + i, graphs.vocab_size, 30 + 3 * i) for i in range(11)]
    _assert_bitwise(graphs, eager, prompts, steps=44, finish_every=4)
    s = graphs.decode_graph_stats()
    assert s["evictions"] > 0 and s["graphs"] <= 2 and s["captures"] == s["graphs"] + s["evictions"]
