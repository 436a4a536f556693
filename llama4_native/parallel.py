"""Tensor + expert parallelism over several ranks (llama4/shard.h, llama4/communicator.h).

`load(path, tensor_parallel_size=N)` starts N - 1 worker processes itself (as vLLM's LLM does):
each loads only its part of the checkpoint and runs the forward passes the calling process (rank 0)
schedules. CPU ranks talk through gloo (TCP on 127.0.0.1), GPU ranks through NCCL (rank r on
cuda:r). The ranks meet through a FileStore in a temporary folder.

Under torchrun (RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment) nothing is
started: every process calls `load(path, tensor_parallel_size=WORLD_SIZE)`, the ranks meet through
torch.distributed's TCPStore at MASTER_ADDR:MASTER_PORT, rank 0 gets the model, and on every other
rank load() runs rank 0's forward passes and then exits the process (SystemExit(0)) once rank 0's
model is closed.

A rank that dies or hangs makes the others raise `llama4_native.RankError` (naming the rank when it
can be told) within `collective_timeout_s`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field

from . import _C

RankError = _C.RankError


class TorchStore(_C.Store):
    """torch.distributed's TCPStore (the one torchrun's rendezvous serves) as a rendezvous store."""

    def __init__(self, host: str, port: int, world_size: int, is_master: bool, timeout_s: float):
        super().__init__()
        import datetime

        import torch.distributed as dist

        self._store = dist.TCPStore(host, port, world_size, is_master,
                                    timeout=datetime.timedelta(seconds=timeout_s), wait_for_workers=False)

    def set(self, key: str, value: bytes) -> None:
        self._store.set(key, value)

    def get(self, key: str, timeout_s: float):
        import datetime

        try:
            self._store.wait([key], datetime.timedelta(seconds=max(timeout_s, 0.001)))
        except Exception:  # torch raises its own timeout errors: None says "not set in time"
            return None
        return self._store.get(key)


@dataclass
class Group:
    """The calling process's view of a group it started: the workers and the rendezvous folder."""
    world_size: int
    store_dir: str
    procs: list = field(default_factory=list)

    def check_workers(self) -> None:
        """RankError naming the first worker that has exited."""
        for rank, p in enumerate(self.procs, start=1):
            if p.exitcode is not None:
                raise RankError(f"rank {rank} (pid {p.pid}) exited with code {p.exitcode} while loading or "
                                f"joining the group; its error is above")

    def wait_ready(self, timeout_s: float) -> None:
        """Until every worker has loaded its shard (a file in the store folder says so)."""
        deadline = time.monotonic() + timeout_s
        for rank in range(1, self.world_size):
            marker = os.path.join(self.store_dir, f"ready_{rank}")
            while not os.path.exists(marker):
                self.check_workers()
                if time.monotonic() > deadline:
                    raise RankError(f"rank {rank} did not finish loading within {timeout_s:.0f} s")
                time.sleep(0.01)

    def close(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        shutil.rmtree(self.store_dir, ignore_errors=True)


def _mp_context():
    # Spawned, not forked: OpenMP's and torch's threads do not survive a fork.
    return mp.get_context("spawn")


def start_workers(path: str, world_size: int, load_kwargs: dict) -> Group:
    """Ranks 1..world_size-1 as child processes, each loading its shard with load_kwargs."""
    group = Group(world_size, tempfile.mkdtemp(prefix="llama4_tp_"))
    ctx = _mp_context()
    for rank in range(1, world_size):
        p = ctx.Process(target=_worker_main, args=(path, rank, world_size, group.store_dir, load_kwargs),
                        name=f"llama4-rank{rank}", daemon=True)
        p.start()
        group.procs.append(p)
    return group


def _exit_if_orphaned(rank: int, joined: threading.Event) -> None:
    """Until this worker has joined the group: exit when rank 0, which started it, is gone (it
    would otherwise wait out the long join timeout). Once joined, the collectives' timeout says so.
    (multiprocessing's parent handle, not os.getppid(): rank 0 may be gone before this starts.)"""
    parent = mp.parent_process()
    while parent is not None and not joined.wait(0.5):
        if not parent.is_alive():
            sys.stderr.write(f"llama4_native rank {rank}: rank 0 (pid {parent.pid}) exited while this rank was "
                             "loading or joining the group\n")
            sys.stderr.flush()
            os._exit(1)


def _worker_main(path: str, rank: int, world_size: int, store_dir: str, load_kwargs: dict) -> None:
    joined = threading.Event()
    threading.Thread(target=_exit_if_orphaned, args=(rank, joined), daemon=True).start()
    try:
        from .engine import Model

        model = Model(path, tensor_parallel_size=world_size, _rank=rank, _store_dir=store_dir, **load_kwargs)
        joined.set()
        model._engine.follow()
        leave_together(model._store, rank, world_size)
    except BaseException:  # the parent names this rank; say why here
        sys.stderr.write(f"llama4_native rank {rank}: {traceback.format_exc()}")
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


def leave_together(store, rank: int, world_size: int, timeout_s: float = 10.0) -> None:
    """After rank 0's stop message: wait (bounded) until every worker has it. A worker that exits
    closes its connections, and gloo fails a peer's pending collective on any closed connection,
    even one that collective does not use, so nobody leaves while another still listens."""
    store.set(f"llama4/done/{rank}", b"1")
    deadline = time.monotonic() + timeout_s
    for r in range(1, world_size):
        try:
            store.get(f"llama4/done/{r}", max(0.0, deadline - time.monotonic()))
        except RankError:  # that worker is gone already: nothing to wait for
            pass


def torchrun_rank() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when this process was started by torchrun (or another launcher that
    sets them with MASTER_ADDR / MASTER_PORT), else None."""
    env = os.environ
    if all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        return int(env["RANK"]), int(env["WORLD_SIZE"])
    return None


def torchrun_store(rank: int, world_size: int, timeout_s: float) -> TorchStore:
    env = os.environ
    # torchrun's agent may serve the store itself (TORCHELASTIC_USE_AGENT_STORE); else rank 0 does.
    master = rank == 0 and env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true"
    return TorchStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), world_size, master, timeout_s)


def gloo_host() -> str:
    """The address this CPU rank listens on: LLAMA4_GLOO_HOST, else loopback on one host, else this
    host's name resolved (torchrun across hosts: LOCAL_WORLD_SIZE < WORLD_SIZE)."""
    if os.environ.get("LLAMA4_GLOO_HOST"):
        return os.environ["LLAMA4_GLOO_HOST"]
    local, world = os.environ.get("LOCAL_WORLD_SIZE"), os.environ.get("WORLD_SIZE")
    if local and world and int(local) < int(world):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


def nccl_library() -> None:
    """Points the C++ loader at the nvidia-nccl-cu13 wheel's libnccl.so.2 when it is installed."""
    if os.environ.get("LLAMA4_NCCL_LIBRARY"):
        return
    import importlib.util

    spec = importlib.util.find_spec("nvidia.nccl")
    for root in (spec.submodule_search_locations or []) if spec else []:
        lib = os.path.join(root, "lib", "libnccl.so.2")
        if os.path.exists(lib):
            os.environ["LLAMA4_NCCL_LIBRARY"] = lib
            return


def join_timeout_s(collective_timeout_s: float) -> float:
    """How long a rank waits for the others to load their shards and join the group: ranks load at
    different speeds (rank 0 may also scan the whole checkpoint), so far longer than a collective."""
    return max(_C.default_rendezvous_timeout_s, collective_timeout_s)


def communicator(store, rank: int, world_size: int, device: str, timeout_s: float):
    """The group's communicator for this rank: gloo on CPU, NCCL on cuda:N."""
    join = join_timeout_s(timeout_s)
    if device == "cpu":
        return _C.make_gloo_communicator(store, rank, world_size, timeout_s, gloo_host(), rendezvous_timeout_s=join)
    nccl_library()
    return _C.make_nccl_communicator(store, rank, world_size, int(device.split(":")[1]), timeout_s,
                                     rendezvous_timeout_s=join)


def check_shardable(path: str, world_size: int, dtype: str, quantization=None, fp8_skip_layers=(),
                    int4_group_size: int = 0) -> None:
    """ValueError naming tensor_parallel_size when the checkpoint's config cannot be split over
    world_size ranks (read from config.json alone), with its INT4 weights (stored, or quantization
    "int4" at load with int4_group_size, 0: the default) cut on group boundaries on every rank."""
    config = _C.load_model_config(path)
    _C.text_shard_weight_bytes(config.text, dtype, [], 0, world_size)
    fp8 = _C.fp8_plan(config, quantization, None, list(fp8_skip_layers), path, int(int4_group_size))
    if fp8 is None or fp8.int4_group_size <= 0:
        return
    root = "language_model." if config.architecture == "Llama4ForConditionalGeneration" else ""
    mlp = list(_C.int4_mlp_layers(config.text, fp8, root))
    for rank in range(world_size):
        _C.text_shard_specs(config.text, dtype, [], rank, world_size, fp8.int4_group_size, mlp)


def shard_weight_bytes(config, dtype: str, world_size: int, fp8_layers=(), rank: int | None = None) -> int:
    """Bytes of text-decoder weights one rank holds (the largest rank's when rank is None), from the
    engine's own sharding rules (llama4/shard.h): for a memory planner."""
    ranks = range(world_size) if rank is None else [rank]
    return max(_C.text_shard_weight_bytes(config, dtype, list(fp8_layers), r, world_size) for r in ranks)
