"""Soak (bounded for CI; benchmarks/soak.py runs the long version): thousands of random scheduler
operations (tests/soak_driver.py) in a KV cache small enough to preempt, with batch limits from 1
to 32. Afterwards no KV page is leaked, resident memory stayed flat after the warm-up, and the
survivors' tokens equal each request run alone."""
from __future__ import annotations

import gc
import os
import random
import sys

import pytest

import llama4_native as l4

from soak_driver import Soak

pytestmark = pytest.mark.slow

OPERATIONS = 4000  # CI's share; benchmarks/soak.py runs 10^4 and more
CHECKED = 60       # survivors compared with their run alone (all of them in benchmarks/soak.py)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_soak(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    # About 200 tokens of KV (4 layers, 2 KV heads of 24, fp32): 32 running requests cannot all fit.
    model = l4.load(folder, dtype="float32", kv_cache_bytes=2 * 163840, max_sequences=32)
    free = [model._engine.free_pages(g) for g in (0, 1)]
    soak = Soak(model, seed=0, vocab=512, chunk=8)

    soak.phase(300, max_batch=8)  # warm-up: allocator pools, thread pools
    gc.collect()
    warm = rss_bytes()
    batches = [1, 2, 4, 8, 16, 32]
    for max_batch in batches:
        soak.phase((OPERATIONS - 300) // len(batches), max_batch=max_batch)
    gc.collect()
    grown = rss_bytes() / warm - 1

    s = soak.stats
    assert soak.unfinished() == 0, "a request neither finished nor was cancelled"
    assert [model._engine.free_pages(g) for g in (0, 1)] == free, "KV pages leaked"
    assert grown < 0.05, f"resident memory grew {grown:.1%} after the warm-up"
    assert s.preemptions > 0 and s.refused > 0 and s.cancelled > 0 and s.abandoned > 0, s
    assert s.max_running > 8, s

    survivors = soak.survivors()
    assert len(survivors) > 100, s
    for r, k in random.Random(1).sample(survivors, CHECKED):
        assert r.tokens[k] == soak.alone(r)[k], (r.prompt[:8], len(r.prompt), k, r.temperature, r.seed)
