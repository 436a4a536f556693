"""Sampling statistics of the C++ sampler: over many seeds, the empirical frequencies against the
exact filtered distribution (temperature, top-k, top-p, min-p, penalties and combinations),
by Pearson's chi-square at a one-sided level of 1e-6 (the bound follows from the cell count
alone). The draws are seeded, so each test gives the same verdict on every run."""
from __future__ import annotations

import pytest
import torch

from llama4_native import ops
from sampling_reference import chi2_stat, chi2_upper, filtered_probs, penalize

P = ops.SamplingParams
N_DRAWS = 40000

CASES = [  # (V, logits scale, params)
    (64, 1.5, dict(temperature=0.7)),
    (64, 1.5, dict(temperature=1.5)),
    (64, 1.5, dict(temperature=1.2, top_k=5)),
    (64, 1.5, dict(temperature=1.0, top_p=0.5)),
    (64, 1.5, dict(temperature=1.0, top_p=0.9)),
    (64, 1.5, dict(temperature=1.0, min_p=0.1)),
    (64, 1.5, dict(temperature=0.9, top_k=10, top_p=0.8, min_p=0.05)),
    (64, 1.5, dict(temperature=1.0, top_k=40, top_p=0.95)),
    (3000, 2.0, dict(temperature=0.8, top_p=0.7)),
    (3000, 2.0, dict(temperature=1.0, top_k=30, min_p=0.02)),
]


def _row(V, scale, seed):
    return torch.randn(V, generator=torch.Generator().manual_seed(seed)) * scale


def _check(counts: torch.Tensor, want: torch.Tensor):
    support = want > 0
    assert counts[~support].sum() == 0, "drew a token outside the filtered distribution"
    often = want * N_DRAWS >= 20
    assert (counts[often] > 0).all(), "a likely token was never drawn"
    stat, df = chi2_stat(counts[support], want[support], N_DRAWS)
    assert stat < chi2_upper(df), (stat, df, chi2_upper(df))


@pytest.mark.parametrize("V,scale,kw", CASES)
def test_frequencies_follow_the_filtered_distribution(V, scale, kw):
    x = _row(V, scale, seed=V + len(kw))
    want = filtered_probs(x, kw["temperature"], kw.get("top_k", 0), kw.get("top_p", 1.0), kw.get("min_p", 0.0))
    tok, *_, status = ops.sample(x.expand(N_DRAWS, V), P(**kw), seeds=range(N_DRAWS))
    assert (status == 0).all()
    _check(torch.bincount(tok.long(), minlength=V), want)


def test_frequencies_over_token_indices_and_sample_indices():
    x = _row(64, 1.5, seed=1)
    want = filtered_probs(x, 1.0, top_p=0.9)
    n = N_DRAWS // 2
    a, *_ = ops.sample(x.expand(n, 64), P(temperature=1.0, top_p=0.9), seeds=[5] * n, token_indices=range(n))
    b, *_ = ops.sample(x.expand(n, 64), P(temperature=1.0, top_p=0.9), seeds=[5] * n, sample_indices=range(n))
    _check(torch.bincount(torch.cat([a, b]).long(), minlength=64), want)


def test_frequencies_with_penalties():
    V = 64
    x = _row(V, 1.5, seed=3)
    top = torch.topk(x, 6).indices.tolist()
    prompt, output = [top[0], top[1], 7, 8], [top[0], top[2], top[2], top[3]]
    kw = dict(temperature=1.0, top_p=0.95, repetition_penalty=1.4, presence_penalty=0.3, frequency_penalty=0.4)
    y = penalize(x, 1.4, 0.3, 0.4, prompt, output)
    want = filtered_probs(y, 1.0, top_p=0.95)
    tok, *_ = ops.sample(x.expand(N_DRAWS, V), P(**kw), seeds=range(N_DRAWS),
                         prompt_tokens=[prompt] * N_DRAWS, output_tokens=[output] * N_DRAWS)
    _check(torch.bincount(tok.long(), minlength=V), want)


def test_ties_at_the_top_k_and_top_p_boundaries_keep_the_lowest_ids():
    x = torch.tensor([0.0, 2.0, 2.0, 2.0, 2.0, 1.0, 2.0, -1.0])
    tok, *_ = ops.sample(x.expand(4000, 8), P(temperature=1.0, top_k=3), seeds=range(4000))
    assert set(tok.tolist()) == {1, 2, 3}
    # Five equal tokens hold ~0.93 of the mass: top_p = 0.5 keeps the first three of them.
    tok, *_ = ops.sample(x.expand(4000, 8), P(temperature=1.0, top_p=0.5), seeds=range(4000))
    assert set(tok.tolist()) == {1, 2, 3}


def test_reference_agrees_with_the_python_sampler():
    import python_sampler as sampling  # the Python sampler generate() used before the C++ one
    for V, scale, kw in CASES:
        x = _row(V, scale, seed=V + len(kw))
        p = sampling.SamplingParams(**kw)
        ours = filtered_probs(x, kw["temperature"], kw.get("top_k", 0), kw.get("top_p", 1.0), kw.get("min_p", 0.0))
        theirs = sampling.filtered_probs(x, p).double()
        assert torch.allclose(ours, theirs, atol=1e-6), kw
