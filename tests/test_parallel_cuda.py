"""Tensor + expert parallelism on GPUs (NCCL, marked cuda; compiled here, not yet run on a GPU):
moe_localize's CUDA kernel against the CPU, NCCL's collectives in a world of one (one GPU still goes
through NCCL), and with 2 or 4 GPUs the model split over all of them against one GPU. Separate from
test_parallel.py, whose CPU tests need gloo (not on the GPU machine)."""
from __future__ import annotations

import torch
import pytest

import llama4_native as l4
from llama4_native import _C


def _ids(seed: int, n: int, vocab: int = 512) -> list[int]:
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.cuda
def test_moe_localize_cuda_matches_cpu():
    ids = torch.randint(0, 16, (37, 4), dtype=torch.int32, generator=torch.Generator().manual_seed(1))
    cpu = ids.clone()
    l4.ops.moe_localize(cpu, 4, 5)
    gpu = ids.cuda()
    l4.ops.moe_localize(gpu, 4, 5)
    assert torch.equal(gpu.cpu(), cpu)


@pytest.mark.cuda
def test_nccl_collectives_and_tensor_parallel_on_every_gpu(tiny_checkpoint, tmp_path):
    """NCCL on this machine's GPUs: one GPU is a world of one, still through NCCL's collectives (the
    path several GPUs take); with 2 or 4 GPUs the model split over all of them also equals one GPU."""
    from llama4_native import parallel

    parallel.nccl_library()
    assert _C.nccl_available(), f"NCCL does not load: {_C.nccl_library_error()}"
    comm = _C.make_nccl_communicator(_C.FileStore(str(tmp_path)), 0, 1, 0, 30.0)
    assert comm.backend == "nccl"
    x = torch.randn(1031, device="cuda")
    want = x.clone()
    comm.all_reduce(x)
    assert torch.equal(x, want)
    b = torch.randn(64, device="cuda").to(torch.bfloat16)
    bw = b.clone()
    comm.all_reduce(b)
    assert torch.equal(b, bw)
    h = torch.arange(5, dtype=torch.int32)
    comm.broadcast(h, 0)  # host metadata, staged through the GPU
    assert h.tolist() == [0, 1, 2, 3, 4]
    out, src = torch.empty(7, device="cuda"), torch.randn(7, device="cuda")
    comm.all_gather(out, src)
    assert torch.equal(out, src)
    assert comm.calls >= 1

    n = torch.cuda.device_count()
    if n < 2 or 4 % n:
        return  # one GPU: the world of one above is what this machine can run
    folder, _ = tiny_checkpoint("maverick")
    single = l4.load(folder, device="cuda", dtype="float32")
    with l4.load(folder, device="cuda", dtype="float32", tensor_parallel_size=n) as tp:
        prompt = _ids(0, 21)
        assert _err(tp.logits(prompt).cpu(), single.logits(prompt).cpu()) <= 1e-4
        kw = dict(max_new_tokens=12, temperature=0.0, stop_token_ids=[])
        assert tp.generate(input_ids=prompt, **kw).token_ids == single.generate(input_ids=prompt, **kw).token_ids
