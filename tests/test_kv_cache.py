"""KVCache: page accounting (randomized against a Python model), plans, storage round trips,
attention over a cache through several steps, budget sizing and bad input."""
from __future__ import annotations

import math
import random

import pytest
import torch

from llama4_native import attention as attn
from llama4_native.attention import CacheFullError, KVCache


def make_cache(P=4, C=12, chunked=(1, 0, 1), KV=2, d=4, n_chunked=30, n_global=40, dtype="float32"):
    return KVCache(num_layers=len(chunked), layer_chunked=list(chunked), num_kv_heads=KV, head_dim=d,
                   dtype=dtype, page_size=P, chunk_size=C, num_pages_chunked=n_chunked,
                   num_pages_global=n_global)


def snapshot(cache, live):
    return (cache.free_pages(0), cache.free_pages(1),
            {s: (cache.length(s), cache.pages_of(s, 0), cache.pages_of(s, 1)) for s in live})


class Model:
    """What the cache should hold: per sequence its length, reserved pages and written K/V."""

    def __init__(self, cache, layers, KV, d, cap):
        self.cache, self.layers, self.KV, self.d, self.cap = cache, layers, KV, d, cap
        self.len, self.cov, self.k, self.v = {}, {}, {}, {}
        self.P, self.C = cache.config["page_size"], cache.config["chunk_size"]

    def add(self, s):
        self.len[s], self.cov[s] = 0, 0
        self.k[s] = torch.zeros(self.layers, self.cap, self.KV, self.d)
        self.v[s] = torch.zeros(self.layers, self.cap, self.KV, self.d)

    def free(self, s):
        for table in (self.len, self.cov, self.k, self.v):
            del table[s]

    def dead_pages(self, s):
        """Chunked logical pages wholly before the next position's chunk start."""
        return self.len[s] // self.C * self.C // self.P

    def check(self, bound):
        cache, P = self.cache, self.P
        for g in (0, 1):
            used = [p for s in self.len for p in cache.pages_of(s, g) if p >= 0]
            assert len(used) == len(set(used)), f"group {g}: a page is held by two sequences"
            assert cache.free_pages(g) + len(used) == cache.total_pages(g), f"group {g}: pages leaked"
        for s, L in self.len.items():
            assert cache.length(s) == L
            t0, t1 = cache.pages_of(s, 0), cache.pages_of(s, 1)
            assert len(t0) == len(t1) == self.cov[s] and self.cov[s] * P >= L
            assert all(p >= 0 for p in t1), "a global page went missing"
            dead = self.dead_pages(s)
            assert [p < 0 for p in t0] == [lp < dead for lp in range(len(t0))], \
                f"seq {s} (length {L}): freed chunked pages {t0} should be exactly pages < {dead}"
            assert sum(p >= 0 for p in t0) <= bound

    def check_storage(self):
        """Read every live position back through the page tables."""
        cache, P = self.cache, self.P
        for s, L in self.len.items():
            for layer in range(self.layers):
                g = cache.group_of(layer)
                table = torch.tensor(cache.pages_of(s, g), dtype=torch.long)
                lo = self.dead_pages(s) * P if g == 0 else 0
                pos = torch.arange(lo, L)
                pages = table[pos // P]
                assert (pages >= 0).all()
                got_k = cache.k(layer)[pages, pos % P]
                got_v = cache.v(layer)[pages, pos % P]
                assert torch.equal(got_k, self.k[s][layer, lo:L]), f"seq {s} layer {layer}: K differs"
                assert torch.equal(got_v, self.v[s][layer, lo:L]), f"seq {s} layer {layer}: V differs"


def check_plan(cache, plan, seqs, n_new):
    P = cache.config["page_size"]
    for g in (0, 1):
        tables = [cache.pages_of(s, g) for s in seqs]
        width = max(len(t) for t in tables)
        pt = plan["page_table"][g]
        assert pt.dtype == torch.int32 and tuple(pt.shape) == (len(seqs), width)
        for i, t in enumerate(tables):
            assert pt[i].tolist() == t + [-1] * (width - len(t))
        want = [tables[i][p // P] * P + p % P
                for i, s in enumerate(seqs) for p in range(cache.length(s), cache.length(s) + n_new[i])]
        assert plan["slots"][g].tolist() == want
    assert plan["query_seq"].tolist() == [i for i, n in enumerate(n_new) for _ in range(n)]
    assert plan["query_pos"].tolist() == [p for s, n in zip(seqs, n_new)
                                          for p in range(cache.length(s), cache.length(s) + n)]


MAX_LIVE = 8


@pytest.mark.parametrize("tight", ["chunked", "global"])
@pytest.mark.parametrize("P,C", [(4, 16), (5, 12), (3, 7), (16, 16), (8, 5)])
def test_randomized_operations(P, C, tight):
    """Thousands of seeded add / reserve+plan+write+commit / free / rejected operations; after each
    one the cache must agree with a Python model. `tight` picks the pool that runs out: with the
    chunked pool sized MAX_LIVE * bound, it must never be the one that is full."""
    rng = random.Random(P * 100 + C + len(tight))
    torch.manual_seed(P * 100 + C)
    KV, d, layers = 2, 4, 3
    bound = KVCache.chunked_pages_bound(P, C, C)
    # Global pool: ~1200 or ~240 tokens in all, so that sequence churn does or does not exhaust it.
    n_chunked, n_global = (2 * bound, 1200 // P) if tight == "chunked" else (MAX_LIVE * bound, 240 // P)
    cache = make_cache(P, C, (1, 0, 1), KV, d, n_chunked=n_chunked, n_global=n_global)
    model = Model(cache, layers, KV, d, cap=n_global * P)
    seen, full = set(), {"chunked": 0, "global": 0}
    steps = 0
    for op in range(3000):
        live = list(model.len)
        r = rng.random()
        if r < 0.12 or not live:
            if len(live) < MAX_LIVE:
                s = cache.add_sequence()
                assert s not in seen
                seen.add(s)
                model.add(s)
        elif r < 0.22:
            s = rng.choice(live)
            cache.free_sequence(s)
            model.free(s)
        elif r < 0.27:  # rejected calls change nothing
            before = snapshot(cache, live)
            s = rng.choice(live)
            bad = [
                (lambda: cache.free_sequence(10**9), "unknown sequence id 1000000000"),
                (lambda: cache.reserve([s], [C + 1]), f"at most chunk_size={C}"),
                (lambda: cache.reserve([s, s], [1, 1]), "appears twice"),
                (lambda: cache.reserve([s], [-1]), "must be >= 0"),
            ]
            over = model.cov[s] * P - model.len[s] + 1  # one token more than reserved
            if over <= C:
                bad += [(lambda: cache.commit([s], [over]), "call reserve first"),
                        (lambda: cache.plan([s], [over]), "call reserve first")]
            fn, msg = rng.choice(bad)
            with pytest.raises(ValueError, match=msg):
                fn()
            assert snapshot(cache, live) == before
        else:
            batch = rng.sample(live, rng.randint(1, min(4, len(live))))
            n_new = [1 if rng.random() < 0.6 else rng.randint(0, C) for _ in batch]
            before = snapshot(cache, live)
            try:
                cache.reserve(batch, n_new)
            except CacheFullError as e:
                full["chunked" if "chunked pool" in str(e) else "global"] += 1
                assert snapshot(cache, live) == before, "CacheFullError changed the cache"
                continue
            for s, n in zip(batch, n_new):
                model.cov[s] = max(model.cov[s], math.ceil((model.len[s] + n) / P))
            model.check(bound)  # the bound must hold at the peak, between reserve and commit
            plan = cache.plan(batch, n_new)
            check_plan(cache, plan, batch, n_new)
            T = sum(n_new)
            for layer in range(layers):
                k, v = torch.randn(T, KV, d), torch.randn(T, KV, d)
                attn.cache_write(cache.k(layer), cache.v(layer), k, v, plan["slots"][cache.group_of(layer)])
                t = 0
                for s, n in zip(batch, n_new):
                    L = model.len[s]
                    model.k[s][layer, L:L + n] = k[t:t + n]
                    model.v[s][layer, L:L + n] = v[t:t + n]
                    t += n
            # Sometimes commit fewer tokens than reserved (the rest stays reserved, reused later).
            n_commit = [n if rng.random() < 0.9 else rng.randint(0, n) for n in n_new]
            cache.commit(batch, n_commit)
            for s, n in zip(batch, n_commit):
                model.len[s] += n
            steps += 1
        model.check(bound)
        if op % 4 == 0:  # the read-back is the slow part; every 4th operation still covers it well
            model.check_storage()
    model.check_storage()
    assert steps > 1000
    assert full[tight] > 0, f"the {tight} pool should fill up sometimes: {full}"
    if tight == "global":
        assert full["chunked"] == 0, "the chunked pool overflowed its per-sequence bound"
    for s in list(model.len):
        cache.free_sequence(s)
    assert cache.free_pages(0) == cache.total_pages(0) and cache.free_pages(1) == cache.total_pages(1)


def test_attention_over_cache_steps():
    """A 2-layer fake decoder (one chunked, one global layer with temperature tuning) runs mixed
    prefill-chunk/decode steps; paged_attention through each plan equals dense attention."""
    P, C, H, KV, d = 4, 12, 4, 2, 8
    gen = torch.Generator().manual_seed(21)
    cache = make_cache(P, C, (1, 0), KV, d, n_chunked=60, n_global=80)
    seqs = [cache.add_sequence() for _ in range(3)]
    dense = {(s, layer): (torch.zeros(0, KV, d), torch.zeros(0, KV, d)) for s in seqs for layer in (0, 1)}
    schedule = [[(0, 12), (1, 5)], [(0, 7), (1, 1), (2, 12)], [(0, 1), (1, 1), (2, 3)]] + \
               [[(0, 1), (1, 1), (2, 1)]] * 12 + [[(1, 12), (2, 1)], [(0, 1), (1, 9)]]
    for step in schedule:
        batch, n_new = [seqs[i] for i, _ in step], [n for _, n in step]
        cache.reserve(batch, n_new)
        plan = cache.plan(batch, n_new)
        T = sum(n_new)
        pos = plan["query_pos"].tolist()
        for layer in (0, 1):
            g = cache.group_of(layer)
            q, k, v = (torch.randn(T, n, d, generator=gen) for n in (H, KV, KV))
            attn.cache_write(cache.k(layer), cache.v(layer), k, v, plan["slots"][g])
            chunk, tune = (C, 0.0) if g == 0 else (0, 0.5)
            out = attn.paged_attention(q, cache.k(layer), cache.v(layer), plan["page_table"][g],
                                       plan["query_seq"], plan["query_pos"], chunk_size=chunk,
                                       attn_scale=tune, floor_scale=4.0)
            t = 0
            for s, n in zip(batch, n_new):  # extend the dense copies, then the reference
                K, V = dense[(s, layer)]
                dense[(s, layer)] = (torch.cat([K, k[t:t + n]]), torch.cat([V, v[t:t + n]]))
                t += n
            t = 0
            for s, n in zip(batch, n_new):
                K, V = dense[(s, layer)]
                for _ in range(n):
                    p = pos[t]
                    lo = p // chunk * chunk if chunk else 0
                    f = math.log1p(math.floor((p + 1) / 4.0)) * tune + 1.0
                    qs = q[t].double() * f
                    kk = K[lo:p + 1].double().repeat_interleave(H // KV, dim=1)
                    vv = V[lo:p + 1].double().repeat_interleave(H // KV, dim=1)
                    w = torch.softmax(torch.einsum("hd,nhd->hn", qs, kk) * d ** -0.5, dim=-1)
                    torch.testing.assert_close(out[t].double(), torch.einsum("hn,nhd->hd", w, vv),
                                               rtol=1e-5, atol=1e-5)
                    t += 1
        cache.commit(batch, n_new)


def test_views_are_zero_copy_and_outlive_the_cache():
    cache = make_cache()
    k = cache.k(0)
    assert tuple(k.shape) == (30, 4, 2, 4) and k.dtype == torch.float32
    assert tuple(cache.k(1).shape) == (40, 4, 2, 4)
    assert k.data_ptr() == cache.k(0).data_ptr() and k.data_ptr() != cache.v(0).data_ptr()
    s = cache.add_sequence()
    cache.reserve([s], [3])
    plan = cache.plan([s], [3])
    new = torch.ones(3, 2, 4)
    attn.cache_write(cache.k(0), cache.v(0), new, new, plan["slots"][0])
    assert k.view(-1, 2, 4)[plan["slots"][0].long()].eq(1).all()
    del cache, plan
    assert k.sum().item() == 24.0  # the storage lives as long as a view of it


def test_free_returns_pages_and_chunk_freeing():
    cache = make_cache(P=4, C=8, chunked=(1, 0), n_chunked=10, n_global=10)
    s = cache.add_sequence()
    cache.reserve([s], [8])
    assert cache.pages_of(s, 0) == [0, 1] and cache.pages_of(s, 1) == [0, 1]
    cache.commit([s], [8])  # next position 8 starts chunk [8, 16): pages 0, 1 are dead
    assert cache.pages_of(s, 0) == [-1, -1] and cache.free_pages(0) == 10
    cache.reserve([s], [3])
    cache.commit([s], [3])
    assert cache.length(s) == 11 and cache.free_pages(0) == 9 and cache.free_pages(1) == 7
    cache.free_sequence(s)
    assert cache.free_pages(0) == 10 and cache.free_pages(1) == 10 and s not in cache
    with pytest.raises(ValueError, match=f"unknown sequence id {s}"):
        cache.length(s)


def test_cache_full_is_atomic():
    cache = make_cache(P=4, C=16, chunked=(1, 0), n_chunked=100, n_global=5)
    a, b = cache.add_sequence(), cache.add_sequence()
    cache.reserve([a], [12])  # 3 global pages
    cache.commit([a], [12])
    with pytest.raises(CacheFullError, match="global pool needs 3 free pages .* has 2 \\(of 5\\)"):
        cache.reserve([a, b], [4, 8])
    assert cache.free_pages(1) == 2 and cache.pages_of(b, 1) == [] and len(cache.pages_of(a, 1)) == 3
    assert cache.length(a) == 12 and cache.length(b) == 0
    assert issubclass(CacheFullError, RuntimeError)
    cache.reserve([b], [8])
    assert cache.free_pages(1) == 0


def test_bad_ids_and_layers():
    cache = make_cache()
    with pytest.raises(ValueError, match="unknown sequence id 7"):
        cache.free_sequence(7)
    with pytest.raises(ValueError, match="unknown sequence id 3"):
        cache.reserve([3], [1])
    with pytest.raises(ValueError, match="'seqs' has 1 entries but 'n_new' has 2"):
        cache.reserve([cache.add_sequence()], [1, 2])
    with pytest.raises(ValueError, match="layer 3 out of range"):
        cache.k(3)
    with pytest.raises(ValueError, match="group must be 0"):
        cache.free_pages(2)


def test_from_budget():
    kw = dict(num_layers=4, layer_chunked=[1, 1, 1, 0], num_kv_heads=2, head_dim=8, dtype="bfloat16",
              page_size=16, chunk_size=64)
    bound = KVCache.chunked_pages_bound(16, 64, 32)
    assert bound == 4 + 2 + 1
    page0, page1 = 2 * 16 * 2 * 8 * 2 * 3, 2 * 16 * 2 * 8 * 2 * 1  # K+V bytes of a page, per group
    budget = 3 * bound * page0 + 100 * page1 + 500
    c = KVCache.from_budget(**kw, budget_bytes=budget, max_seqs=3, max_step_tokens=32)
    assert c.total_pages(0) == 3 * bound and c.total_pages(1) == 100
    assert c.config["num_pages_chunked"] == 21 and c.config["dtype"] == "bfloat16"
    # max_step_tokens defaults to chunk_size.
    c = KVCache.from_budget(**kw, budget_bytes=budget, max_seqs=3)
    assert c.total_pages(0) == 3 * KVCache.chunked_pages_bound(16, 64, 64)
    # Less than the cap: the per-token split decides (40 pages each, capped at 3 sequences' bound).
    c = KVCache.from_budget(**kw, budget_bytes=3 * bound * page0, max_seqs=3, max_step_tokens=32)
    assert c.total_pages(0) == (3 * bound * page0) // (page0 + page1)
    assert c.total_pages(1) == (3 * bound * page0 - c.total_pages(0) * page0) // page1
    # One sequence needs a chunk window (bound pages) and one step's global pages (2 + 1).
    c = KVCache.from_budget(**kw, budget_bytes=bound * page0 + 3 * page1, max_seqs=3, max_step_tokens=32)
    assert c.total_pages(0) == bound and c.total_pages(1) == 3
    with pytest.raises(ValueError, match="too small: one sequence needs 7 chunked-layer pages"):
        KVCache.from_budget(**kw, budget_bytes=bound * page0 + 2 * page1, max_seqs=3, max_step_tokens=32)
    with pytest.raises(ValueError, match="max_step_tokens"):
        KVCache.from_budget(**kw, budget_bytes=budget, max_seqs=3, max_step_tokens=65)
    g = KVCache.from_budget(**dict(kw, layer_chunked=[0] * 4, chunk_size=0), budget_bytes=10 * 4 * page1,
                            max_seqs=2)
    assert g.total_pages(0) == 0 and g.total_pages(1) == 10


def test_bad_config():
    with pytest.raises(ValueError, match="'layer_chunked' must have 3 entries"):
        KVCache(num_layers=3, layer_chunked=[1, 0], num_kv_heads=1, head_dim=4, chunk_size=8,
                num_pages_chunked=1, num_pages_global=1)
    with pytest.raises(ValueError, match="chunked layers need 'chunk_size' > 0"):
        make_cache(C=0)
    with pytest.raises(ValueError, match="dtype must be 'float32', 'bfloat16', 'float16' or 'float8_e4m3fn'"):
        make_cache(dtype="int8")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        KVCache(num_layers=1, layer_chunked=[0], num_kv_heads=1, head_dim=4, device="tpu", chunk_size=0,
                num_pages_chunked=0, num_pages_global=1)


def test_global_only_model():
    """No chunked layers (attention_chunk_size None): group 0 is inert, its slots are -1, and no
    per-step token limit applies."""
    cache = KVCache(num_layers=2, layer_chunked=[0, 0], num_kv_heads=1, head_dim=4, dtype="float32",
                    page_size=4, chunk_size=0, num_pages_chunked=0, num_pages_global=8)
    s = cache.add_sequence()
    with pytest.raises(CacheFullError):
        cache.reserve([s], [50])
    cache.reserve([s], [30])
    plan = cache.plan([s], [30])
    assert (plan["slots"][0] == -1).all() and (plan["page_table"][0] == -1).all()
    assert plan["slots"][1].tolist() == list(range(30))
    cache.commit([s], [30])
    assert cache.free_pages(1) == 0 and cache.total_pages(0) == 0
