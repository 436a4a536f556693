"""Helpers that run a function on several CPU ranks (spawned processes, a gloo group through a
FileStore) and collect what each rank returned. Children are spawned (not forked): OpenMP and
torch's threads do not survive a fork."""
from __future__ import annotations

import multiprocessing as mp
import os
import traceback

# Joining the group: spawn + imports take seconds on a loaded machine, far longer than the tests'
# short collective timeouts (the rendezvous has its own timeout for that).
JOIN_TIMEOUT_S = 120.0


def _child(fn, rank, world_size, store_dir, timeout_s, join_timeout_s, late, args, queue):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import time

        import llama4_native as l4

        l4._C.set_cpu_threads(1)
        store = l4._C.FileStore(store_dir)
        if late.get(rank) == float("inf"):
            return
        time.sleep(late.get(rank, 0.0))
        comm = l4._C.make_gloo_communicator(store, rank, world_size, timeout_s, rendezvous_timeout_s=join_timeout_s)
        queue.put((rank, "ok", fn(comm, *args)))
    except BaseException as e:  # report, never hang the parent
        queue.put((rank, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def run_ranks(fn, world_size: int, store_dir: str, *args, timeout_s: float = 30.0, wait_s: float = 120.0,
              ranks=None, join_timeout_s: float = JOIN_TIMEOUT_S, late: dict | None = None) -> dict:
    """{rank: fn(comm, *args)} over world_size ranks (only `ranks` are collected, all by default).
    A rank that raised is reported as ("error", message). late: {rank: seconds} those ranks wait
    before joining the group (inf: they never join)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(fn, r, world_size, store_dir, timeout_s, join_timeout_s, late or {},
                                              args, queue), daemon=True)
             for r in range(world_size)]
    for p in procs:
        p.start()
    want = set(range(world_size) if ranks is None else ranks)
    out = {}
    try:
        while want - set(out):
            rank, status, value = queue.get(timeout=wait_s)
            out[rank] = value if status == "ok" else ("error", value)
    finally:
        import time

        deadline = time.monotonic() + 5.0  # for all of them together
        for r, p in enumerate(procs):
            if r in want:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    return out
