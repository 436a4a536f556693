"""Tensor + expert parallelism on CPU ranks: per-step time split into compute and communication
for 1, 2 and 4 ranks (gloo over loopback), decode (a batch of sequences, one token each) and
prefill (one prompt).

Communication is rank 0's wall time inside collectives (gloo returns when the collective is done,
so this includes waiting for slower ranks); compute is the rest of the step. Every rank runs one
CPU thread (OMP_NUM_THREADS=1), so N ranks use N cores: on this 2-core machine 4 ranks share 2
cores and the speed-up is bounded by the cores, not by the engine (report, no target). The
single-rank rows at 1 and 2 threads are the baselines measured in the same run.

    python benchmarks/bench_parallel.py [--ranks 1 2 4] [--batch 4] [--steps 16] [--prompt 64]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "build", "bench-parallel-ckpt")
# Big enough that a step is not all overhead, small enough for a 2-core machine: heads, KV heads
# and experts split over 1, 2, 4 ranks (4 ranks replicate the 2 KV heads).
TEXT = dict(hidden_size=512, intermediate_size=1024, intermediate_size_mlp=2048,
            num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
            num_local_experts=8, num_experts_per_tok=1)  # the real vocabulary (202048; make_tiny)


def measure(path: str, ranks: int, threads: int, batch: int, steps: int, prompt: int) -> dict:
    import torch

    import llama4_native as l4

    l4.set_cpu_threads(threads)
    model = l4.load(path, dtype="bfloat16", kv_cache_bytes=64 << 20, max_sequences=batch,
                    tensor_parallel_size=ranks)
    try:
        eng, comm = model._engine, model._comm
        seqs = [eng.add_sequence() for _ in range(batch)]
        g = torch.Generator().manual_seed(0)
        ids = [torch.randint(3, 200000, (prompt,), generator=g).tolist() for _ in seqs]

        def timed(requests):
            c0 = comm.seconds if comm else 0.0
            n0 = comm.calls if comm else 0
            t0 = time.perf_counter()
            eng.step(requests)
            t = time.perf_counter() - t0
            return t, (comm.seconds - c0) if comm else 0.0, (comm.calls - n0) if comm else 0

        prefill = timed([(seqs[0], ids[0], False)])
        for s, p in zip(seqs[1:], ids[1:]):
            eng.step([(s, p, False)])
        decode = [timed([(s, [5], False) for s in seqs]) for _ in range(steps)]
        return {"prefill": prefill, "decode": decode}
    finally:
        model.close()


def row(label: str, samples: list, base: float | None) -> str:
    t = statistics.median(s[0] for s in samples) * 1e3
    c = statistics.median(s[1] for s in samples) * 1e3
    calls = samples[0][2]
    speed = f"{base / t:5.2f}x" if base else "    - "
    return f"{label:<22} {t:9.2f} {t - c:9.2f} {c:9.2f} {100 * c / t:6.1f}% {calls:6d}  {speed}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--dir", default=DEFAULT_DIR)
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the worker ranks
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama4_native.tiny import make_tiny

    if not os.path.exists(os.path.join(a.dir, "config.json")):
        make_tiny(a.dir, dtype="bfloat16", text_overrides=TEXT, processor_files=False)
    print(f"checkpoint {a.dir}: {TEXT}")
    print(f"decode: batch {a.batch}, median of {a.steps} steps; prefill: one prompt of {a.prompt} tokens; "
          f"cpu cores: {os.cpu_count()}")
    runs = [(1, 1), (1, 2)] + [(n, 1) for n in a.ranks if n > 1]
    results = {(n, th): measure(a.dir, n, th, a.batch, a.steps, a.prompt) for n, th in runs}
    head = f"{'':<22} {'step ms':>9} {'compute':>9} {'comm':>9} {'comm%':>7} {'calls':>6}  vs 1 rank 1 thread"
    for kind in ("decode", "prefill"):
        print(f"\n{kind}\n{head}")
        base = None
        for (n, th), r in results.items():
            samples = r[kind] if kind == "decode" else [r[kind]]
            line = row(f"{n} rank(s) x {th} thread", samples, base)
            if base is None:
                base = statistics.median(s[0] for s in samples) * 1e3
            print(line)


if __name__ == "__main__":
    main()
