"""The KV cache budget from a fraction of a GPU's memory (vLLM's `gpu_memory_utilization`): after
the weights are on the device, the cache gets what is left of `utilization * total`, less a reserve
for one step's activations (which the stream-ordered pool takes as it needs them), sized by the
memory planner's own formula (plan.step_workspace_bytes) so that `llama4-native plan` and the engine
agree. The CUDA context is already in the driver's used figure here.

The driver's free figure counts every allocation on the device, other processes' included, so two
servers sharing a GPU each see the other's use, as with vLLM.
"""
from __future__ import annotations

from . import _C

def check_utilization(utilization, device: str, kv_cache_bytes) -> None:
    """ValueError naming the argument, before anything is loaded."""
    if isinstance(utilization, bool) or not isinstance(utilization, (int, float)) or not 0 < utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be a number in (0, 1], got {utilization!r}")
    if not device.startswith("cuda"):
        raise ValueError("gpu_memory_utilization sizes the KV cache on a GPU (device='cuda'); on the CPU "
                         "give kv_cache_bytes")
    if kv_cache_bytes is not None:
        raise ValueError("give kv_cache_bytes or gpu_memory_utilization, not both")


def kv_bytes_from_gpu_memory(device: str, utilization: float, reserve: int) -> int:
    """KV cache bytes for device "cuda:N" once the weights are resident there; `reserve`: the
    step's activations (plan.step_workspace_bytes)."""
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    free, total = _C.cuda_memory_info(index)
    used = total - free
    budget = int(utilization * total) - used - reserve
    if budget <= 0:
        gib = 1 << 30
        raise ValueError(f"gpu_memory_utilization={utilization}: {device} has {total / gib:.1f} GiB, of which "
                         f"{used / gib:.1f} GiB are in use after loading the weights, and a step needs "
                         f"{reserve / gib:.1f} GiB more: nothing is left for the KV cache (raise "
                         f"gpu_memory_utilization, or quantize the weights)")
    return budget


__all__ = ["check_utilization", "kv_bytes_from_gpu_memory"]
