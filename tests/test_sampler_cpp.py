"""The C++ sampler (llama4/sampling.h) on the CPU: Philox against Random123's published vectors
and a pure-Python implementation, the seeding contract, greedy, penalties, logprobs, determinism,
tiny temperatures, non-finite rows and parameter errors. Sampling statistics:
test_sampler_stats.py; CUDA parity: test_sampler_cuda.py."""
from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from llama4_native import _C, ops
from sampling_reference import draw_bits, penalize, philox4x32_10

P = ops.SamplingParams
V_LLAMA4 = 202048


def _logits(B, V, seed=0, scale=3.0):
    return torch.randn(B, V, generator=torch.Generator().manual_seed(seed)) * scale


# ---- Philox and the seeding contract ----------------------------------------------------------

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4] key[2] -> output[4].
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_known_answers(ctr, key, want):
    assert _C.philox4x32_10(ctr, key) == want
    assert philox4x32_10(ctr, key) == want  # the test's own implementation is right too


def test_philox_matches_python_and_the_draw_follows_the_contract():
    rng = random.Random(0)
    for _ in range(300):
        ctr = [rng.getrandbits(32) for _ in range(4)]
        key = [rng.getrandbits(32) for _ in range(2)]
        assert _C.philox4x32_10(ctr, key) == philox4x32_10(ctr, key)
        seed, s, t = rng.getrandbits(64), rng.getrandbits(31), rng.getrandbits(63)
        assert _C.sampler_draw_bits(seed, s, t) == draw_bits(seed, s, t)


def test_uniform_row_draws_exactly_the_contracts_token():
    # Equal logits give every kept token the weight 2^F exactly, so the inverse CDF in id order
    # picks the (floor(u * n / 2^64))-th kept token: the whole draw is checkable bit for bit.
    V = 1000
    finite = sorted(random.Random(1).sample(range(V), 37))
    row = torch.full((V,), float("-inf"))
    row[finite] = 0.5
    cases = [(seed, s, t) for seed in (0, 1, 2**63 + 5) for s in (0, 3) for t in (0, 1, 2**33)]
    x = row.expand(len(cases), V)
    tok, *_, status = ops.sample(x, P(temperature=0.9), seeds=[c[0] for c in cases],
                                 sample_indices=[c[1] for c in cases], token_indices=[c[2] for c in cases])
    assert (status == 0).all()
    want = [finite[(draw_bits(*c) * len(finite)) >> 64] for c in cases]
    assert tok.tolist() == want


# ---- greedy, penalties, logprobs ---------------------------------------------------------------

def test_greedy_is_argmax_with_ties_to_the_lowest_id():
    x = _logits(6, 5000, seed=2)
    x[1, [7, 900, 4000]] = 50.0  # ties at the max
    x[2, :] = 1.0
    x[3, 4999] = 99.0
    tok, lp, _, _, status = ops.sample(x, P())
    assert (status == 0).all()
    assert tok.tolist() == torch.argmax(x, dim=1).tolist()  # torch's argmax: first of the ties
    assert tok[1] == 7 and tok[2] == 0


def test_strided_and_broadcast_rows():
    wide = _logits(4, 3000, seed=3)
    x = wide[:, 100:2100]  # row stride 3000
    tok, *_ = ops.sample(x, P())
    assert tok.tolist() == torch.argmax(x, 1).tolist()
    tok, *_ = ops.sample(wide[0].expand(3, 3000), P())  # row stride 0
    assert tok.tolist() == [int(torch.argmax(wide[0]))] * 3
    tok, *_ = ops.sample(wide.t().contiguous().t(), P())  # column-major: copied first
    assert tok.tolist() == torch.argmax(wide, 1).tolist()


def test_penalties_match_a_torch_formulation():
    rng = random.Random(4)
    V, B = 300, 64
    x = _logits(B, V, seed=4, scale=2.0)
    params, prompts, outputs, want = [], [], [], []
    for r in range(B):
        rep = rng.choice([1.0, 1.3, 0.7, 2.5])
        pres, freq = rng.choice([0.0, 0.5, -0.4, 2.0]), rng.choice([0.0, 0.3, -1.0, 1.5])
        # Favour the best tokens so that the penalties change the argmax.
        top = torch.topk(x[r], 8).indices.tolist()
        prompt = [rng.choice(top + list(range(V))) for _ in range(rng.randrange(0, 12))]
        output = [rng.choice(top) for _ in range(rng.randrange(0, 20))]
        params.append(P(repetition_penalty=rep, presence_penalty=pres, frequency_penalty=freq))
        prompts.append(prompt)
        outputs.append(output)
        want.append(int(torch.argmax(penalize(x[r], rep, pres, freq, prompt, output))))
    tok, *_, status = ops.sample(x, params, prompt_tokens=prompts, output_tokens=outputs)
    assert (status == 0).all()
    assert tok.tolist() == want
    changed = sum(w != int(torch.argmax(x[r])) for r, w in enumerate(want))
    assert changed >= B // 4  # the test exercises the penalties


def test_presence_and_frequency_ignore_the_prompt():
    x = torch.tensor([[3.0, 2.9, 0.0]])
    tok, *_ = ops.sample(x, P(presence_penalty=2.0, frequency_penalty=2.0), prompt_tokens=[[0, 0, 0]])
    assert tok.item() == 0  # prompt-only occurrences: no presence/frequency penalty
    tok, *_ = ops.sample(x, P(presence_penalty=0.2), output_tokens=[[0]])
    assert tok.item() == 1
    tok, *_ = ops.sample(x, P(repetition_penalty=1.1), prompt_tokens=[[0]])
    assert tok.item() == 1  # 3.0 / 1.1 < 2.9: repetition looks at the prompt too


def _logprob_tol(ref: torch.Tensor) -> torch.Tensor:
    # lp = float((x - max) - ln sum): exp_weight is within 1 ulp (<= 2^-23 relative) of e^s, the
    # fixed-point truncation moves the sum by <= V 2^-F <= 2^-27 relative; then two float
    # roundings, of x - max (|x - max| <= |lp|) and of lp, each <= 2^-24 |lp|.
    return 2.0**-23 + 2.0**-27 + 2.0**-23 * ref.abs()


@pytest.mark.parametrize("V", [7, 1000, V_LLAMA4])
def test_logprobs_and_top_n_match_log_softmax(V):
    B = 6
    x = _logits(B, V, seed=5 + V, scale=4.0)
    x[2, :5] = x[2].max() + 1.0  # five-way tie at the top
    x[3, 1] = float("-inf")
    n = min(V, 20)
    params = [P(temperature=0.8, logprobs=n), P(logprobs=n), P(temperature=1.0, top_p=0.9, logprobs=5),
              P(temperature=1.0, logprobs=0), P(temperature=1.3, top_k=3, logprobs=3), P(logprobs=-1)]
    tok, lp, ids, top_lp, status = ops.sample(x, params, seeds=list(range(B)))
    assert (status == 0).all()
    ref = torch.log_softmax(x.double(), dim=1)
    for r, p in enumerate(params):
        if p.logprobs < 0:
            assert torch.isnan(lp[r]) and (ids[r] == -1).all()
            continue
        want = ref[r, tok[r].long()]
        assert abs(float(lp[r]) - float(want)) <= float(_logprob_tol(want)), (r, float(lp[r]), float(want))
        order = np.lexsort((np.arange(V), -x[r].double().numpy()))[: p.logprobs]  # value desc, id asc
        assert ids[r, : p.logprobs].tolist() == order.tolist()
        got, exp_ = top_lp[r, : p.logprobs].double(), ref[r, torch.from_numpy(order)]
        assert ((got - exp_).abs() <= _logprob_tol(exp_)).all()
        assert (ids[r, p.logprobs:] == -1).all() and torch.isinf(top_lp[r, p.logprobs:]).all()


# ---- determinism ------------------------------------------------------------------------------

def test_draws_depend_on_seed_sample_and_token_index_only():
    V = 4096
    x = _logits(8, V, seed=6, scale=1.0)
    params = [P(temperature=1.0), P(temperature=0.7, top_p=0.9), P(temperature=1.2, top_k=40),
              P(temperature=1.0, min_p=0.1), P(temperature=1.0, top_k=100, top_p=0.5, min_p=0.01),
              P(temperature=0.5, repetition_penalty=1.2), P(temperature=2.0), P()]
    seeds, samples, steps = [11, 12, 13, 14, 15, 16, 17, 18], [0, 1, 2, 0, 1, 2, 0, 1], [5, 0, 9, 2, 7, 1, 3, 4]
    prompts = [[1, 2, 3]] * 8
    base, *_ = ops.sample(x, params, seeds=seeds, sample_indices=samples, token_indices=steps, prompt_tokens=prompts)
    perm = [5, 2, 7, 0, 1, 6, 3, 4]
    other = _logits(5, V, seed=7)
    xs = torch.cat([x[perm], other])
    tok, *_ = ops.sample(xs, [params[i] for i in perm] + [P(temperature=1.0)] * 5,
                         seeds=[seeds[i] for i in perm] + [99] * 5, sample_indices=[samples[i] for i in perm] + [0] * 5,
                         token_indices=[steps[i] for i in perm] + [0] * 5, prompt_tokens=[[1, 2, 3]] * 13)
    assert tok[:8].tolist() == [base[i].item() for i in perm]
    for r in range(8):  # alone (B = 1: the row's passes split over the threads instead)
        t, *_ = ops.sample(x[r : r + 1], params[r], seeds=[seeds[r]], sample_indices=[samples[r]],
                           token_indices=[steps[r]], prompt_tokens=[[1, 2, 3]])
        assert t.item() == base[r].item()


def test_sample_indices_give_different_draws():
    x = _logits(1, 64, seed=8, scale=0.5).expand(32, 64)
    tok, *_ = ops.sample(x, P(temperature=1.0), seeds=[7] * 32, sample_indices=list(range(32)))
    assert len(set(tok.tolist())) >= 10  # 32 draws from a near-flat 64-way distribution
    again, *_ = ops.sample(x, P(temperature=1.0), seeds=[7] * 32, sample_indices=list(range(32)))
    assert again.tolist() == tok.tolist()
    seeded, *_ = ops.sample(x, P(temperature=1.0, seed=7), seeds=[123] * 32, sample_indices=list(range(32)))
    assert seeded.tolist() == tok.tolist()  # params.seed wins over the per-row fallback


_SUBPROCESS = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from llama4_native import ops
P = ops.SamplingParams
x = torch.randn(3, 202048, generator=torch.Generator().manual_seed(9)) * 2
ps = [P(temperature=0.9, top_p=0.8, logprobs=4), P(temperature=1.0, top_k=500, min_p=0.001, logprobs=2),
      P(temperature=0.6, repetition_penalty=1.3, logprobs=1)]
out = []
for r in range(3):  # one row at a time: the passes split over the threads
    for t in range(4):
        res = ops.sample(x[r:r + 1], ps[r], seeds=[r], token_indices=[t], prompt_tokens=[[1, 5, 9]])
        out.append([v.view(torch.int32).tolist() if v.dtype == torch.float32 else v.tolist() for v in res])
print(out)
"""


def test_same_bits_for_any_thread_count_and_without_avx512():
    here = os.path.dirname(__file__)
    def run(**env):
        e = dict(os.environ, **env)
        return subprocess.run([sys.executable, "-c", _SUBPROCESS, here], env=e, capture_output=True,
                              text=True, check=True, cwd=here).stdout
    ref = run(OMP_NUM_THREADS="2")
    assert run(OMP_NUM_THREADS="1") == ref
    assert run(OMP_NUM_THREADS="3", LLAMA4_NO_AVX512="1") == ref


# ---- tiny temperatures, non-finite rows, errors ------------------------------------------------

@pytest.mark.parametrize("T", [1e-38, 1e-30, 1e-40, 1e-45, 1e-20])
def test_tiny_temperature_is_greedy(T):
    x = _logits(16, 2000, seed=10)
    x[0, 0] = 100.0  # the best token first: the old Python sampler returned the last id here
    tok, *_, status = ops.sample(x, P(temperature=T, top_p=0.9), seeds=list(range(16)))
    assert (status == 0).all()
    assert tok.tolist() == torch.argmax(x, 1).tolist()
    x[1, [3, 10]] = 500.0  # tied best tokens
    tok, *_ = ops.sample(x, P(temperature=T), seeds=list(range(16)))
    with np.errstate(over="ignore"):
        overflows = np.isinf(np.float32(500.0) / np.float32(T))
    if overflows:  # x / T overflows: exactly greedy, lowest id
        assert tok[1].item() == 3
    else:  # a legitimate distribution: uniform over the two best
        assert tok[1].item() in (3, 10)


def test_non_finite_rows_fail_alone():
    x = _logits(6, 500, seed=11)
    x[1, 17] = float("nan")
    x[2, 3] = float("inf")
    x[3, :] = float("-inf")
    x[4, :250] = float("-inf")  # -inf is a masked token: fine
    params = [P(temperature=1.0, logprobs=2)] * 6
    tok, lp, ids, _, status = ops.sample(x, params, seeds=list(range(6)))
    assert status.tolist() == [0, 1, 1, 2, 0, 0]
    assert tok[1:4].tolist() == [-1, -1, -1] and torch.isnan(lp[1:4]).all() and (ids[1:4] == -1).all()
    assert tok[4].item() >= 250
    alone = [ops.sample(x[r : r + 1], params[r], seeds=[r])[0].item() for r in (0, 4, 5)]
    assert [tok[0].item(), tok[4].item(), tok[5].item()] == alone
    assert "NaN" in ops.sample_status_message(1) and "-inf" in ops.sample_status_message(2)


def test_penalty_overflow_is_a_row_error():
    x = torch.tensor([[3e38, 1.0, 0.0], [3.0, 1.0, 0.0]])
    tok, *_, status = ops.sample(x, P(repetition_penalty=1e-3), prompt_tokens=[[0], [0]])
    assert status.tolist() == [3, 0] and tok.tolist() == [-1, 0]


@pytest.mark.parametrize("kwargs,name", [
    (dict(temperature=-1.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(temperature=float("inf")), "temperature"), (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(min_p=1.0), "min_p"),
    (dict(min_p=-0.1), "min_p"), (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(presence_penalty=2.5), "presence_penalty"), (dict(frequency_penalty=-3.0), "frequency_penalty"),
    (dict(frequency_penalty=float("nan")), "frequency_penalty"), (dict(logprobs=21), "logprobs"),
    (dict(logprobs=-2), "logprobs"), (dict(seed=-1), "seed"), (dict(temperature="hot"), "temperature"),
])
def test_bad_parameters_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        P(**kwargs)


def test_bad_op_arguments():
    x = _logits(2, 10)
    with pytest.raises(ValueError, match="prompt_tokens.*vocabulary"):
        ops.sample(x, P(repetition_penalty=1.2), prompt_tokens=[[3], [10]])
    with pytest.raises(TypeError, match="logits"):
        ops.sample(x.double(), P())
    with pytest.raises(ValueError, match="seeds"):
        ops.sample(x, P(), seeds=[1])
    for kw, name in [(dict(seeds=[-1, 2]), "seeds"), (dict(seeds=[2**64, 0]), "seeds"),
                     (dict(token_indices=[2**63, 0]), "token_indices"),
                     (dict(sample_indices=[0, 2**31]), "sample_indices"),
                     (dict(prompt_tokens=[[2**40], [1]]), "prompt_tokens"),
                     (dict(output_tokens=[[1], [-5]]), "output_tokens")]:
        with pytest.raises(ValueError, match=name):
            ops.sample(x, P(repetition_penalty=1.2), **kw)
    with pytest.raises(ValueError, match="rows"):
        ops.sample(x, [P()] * 3)
    empty = ops.sample(torch.zeros(0, 10), [])
    assert empty[0].shape == (0,)
    assert ops.sample_workspace_bytes(x, P(repetition_penalty=1.2), prompt_tokens=[[1], [2]]) == 0  # CPU


# ---- the Llama 4 vocabulary ---------------------------------------------------------------------

def test_top_p_at_full_vocabulary_stays_in_the_nucleus():
    from sampling_reference import filtered_probs

    x = _logits(1, V_LLAMA4, seed=12, scale=3.0)[0]
    want = filtered_probs(x, 0.8, top_p=0.9)
    support = set(torch.nonzero(want).flatten().tolist())
    assert 1000 < len(support) < V_LLAMA4 // 2  # a large nucleus: a 1024-token prefix cannot hold it
    n = 512
    tok, *_, status = ops.sample(x.expand(n, -1), P(temperature=0.8, top_p=0.9), seeds=list(range(n)))
    assert (status == 0).all()
    assert set(tok.tolist()) <= support
    # Draws land in the less likely half of the nucleus as often as its mass says (5 sigma).
    probs = want[tok.long()]
    low = float(want[list(support)].median())
    frac_low = float((probs <= low).double().mean())
    mass_low = float(want[(want > 0) & (want <= low)].sum())
    assert abs(frac_low - mass_low) < 5 * (mass_low * (1 - mass_low) / n) ** 0.5
