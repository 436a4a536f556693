"""load(..., check_weights=True): the NaN/inf scan of every checkpoint tensor (Checkpoint.check_finite)
in GB/s of checkpoint bytes, against the AVX-512 read probe (benchmarks/roofline.py) and against
torch.isfinite(t).all() over the same memory-mapped tensors, timed interleaved in one run, at 1
and 2 threads (or --threads). The checkpoint is a synthetic one written to a temporary folder
(bf16 and fp32 tensors of a Scout-like layer's shapes, --gib in all) and read back from the page
cache, so the numbers are the scan's speed, not the disk's: a cold load from disk runs at the
disk's speed instead (the scan then adds the whole read to the load, which a zero-copy bf16 load
otherwise defers; that is why check_weights is off by default).

    python benchmarks/bench_check_weights.py [--gib 1] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roofline  # noqa: E402

import llama4_native as l4  # noqa: E402
from llama4_native import _C  # noqa: E402


def write_checkpoint(folder: str, gib: float) -> int:
    """bf16 [5120, 8192]-ish matrices (and one fp32 norm per matrix) up to `gib` GiB."""
    budget, tensors, k = int(gib * (1 << 30)), {}, 0
    while budget > 0:
        rows = min(8192, max(1, budget // (5120 * 2)))
        tensors[f"layers.{k}.w"] = torch.randn(rows, 5120).to(torch.bfloat16)
        tensors[f"layers.{k}.norm"] = torch.randn(5120)
        budget -= rows * 5120 * 2 + 5120 * 4
        k += 1
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    return sum(t.numel() * t.element_size() for t in tensors.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_check_weights_") as folder:
        nbytes = write_checkpoint(folder, args.gib)
        ck = _C.Checkpoint(folder)
        views = [torch.from_dlpack(ck.get(n)) for n in ck.keys()]
        print(f"checkpoint: {len(views)} tensors, {nbytes / 1e9:.2f} GB (page cache)")
        for threads in args.threads:
            l4.set_cpu_threads(threads)
            torch.set_num_threads(threads)
            scan_s, torch_s, probe_s = roofline.median_s(
                [ck.check_finite, lambda: all(bool(torch.isfinite(v).all()) for v in views),
                 roofline.read_probe_fn()], rounds=5)
            scan, ref = nbytes / scan_s / 1e9, nbytes / torch_s / 1e9
            probe = roofline.READ_BYTES / probe_s / 1e9
            print(f"threads {threads}: check_finite {scan:6.2f} GB/s | read probe {probe:6.2f} GB/s "
                  f"(ratio {scan / probe:.2f}) | torch.isfinite().all() {ref:6.2f} GB/s (ratio {scan / ref:.2f})")


if __name__ == "__main__":
    main()
