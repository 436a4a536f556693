"""Speed of the C++ sampler (llama4_native.ops.sample) at Llama 4's vocabulary (202048), per row,
beside torch's equivalent measured in the same run (softmax + sort / topk + multinomial), and as
a fraction of a 12.7 ms decode step (the bare C++ step of the 6-layer test model in issue 9),
and against one read of the logits (torch.amax over the row: the memory-bandwidth floor of any
sampler that looks at every logit; ours reads them several times). GB/s = logit bytes per second.

Modes: greedy, temperature 0.8, top-k 50, top-p 0.9, min-p 0.05, each at batch 1 and 32. Two
logit distributions: randn * 3 (a nucleus of thousands of tokens) and randn * 0.5 (near flat, as
random-weight models give: top-p 0.9 keeps most of the vocabulary, the hardest case for a
sampler that does not sort). Times are medians of wall-clock repeats and include the Python
call (about 20-40 us per call). CPU by default; --device cuda times the CUDA twin.

    python benchmarks/bench_sampling.py [--device cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import llama4_native as l4
from llama4_native import ops

V = 202048
STEP_MS = 12.7
P = ops.SamplingParams

MODES = {
    "greedy": dict(),
    "temperature": dict(temperature=0.8),
    "top-k 50": dict(temperature=0.8, top_k=50),
    "top-p 0.9": dict(temperature=0.8, top_p=0.9),
    "min-p 0.05": dict(temperature=0.8, min_p=0.05),
}


def torch_sample(x: torch.Tensor, kw: dict, gen: torch.Generator) -> torch.Tensor:
    """The usual torch formulation, batched: [B, V] -> [B]."""
    if not kw:
        return torch.argmax(x, dim=-1)
    x = x / kw["temperature"]
    if "top_k" in kw:
        vals, ids = torch.topk(x, kw["top_k"], dim=-1)
        pick = torch.multinomial(torch.softmax(vals, -1), 1, generator=gen)
        return ids.gather(-1, pick).squeeze(-1)
    probs = torch.softmax(x, -1)
    if "top_p" in kw:
        sp, si = torch.sort(probs, dim=-1, descending=True)
        keep = (torch.cumsum(sp, -1) - sp) < kw["top_p"]
        pick = torch.multinomial(sp * keep, 1, generator=gen)
        return si.gather(-1, pick).squeeze(-1)
    if "min_p" in kw:
        probs = probs * (probs >= kw["min_p"] * probs.max(-1, keepdim=True).values)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def timed(fn, reps: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    reps = 5 if a.quick else 25
    info = l4.build_info()
    print(f"device {a.device}, {info['cpu_threads']} CPU threads, V = {V}; ms per row (median of {reps})")
    gen = torch.Generator(device=dev).manual_seed(0)
    for dist, scale in [("randn*3", 3.0), ("randn*0.5 (near flat)", 0.5)]:
        print(f"\nlogits {dist}")
        print(f"{'mode':<12} {'B':>3} {'ours':>9} {'GB/s':>7} {'torch':>9} {'torch/ours':>10} "
              f"{'ours/read':>10} {'% of step':>10}")
        for B in (1, 32):
            x = (torch.randn(B, V, generator=torch.Generator().manual_seed(B)) * scale).to(dev)
            # All of ours first, then torch's: the two OpenMP pools (torch bundles its own) would
            # otherwise spin against each other between calls.
            t_ours = {}
            for name, kw in MODES.items():
                params, step = P(**kw), [0]
                # On CUDA a workspace made once keeps each call free of allocations and host waits.
                ws = (torch.empty(ops.sample_workspace_bytes(x, params), dtype=torch.uint8, device=dev)
                      if dev.type == "cuda" else None)

                def ours():
                    step[0] += 1
                    ops.sample(x, params, seeds=range(B), token_indices=[step[0]] * B, workspace=ws)

                t_ours[name] = timed(ours, reps, sync) / B
            t_read = timed(lambda: torch.amax(x, dim=-1), reps, sync) / B
            gbs = lambda ms: V * 4 / (ms * 1e-3) / 1e9  # logits bytes per second, per row
            print(f"{'(one read)':<12} {B:>3} {t_read:>9.4f} {gbs(t_read):>7.1f}")
            for name, kw in MODES.items():
                t_torch = timed(lambda: torch_sample(x, kw, gen), reps, sync) / B
                t = t_ours[name]
                print(f"{name:<12} {B:>3} {t:>9.4f} {gbs(t):>7.1f} {t_torch:>9.4f} {t_torch / t:>9.1f}x "
                      f"{t / t_read:>9.1f}x {100 * t / STEP_MS:>9.2f}%")

if __name__ == "__main__":
    main()
