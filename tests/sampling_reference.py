"""Plain references for the C++ sampler's tests: a pure-Python Philox4x32-10, vLLM's penalties
in torch, the filtered distribution by a full sort in float64, and a chi-square bound."""
from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF


def philox4x32_10(counter, key):
    """Random123's philox4x32_R(10, counter, key), written from the paper's definition."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1) & MASK32, p0 & MASK32
    return [c0, c1, c2, c3]


def draw_bits(seed: int, sample_index: int, token_index: int) -> int:
    """The seeding contract of llama4/sampling.h."""
    r = philox4x32_10([token_index & MASK32, token_index >> 32, sample_index, 0], [seed & MASK32, seed >> 32])
    return (r[1] << 32) | r[0]


def penalize(logits: torch.Tensor, rep: float, presence: float, freq: float, prompt, output) -> torch.Tensor:
    """vLLM's penalties on a float32 row: repetition over prompt + output (CTRL), then
    frequency and presence over the output only."""
    V = logits.numel()
    counts = torch.bincount(torch.tensor(list(output), dtype=torch.long), minlength=V)[:V]
    seen = counts > 0
    if len(prompt):
        seen[torch.tensor(list(prompt), dtype=torch.long)] = True
    x = logits.float().clone()
    x = torch.where(seen, torch.where(x > 0, x / torch.tensor(rep), x * torch.tensor(rep)), x)
    x = x - counts.float() * torch.tensor(freq)
    return x - (counts > 0).float() * torch.tensor(presence)


def filtered_probs(y: torch.Tensor, temperature: float, top_k=0, top_p=1.0, min_p=0.0) -> torch.Tensor:
    """The distribution sampled from, [V] float64: softmax(y / T), then top-k, top-p over the
    top-k distribution, min-p relative to the best, in the order (y descending, id ascending)."""
    y = y.double()
    V = y.numel()
    order = sorted(range(V), key=lambda i: (-float(y[i]), i))
    p = torch.softmax((y - y.max()) / temperature, 0)
    keep = torch.zeros(V, dtype=torch.bool)
    k = top_k if 0 < top_k < V else V
    top = order[:k]
    mass = p[top].sum()
    cum = 0.0
    for i in top:
        if cum >= top_p * mass:
            break
        keep[i] = True
        cum += float(p[i])
    keep &= p >= min_p * p.max()
    q = torch.where(keep, p, torch.zeros_like(p))
    return q / q.sum()


def chi2_upper(df: int, z: float = 4.75) -> float:
    """Upper quantile of chi-square(df) at the normal quantile z (Wilson-Hilferty; z = 4.75 is
    a one-sided level of 1e-6)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def chi2_stat(counts: torch.Tensor, probs: torch.Tensor, n: int) -> tuple[float, int]:
    """Pearson's statistic with cells of expected count < 5 pooled into one; (stat, df)."""
    exp = probs.double() * n
    big = exp >= 5
    obs_c, exp_c = counts.double()[big].tolist(), exp[big].tolist()
    rest_o, rest_e = float(counts.double()[~big].sum()), float(exp[~big].sum())
    if rest_e > 0:
        obs_c.append(rest_o)
        exp_c.append(rest_e)
    stat = sum((o - e) ** 2 / e for o, e in zip(obs_c, exp_c))
    return stat, max(1, len(exp_c) - 1)
