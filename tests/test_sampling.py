"""Sampling statistics of the Python reference sampler (tests/python_sampler.py: the sampler
generate() used before the C++ one) against their definitions."""
from __future__ import annotations

import pytest
import torch

from python_sampler import SamplingParams, filtered_probs, select_token


def _logits(seed=0, n=64):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 3


def test_top_k_never_leaves_the_k_best():
    logits = _logits()
    best = set(torch.topk(logits, 5).indices.tolist())
    p = SamplingParams(temperature=1.5, top_k=5)
    g = torch.Generator().manual_seed(0)
    drawn = {select_token(logits, p, [], g) for _ in range(2000)}
    assert drawn <= best and len(drawn) == 5  # every one of the k reachable, nothing else
    probs = filtered_probs(logits, p)
    assert set(probs.nonzero().flatten().tolist()) == best


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p):
    logits = _logits(1)
    p = SamplingParams(temperature=1.0, top_p=top_p)
    kept = set(filtered_probs(logits, p).nonzero().flatten().tolist())
    full = torch.softmax(logits.double(), -1)
    order = torch.argsort(full, descending=True).tolist()
    mass, want = 0.0, set()
    for t in order:  # smallest prefix of the sorted distribution whose mass reaches top_p
        want.add(t)
        mass += float(full[t])
        if mass >= top_p:
            break
    assert kept == want


def test_min_p_drops_tokens_below_a_fraction_of_the_best():
    logits = _logits(2)
    p = SamplingParams(temperature=1.0, min_p=0.2)
    full = torch.softmax(logits.double(), -1)
    kept = set(filtered_probs(logits, p).nonzero().flatten().tolist())
    assert kept == set((full >= 0.2 * full.max()).nonzero().flatten().tolist())


def test_temperature_to_zero_equals_greedy():
    g = torch.Generator().manual_seed(0)
    for seed in range(20):
        logits = _logits(seed)
        greedy = select_token(logits, SamplingParams(temperature=0.0), [], None)
        assert greedy == int(logits.argmax())
        assert select_token(logits, SamplingParams(temperature=1e-4), [], g) == greedy


def test_sampling_frequencies_follow_the_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    p = SamplingParams(temperature=1.0)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([select_token(logits, p, [], g) for _ in range(20000)]), minlength=4)
    expected = torch.softmax(logits, -1) * 20000
    assert ((counts - expected).abs() < 5 * expected.sqrt() + 5).all()  # 5-sigma binomial band


def test_repetition_penalty_lowers_seen_tokens():
    logits = torch.tensor([3.0, 2.9, -1.0, 0.5])
    assert select_token(logits, SamplingParams(), [], None) == 0
    # CTRL rule: a positive seen logit is divided by the penalty, a negative one multiplied.
    assert select_token(logits, SamplingParams(repetition_penalty=1.2), [0], None) == 1
    assert select_token(torch.tensor([-1.0, -1.1]), SamplingParams(repetition_penalty=2.0), [0], None) == 1


@pytest.mark.parametrize("kwargs,name", [
    (dict(temperature=-1.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(min_p=1.0), "min_p"), (dict(repetition_penalty=0.0), "repetition_penalty"),
])
def test_bad_parameters_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SamplingParams(**kwargs)
