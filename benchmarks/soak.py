"""The long soak of the C++ scheduler (tests/test_soak.py is CI's bounded share): N random
operations (add, cancel, abandon a sample, step) in a KV cache small enough to preempt, batch
limits 1-32; prints the operation counts, KV pages and resident memory, and checks every survivor
against its run alone.

    python benchmarks/soak.py [--operations 10000] [--seed 0]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # the driver and the tiny checkpoints


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--operations", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import llama4_native as l4
    import tiny_checkpoints as tc
    from soak_driver import Soak

    with tempfile.TemporaryDirectory() as folder:
        tc.save_tiny("scout_text", folder)
        model = l4.load(folder, dtype="float32", kv_cache_bytes=2 * 163840, max_sequences=32)
        free = [model._engine.free_pages(g) for g in (0, 1)]
        soak = Soak(model, seed=args.seed, vocab=512, chunk=8)
        t0 = time.perf_counter()
        soak.phase(300, max_batch=8)
        gc.collect()
        warm = rss_mib()
        batches = [1, 2, 4, 8, 16, 32]
        rss = []
        for round_ in range(max(1, (args.operations - 300) // (len(batches) * 500))):
            for b in batches:
                soak.phase(500, max_batch=b)
            gc.collect()
            rss.append(rss_mib())
        elapsed = time.perf_counter() - t0
        survivors = soak.survivors()
        wrong = sum(r.tokens[k] != soak.alone(r)[k] for r, k in survivors)
        leaked = [f - model._engine.free_pages(g) for g, f in zip((0, 1), free)]
        s = soak.stats
        print(f"operations {s.operations} in {elapsed:.1f} s: added {s.added}, refused {s.refused}, "
              f"cancelled {s.cancelled}, abandoned {s.abandoned}, steps {s.steps}, "
              f"preemptions {s.preemptions}, max running {s.max_running}")
        print(f"resident memory after warm-up {warm:.1f} MiB; per round: "
              + " ".join(f"{m:.1f}" for m in rss) + f"  (max growth {max(rss) / warm - 1:.2%}, target < 5%)")
        print(f"KV pages leaked per pool: {leaked}")
        print(f"survivors {len(survivors)}, different from their run alone: {wrong}; "
              f"neither finished nor cancelled: {soak.unfinished()}")
        sys.exit(1 if wrong or soak.unfinished() or any(leaked) or max(rss) / warm - 1 >= 0.05 else 0)


if __name__ == "__main__":
    main()
