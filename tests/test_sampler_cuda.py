"""The CUDA sampler (csrc/cuda/sampling.cu) against its CPU twin: the same ops.sample call on CUDA
and CPU tensors must give the same tokens, statuses, top ids and the same logprob bits (the
contract of llama4/sampling.h: exact fixed-point sums and shared per-token arithmetic, so no
tolerance). A NaN only has to be a NaN (GPU NaNs have another sign and payload).

All tests are marked `cuda` and skipped unless this build has the CUDA backend, it sees a GPU, and
torch is a CUDA build."""
from __future__ import annotations

import random

import pytest
import torch

import llama4_native as l4
from llama4_native import ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (l4.cuda_available() and torch.cuda.is_available()),
        reason="needs the CUDA backend, a CUDA GPU and a CUDA build of torch",
    ),
]

P = ops.SamplingParams
V_LLAMA4 = 202048

MODES = [
    dict(),
    dict(temperature=0.8),
    dict(temperature=1.0),
    dict(temperature=1.3, top_k=50),
    dict(temperature=0.8, top_p=0.9),
    dict(temperature=1.0, top_p=0.3),
    dict(temperature=0.8, min_p=0.05),
    dict(temperature=0.9, top_k=500, top_p=0.8, min_p=0.01),
    dict(temperature=1.0, top_k=3, top_p=0.5),
    dict(temperature=0.7, repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.4),
    dict(temperature=1.0, top_p=0.95, repetition_penalty=0.8, frequency_penalty=-0.5),
    dict(temperature=1e-38, top_p=0.9),
    dict(repetition_penalty=1.5),
]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.cpu().contiguous().view(torch.int32)


def assert_same(got, want) -> None:
    """(tokens, logprobs, top_ids, top_logprobs, status) of CUDA vs CPU, bit for bit."""
    names = ["tokens", "logprobs", "top_ids", "top_logprobs", "status"]
    for name, g, w in zip(names, got, want):
        g, w = g.cpu(), w.cpu()
        assert g.shape == w.shape and g.dtype == w.dtype, (name, g.shape, w.shape)
        if g.is_floating_point():
            assert torch.equal(torch.isnan(g), torch.isnan(w)), f"{name}: NaN positions differ"
            ok = (_bits(g) == _bits(w)) | torch.isnan(g)
        else:
            ok = g == w
        if not bool(ok.all()):
            first = tuple((~ok).nonzero()[0].tolist())
            raise AssertionError(f"{name}: {int((~ok).sum())} of {ok.numel()} differ; first at {first}: "
                                 f"cuda {g[first].item()!r} vs cpu {w[first].item()!r}")


def both(x: torch.Tensor, params, **kw):
    """ops.sample on the GPU copy of x (same strides) and on x itself."""
    xc = torch.empty_strided(x.shape, x.stride(), device="cuda")
    xc.copy_(x)
    got = ops.sample(xc, params, **kw)
    torch.cuda.synchronize()
    want = ops.sample(x, params, **kw)
    return got, want


def _batch(B, V, seed, scale):
    rng = random.Random(seed)
    x = torch.randn(B, V, generator=torch.Generator().manual_seed(seed)) * scale
    params, prompts, outputs = [], [], []
    for r in range(B):
        kw = dict(MODES[r % len(MODES)])
        kw["logprobs"] = [-1, 0, 5, 20][r % 4]
        params.append(P(**kw))
        top = torch.topk(x[r], min(10, V)).indices.tolist()
        prompts.append([rng.randrange(V) for _ in range(rng.randrange(0, 30))] + top[:2])
        outputs.append([rng.choice(top) for _ in range(rng.randrange(0, 12))])
    return x, params, prompts, outputs


@pytest.mark.parametrize("V,scale", [(V_LLAMA4, 3.0), (V_LLAMA4, 0.5), (3000, 2.0), (64, 1.5), (7, 1.0)])
def test_every_mode_matches_the_cpu(V, scale):
    B = 2 * len(MODES)
    x, params, prompts, outputs = _batch(B, V, seed=V + int(10 * scale), scale=scale)
    kw = dict(seeds=range(1000, 1000 + B), sample_indices=[r % 3 for r in range(B)],
              token_indices=[7 * r for r in range(B)], prompt_tokens=prompts, output_tokens=outputs)
    got, want = both(x, params, **kw)
    assert (want[4] == 0).all()
    assert_same(got, want)
    # One row at a time as well (the CPU then splits each row over its threads).
    for r in (0, 4, 9):
        one = dict(seeds=[1000 + r], sample_indices=[r % 3], token_indices=[7 * r],
                   prompt_tokens=[prompts[r]], output_tokens=[outputs[r]])
        g1, w1 = both(x[r:r + 1], params[r], **one)
        assert_same(g1, w1)


def test_many_draws_of_one_row_match():
    V, n = 5000, 512
    x = (torch.randn(V, generator=torch.Generator().manual_seed(3)) * 2.0).expand(n, V)  # row stride 0
    for kw in (dict(temperature=1.0, top_p=0.9), dict(temperature=0.6, top_k=40, min_p=0.02)):
        got, want = both(x, P(**kw, logprobs=2), seeds=range(n), token_indices=range(n))
        assert_same(got, want)
        assert len(set(want[0].tolist())) > 5  # the rows really draw different tokens


def test_ties_masks_and_bad_rows_match():
    V = 1000
    x = torch.randn(8, V, generator=torch.Generator().manual_seed(4))
    x[0, [5, 17, 600]] = 9.0  # tied best tokens
    x[1, :] = 0.25  # all equal
    x[2, :990] = float("-inf")  # ten live tokens
    x[3, 3] = float("nan")
    x[4, 9] = float("inf")
    x[5, :] = float("-inf")
    x[6, 0] = 3e38  # a penalty makes it overflow
    x[7, ::2] = -0.0
    x[7, 1::2] = 0.0
    params = [P(temperature=1.0, top_k=2, logprobs=4), P(temperature=0.5, top_p=0.5, logprobs=20),
              P(temperature=2.0, top_k=20, logprobs=20), P(temperature=1.0, logprobs=3),
              P(logprobs=1), P(temperature=1.0), P(repetition_penalty=1e-3, logprobs=2),
              P(temperature=1.0, top_p=0.3, logprobs=5)]
    got, want = both(x, params, seeds=range(8), prompt_tokens=[[0]] * 8)
    assert want[4].tolist() == [0, 0, 0, 1, 1, 2, 3, 0]
    assert_same(got, want)


def test_strided_logits_and_a_given_workspace():
    wide = torch.randn(6, 4000, generator=torch.Generator().manual_seed(5)) * 2.5
    x = wide[:, 500:3500]  # row stride 4000
    params = [P(temperature=0.9, top_p=0.8, repetition_penalty=1.2, logprobs=3)] * 6
    prompts = [[1, 2, 3, 500 + r] for r in range(6)]
    got, want = both(x, params, seeds=range(6), prompt_tokens=prompts)
    assert_same(got, want)
    xc = wide.cuda()[:, 500:3500]
    n = ops.sample_workspace_bytes(xc, params, prompt_tokens=prompts)
    assert n >= 6 * 3000 * 4  # a penalized copy of every row
    ws = torch.empty(n, dtype=torch.uint8, device="cuda")
    again = ops.sample(xc, params, seeds=range(6), prompt_tokens=prompts, workspace=ws)
    torch.cuda.synchronize()
    assert_same(again, want)
    with pytest.raises(ValueError, match="workspace"):
        ops.sample(xc, params, seeds=range(6), prompt_tokens=prompts, workspace=ws[: n - 1])


def test_uniform_row_draws_the_contracts_token_on_cuda():
    from sampling_reference import draw_bits

    V = 1000
    finite = sorted(random.Random(1).sample(range(V), 37))
    row = torch.full((V,), float("-inf"))
    row[finite] = 0.5
    cases = [(seed, s, t) for seed in (0, 1, 2**63 + 5) for s in (0, 3) for t in (0, 1, 2**33)]
    x = row.cuda().expand(len(cases), V)
    tok, *_, status = ops.sample(x, P(temperature=0.9), seeds=[c[0] for c in cases],
                                 sample_indices=[c[1] for c in cases], token_indices=[c[2] for c in cases])
    assert (status.cpu() == 0).all()
    assert tok.cpu().tolist() == [finite[(draw_bits(*c) * len(finite)) >> 64] for c in cases]
