"""The communicator (llama4/communicator.h) on CPU ranks: gloo's all_reduce (float32, bfloat16),
broadcast and all_gather across 2 and 4 processes against numpy, and a dead or stopped rank making
the others fail with a RankError naming it, within the timeout."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

import llama4_native as l4
from parallel_ranks import run_ranks

pytestmark = pytest.mark.skipif(not l4._C.gloo_available(), reason="this build has no gloo (libgloo-dev)")


def _data(rank: int, n: int, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + rank)
    return torch.randn(n, generator=g).to(dtype)


def _collectives(comm, n):
    r, size = comm.rank, comm.world_size
    out = {}
    x = _data(r, n, torch.float32)
    comm.all_reduce(x)
    out["f32"] = x.numpy().copy()
    b = _data(r, n, torch.bfloat16)
    comm.all_reduce(b)
    out["bf16"] = b.float().numpy().copy()
    ints = torch.full((n,), float(r + 1)).to(torch.bfloat16)  # small integers: every partial sum exact
    comm.all_reduce(ints)
    out["bf16_int"] = ints.float().numpy().copy()
    t = torch.arange(7, dtype=torch.int32) * (r + 3) if r == size - 1 else torch.zeros(7, dtype=torch.int32)
    comm.broadcast(t, size - 1)
    out["bcast"] = t.numpy().copy()
    piece = _data(r, 5, torch.float32).reshape(1, 5)
    gathered = torch.empty(size, 5)
    comm.all_gather(gathered, piece)
    out["gather"] = gathered.numpy().copy()
    return out


@pytest.mark.parametrize("world_size", [2, 4])
def test_collectives_match_numpy(tmp_path, world_size):
    n = 1031  # odd: the ring's chunks are uneven
    res = run_ranks(_collectives, world_size, str(tmp_path), n)
    for r in range(world_size):
        assert not isinstance(res[r], tuple), res[r]
    want32 = sum(_data(r, n, torch.float32).double().numpy() for r in range(world_size))
    parts16 = [_data(r, n, torch.bfloat16).double().numpy() for r in range(world_size)]
    want16 = sum(parts16)
    # Every hop rounds a partial sum to bf16: at most world_size - 1 roundings of at most half an
    # ulp (2^-8 relative) of a partial sum, whose size is at most sum |x|.
    bound16 = (world_size - 1) * 2.0**-8 * sum(np.abs(p) for p in parts16)
    gather_want = np.stack([_data(r, 5, torch.float32).numpy() for r in range(world_size)])
    for r in range(world_size):
        out = res[r]
        np.testing.assert_allclose(out["f32"], want32, rtol=0, atol=1e-5)
        assert np.all(np.abs(out["bf16"] - want16) <= bound16)
        np.testing.assert_array_equal(out["bf16_int"], np.full(n, world_size * (world_size + 1) / 2))
        np.testing.assert_array_equal(out["bcast"], np.arange(7) * (world_size + 2))
        np.testing.assert_array_equal(out["gather"], gather_want)
        # every rank ends with the same bits (the sum is computed once and passed around)
        np.testing.assert_array_equal(out["f32"], res[0]["f32"])
        np.testing.assert_array_equal(out["bf16"], res[0]["bf16"])


def _die_or_stop(comm, victim, how):
    """The victim exits (or stops itself) before the collective; the others time it."""
    if comm.rank == victim:
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGSTOP)
    start = time.monotonic()
    try:
        comm.all_reduce(torch.ones(64))
    except l4.RankError as e:
        return ("raised", e.rank, str(e), time.monotonic() - start)
    return ("no error", None, "", time.monotonic() - start)


@pytest.mark.parametrize("how", ["exit", "stop"])
def test_dead_or_stopped_rank_is_named(tmp_path, how):
    world, victim, timeout = 4, 2, 4.0
    res = run_ranks(_die_or_stop, world, str(tmp_path), victim, how, timeout_s=timeout,
                    ranks=[r for r in range(world) if r != victim], wait_s=60)
    blamed = 0
    for r, out in res.items():
        assert out[0] == "raised", out
        assert out[3] < timeout + 3.0, f"rank {r} took {out[3]:.1f} s to fail"
        if out[1] is not None:
            assert out[1] == victim, out
            assert f"rank {victim}" in out[2] and ("has exited" if how == "exit" else "is stopped") in out[2]
            blamed += 1
        else:
            assert "did not answer" in out[2]
    assert blamed >= 1  # at least the victim's neighbours can tell who it was


def test_store_timeout_and_bad_arguments(tmp_path):
    store = l4._C.FileStore(str(tmp_path))
    store.set("a/b", b"xyz")
    assert store.get("a/b", 1.0) == b"xyz"
    t0 = time.monotonic()
    with pytest.raises(l4.RankError, match="was not set within"):
        store.get("missing", 0.2)
    assert time.monotonic() - t0 < 2
    with pytest.raises(ValueError, match="outside world size"):
        l4._C.make_gloo_communicator(store, 2, 2)
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        l4._C.make_gloo_communicator(store, 0, 1, 0.0)
    comm = l4._C.make_gloo_communicator(store, 0, 1, 5.0, prefix="single")  # world size 1
    x = torch.arange(4, dtype=torch.float32)
    comm.all_reduce(x)
    assert x.tolist() == [0, 1, 2, 3]
    with pytest.raises(TypeError, match="float32 or bfloat16"):
        comm.all_reduce(torch.arange(4, dtype=torch.int32))
    with pytest.raises(ValueError, match="must hold 1 x 4"):
        comm.all_gather(torch.empty(3), x)
    with pytest.raises(ValueError, match="root must be in"):
        comm.broadcast(x, 1)


def test_nccl_reports_a_missing_library_clearly():
    if l4._C.nccl_available():
        pytest.skip("NCCL loads here")
    with pytest.raises((ValueError, TypeError), match="NCCL|CUDA device"):
        l4._C.make_nccl_communicator(l4._C.FileStore("/tmp"), 0, 1, 0)


def _sum_of_ranks(comm):
    x = torch.full((8,), float(comm.rank + 1))
    comm.all_reduce(x)
    return x[0].item()


def test_a_late_rank_joins_within_the_join_timeout_not_the_collective_one(tmp_path):
    # Ranks finish loading their shards at different times: rank 1 joins 3 s after rank 0, longer
    # than the 1 s collective timeout, and the group still forms.
    res = run_ranks(_sum_of_ranks, 2, str(tmp_path), timeout_s=1.0, join_timeout_s=60.0, late={1: 3.0})
    assert res == {0: 3.0, 1: 3.0}


def test_a_rank_that_never_joins_is_a_rank_error_after_the_join_timeout(tmp_path):
    start = time.monotonic()
    res = run_ranks(_sum_of_ranks, 2, str(tmp_path), timeout_s=600.0, join_timeout_s=3.0, late={1: float("inf")},
                    ranks=[0])
    waited = time.monotonic() - start
    assert isinstance(res[0], tuple) and "RankError" in res[0][1], res[0]
    assert "not set within 3.0" in res[0][1] and "did not start or join" in res[0][1], res[0][1]
    assert waited < 60.0  # the join timeout plus process start-up, not the 600 s collective timeout
