"""The CPU-checkable parts of the CUDA decode graphs (csrc/model/decode_graphs.h): the batch-size
buckets and table widths of the decode layouts (pure functions, against a plain formulation of
vLLM's capture list), and the enforce_eager option through load(), the C++ engine options, the CLI
and the server's arguments. The graphs themselves: tests/test_cuda_graphs.py (GPU)."""
from __future__ import annotations

import subprocess
import sys

import pytest

import llama4_native as l4
from llama4_native import _C


def _vllm_style_buckets(max_batch: int) -> list[int]:
    """[1, 2, 4] + multiples of 8, cut at max_batch, which is always a bucket itself."""
    out = [b for b in [1, 2, 4] + list(range(8, max_batch + 8, 8)) if b < max_batch]
    return out + [max_batch]


@pytest.mark.parametrize("max_batch", [1, 2, 3, 4, 5, 8, 9, 16, 20, 24, 31, 32, 64, 100, 256])
def test_buckets_and_bucket_of_every_batch(max_batch):
    buckets = _vllm_style_buckets(max_batch)
    assert _C.decode_buckets(max_batch) == buckets
    for batch in range(1, max_batch + 1):
        want = min(b for b in buckets if b >= batch)  # the smallest layout that holds the batch
        assert _C.decode_bucket(batch, max_batch) == want, (batch, max_batch)
    # Outside [1, max_batch]: no layout (the engine runs such a step unpadded).
    assert _C.decode_bucket(0, max_batch) == 0
    assert _C.decode_bucket(max_batch + 1, max_batch) == 0


def test_bucket_examples():
    assert _C.decode_buckets(32) == [1, 2, 4, 8, 16, 24, 32]
    assert [_C.decode_bucket(b, 32) for b in (1, 2, 3, 4, 5, 8, 9, 17, 25, 32)] == [1, 2, 4, 4, 8, 8, 16, 24, 32, 32]
    assert [_C.decode_bucket(b, 20) for b in (17, 20)] == [20, 20]  # capped at max_batch


def test_decode_buckets_rejects_a_bad_max_batch():
    with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
        _C.decode_buckets(0)


def test_table_width_is_a_power_of_two_of_at_least_four():
    for pages in range(0, 1100):
        w = _C.decode_table_width(pages)
        assert w >= max(pages, 4) and w & (w - 1) == 0
        assert w == 4 or w // 2 < pages  # the smallest such
    with pytest.raises(ValueError, match="pages must be >= 0"):
        _C.decode_table_width(-1)


def test_enforce_eager_is_accepted_and_reported_on_cpu(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout")
    for flag in (False, True):
        m = l4.load(folder, dtype="float32", enforce_eager=flag)
        assert m.enforce_eager is flag and m._engine.enforce_eager is flag
        assert m.cuda_graphs is False  # graphs are a CUDA thing
        stats = m.decode_graph_stats()
        assert stats == dict(graphs=0, captures=0, replays=0, eager_steps=0, evictions=0, graph_memory_bytes=0,
                             error="")
    assert l4.load(folder, dtype="float32").enforce_eager is False  # graphs on by default


def test_enforce_eager_does_not_change_cpu_results(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    prompt = list(range(5, 26))
    a = l4.load(folder, dtype="float32").generate(input_ids=prompt, max_new_tokens=6, return_logits=True)
    b = l4.load(folder, dtype="float32", enforce_eager=True).generate(input_ids=prompt, max_new_tokens=6,
                                                                     return_logits=True)
    assert a.token_ids == b.token_ids
    assert (a.logits == b.logits).all()


@pytest.mark.parametrize("value", ["yes", 1, None, 0.0])
def test_enforce_eager_must_be_a_bool(tiny_checkpoint, value):
    folder, _ = tiny_checkpoint("scout")
    with pytest.raises(TypeError, match="enforce_eager must be a bool"):
        l4.load(folder, dtype="float32", enforce_eager=value)


def test_engine_option_enforce_eager_must_be_a_bool(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout")
    m = l4.load(folder, dtype="float32")
    weights = dict(m._checkpoint.text_weights)
    with pytest.raises(TypeError, match="enforce_eager must be a bool, got str"):
        _C.Engine(m.config.text, "float32", weights, {"enforce_eager": "true"})
    e = _C.Engine(m.config.text, "float32", weights, {"enforce_eager": True})
    assert e.enforce_eager is True and e.uses_cuda_graphs is False
    with pytest.raises(ValueError, match="max_decode_graphs must be >= 1, got 0"):
        _C.Engine(m.config.text, "float32", weights, {"max_decode_graphs": 0})


def test_cli_and_server_take_enforce_eager(real_vocab_checkpoint, tmp_path):
    r = subprocess.run([sys.executable, "-m", "llama4_native.cli", "bench", "--model", str(real_vocab_checkpoint),
                        "--enforce-eager", "--prompt-tokens", "8", "--new-tokens", "2"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import argparse

    from llama4_native.server.serve import add_parser

    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers(dest="cmd"))
    assert ap.parse_args(["serve", "--model", "M", "--enforce-eager"]).enforce_eager is True
    assert ap.parse_args(["serve", "--model", "M"]).enforce_eager is False


def _engines(tiny_checkpoint, name, dtype, kv):
    """Two CPU engines on the same weights: the plain path, and decode steps in the padded layouts
    CUDA runs (eagerly here: decode_layouts_on_cpu)."""
    folder, _ = tiny_checkpoint(name)
    m = l4.load(folder, dtype=dtype, kv_cache_dtype=kv)
    weights = dict(m._checkpoint.text_weights)
    opts = {"max_sequences": 16, "kv_cache_bytes": 8 << 20, "kv_cache_dtype": m.kv_cache_dtype}
    plain = _C.Engine(m.config.text, dtype, weights, opts)
    laid = _C.Engine(m.config.text, dtype, weights, dict(opts, decode_layouts_on_cpu=True))
    return m, plain, laid


def _greedy(engine, prompts, steps, finish_every):
    import torch

    seqs = [engine.add_sequence() for _ in prompts]
    toks = torch.from_dlpack(engine.step([(s, p, False) for s, p in zip(seqs, prompts)])).argmax(-1).tolist()
    live, logits, tokens = list(range(len(seqs))), [], []
    for k in range(steps):
        out = torch.from_dlpack(engine.step([(seqs[i], [toks[i]], False) for i in live])).clone()
        logits.append(out)
        for j, i in enumerate(live):
            toks[i] = int(out[j].argmax())
        tokens.append([toks[i] for i in live])
        if finish_every and (k + 1) % finish_every == 0 and len(live) > 1:
            engine.free_sequence(seqs[live.pop(0)])
    return logits, tokens


@pytest.mark.parametrize("name, dtype, kv", [("scout", "float32", "auto"), ("maverick_text", "float32", "auto"),
                                             ("scout", "bfloat16", "fp8")])
@pytest.mark.parametrize("batch, finish_every", [(3, 0), (11, 5)])
def test_decode_layouts_match_the_plain_path(tiny_checkpoint, name, dtype, kv, batch, finish_every):
    """What a CUDA decode step computes, checked on the CPU: the batch padded to its bucket (3 -> 4;
    11 -> 16, then 8, 4, 2, 1 as sequences finish), page tables widened to 4 and then 8 columns,
    padding rows at position 0 with slot -1 reading page 0, chunk windows of 8 crossed: the real
    rows' logits and tokens are the plain path's."""
    import torch

    m, plain, laid = _engines(tiny_checkpoint, name, dtype, kv)
    g = torch.Generator().manual_seed(batch)
    prompts = [torch.randint(3, 200, (20 + 4 * i,), generator=g).tolist() for i in range(batch)]
    lp, tp = _greedy(plain, prompts, 48, finish_every)
    ll, tl = _greedy(laid, prompts, 48, finish_every)
    assert tl == tp
    err = max((a - b).abs().max().item() for a, b in zip(ll, lp))
    print(f"{name} {dtype} kv={kv} batch {batch}: decode layouts vs plain path max|dlogit| = {err:.2e}")
    # Bit for bit, except fp32 with more than 8 rows: there the CPU linear is OpenBLAS sgemm, whose
    # blocking (and so a row's summation order) depends on M, which padding changes (11 -> 16
    # rows); those differences are fp32 ulps of the logits. (On CUDA the eager path pads too, so
    # graphs and enforce_eager run the same M: tests/test_cuda_graphs.py asserts bits there.)
    assert err == 0.0 if dtype == "bfloat16" or batch <= 8 else err <= 1e-5
    s = laid.decode_graph_stats()
    assert s["eager_steps"] == 48 and s["replays"] == 0 and s["graphs"] == 0
    assert plain.decode_graph_stats()["eager_steps"] == 0
