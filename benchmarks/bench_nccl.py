"""All-reduce bus bandwidth of the engine's NCCL communicator on this host's GPUs, beside
torch.distributed's NCCL all-reduce (the same library, driven by torch) measured in the same run.

The message sizes are a decode step's all-reduces (hidden x batch in bfloat16: one per attention
block and one per feed-forward) for Scout and Maverick (hidden 5120) at batch 1-256, then large
messages for the peak. Bus bandwidth is nccl-tests' figure for all-reduce: bytes x 2(n-1)/n per
second. Each call is timed to completion (the communicator's wait(); torch: a device sync), median
of --iters after --warmup; ratio = ours / torch's. With one GPU the world size is 1 (the path still
goes through NCCL) and only latency means anything.

    python benchmarks/bench_nccl.py [--gpus N] [--iters 50]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

HIDDEN = 5120  # Scout and Maverick
DECODE_BATCHES = (1, 8, 32, 256)
LARGE_BYTES = (16 << 20, 64 << 20, 256 << 20)


def sizes() -> list[tuple[str, int]]:
    out = [(f"decode batch {b}", HIDDEN * b * 2) for b in DECODE_BATCHES]
    return out + [(f"{n >> 20} MiB", n) for n in LARGE_BYTES]


def _median_seconds(fn, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rank(rank: int, world: int, store_dir: str, warmup: int, iters: int, queue) -> None:
    import torch
    import torch.distributed as dist

    import llama4_native as l4
    from llama4_native import parallel

    torch.cuda.set_device(rank)
    parallel.nccl_library()
    comm = l4._C.make_nccl_communicator(l4._C.FileStore(store_dir), rank, world, rank, 60.0)
    dist.init_process_group("nccl", init_method=f"file://{store_dir}/torch_store", rank=rank, world_size=world,
                            device_id=torch.device("cuda", rank))
    rows = []
    for label, nbytes in sizes():
        t = torch.ones(nbytes // 2, dtype=torch.bfloat16, device="cuda")
        ours = _median_seconds(lambda: comm.all_reduce(t), warmup, iters)

        def torch_all_reduce():
            dist.all_reduce(t)
            torch.cuda.synchronize()

        theirs = _median_seconds(torch_all_reduce, warmup, iters)
        rows.append((label, nbytes, ours, theirs))
    dist.destroy_process_group()
    if rank == 0:
        queue.put(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=None, help="ranks (default: every visible GPU)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=50)
    a = ap.parse_args()
    import torch
    import torch.multiprocessing as mp

    if not torch.cuda.is_available():
        raise SystemExit("bench_nccl: no CUDA device (this benchmark needs NCCL on GPUs)")
    world = a.gpus or torch.cuda.device_count()
    with tempfile.TemporaryDirectory(prefix="bench_nccl_") as store_dir:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        procs = [ctx.Process(target=_rank, args=(r, world, store_dir, a.warmup, a.iters, queue)) for r in range(world)]
        for p in procs:
            p.start()
        rows = queue.get(timeout=600)
        for p in procs:
            p.join(timeout=60)
    factor = 2 * (world - 1) / world
    print(f"all-reduce, bfloat16, {world} GPU(s) ({torch.cuda.get_device_name(0)}); median of {a.iters}")
    print(f"{'message':<16} {'bytes':>11} {'ours us':>9} {'torch us':>9} {'ours busbw':>11} {'torch busbw':>12} "
          f"{'ratio':>6}")
    for label, nbytes, ours, theirs in rows:
        bw = lambda s: f"{nbytes * factor / s / 1e9:8.1f} GB/s" if factor else "       - "  # noqa: E731
        print(f"{label:<16} {nbytes:>11} {ours * 1e6:9.1f} {theirs * 1e6:9.1f} {bw(ours):>11} {bw(theirs):>12} "
              f"{theirs / ours:6.2f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
