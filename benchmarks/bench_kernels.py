"""Memory bandwidth of each llama4_native op, and its ratio to a copy measured in the same run.

Every op here is memory-bound, so its roofline figure is GB/s: the bytes it must read and write
once, divided by its time. The baseline is torch's `copy_` between two large buffers on the same
device (2 x bytes per copy), so "vs copy" near 100% means the kernel streams as fast as the memory
system allows.

GPU (when the CUDA backend is built and torch sees a GPU): problems of 270-540 MB per tensor, many
times the 60 MB L2, timed with CUDA events over batches of several milliseconds. Each op call
allocates its output (cudaMalloc), so a long sleep kernel is queued first and the outputs are kept
alive until the batch ends: the host then enqueues the whole batch while the GPU is still busy, and
the events time the kernels back to back rather than the allocations (cudaFree would synchronize).

CPU (otherwise, or with --device cpu): 32-64 MB problems on the OpenMP threads, wall-clock timed,
against torch's CPU `copy_`.

    python benchmarks/bench_kernels.py [--device auto|cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

import llama4_native as l4
from llama4_native import ops


@dataclass
class Case:
    name: str
    shape: str
    dtype: str
    nbytes: int                # bytes read + written once
    out_bytes: int             # bytes each call allocates (bounds how many outputs we keep)
    fn: Callable[[], object]


# ---- timing --------------------------------------------------------------------------------------

class CudaTimer:
    """Median ms per call over `reps` batches, each at least `batch_ms` of GPU time."""

    def __init__(self, batch_ms: float, reps: int, keep_bytes: int = 8 << 30):
        self.batch_ms, self.reps, self.keep_bytes = batch_ms, reps, keep_bytes
        self.host_bound = False
        # Cycles per ms of the sleep kernel, to size the queue filler.
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        torch.cuda._sleep(10_000_000)
        end.record()
        end.synchronize()
        self.cycles_per_ms = 10_000_000 / max(start.elapsed_time(end), 1e-3)

    def _batch(self, fn, n: int, sleep_ms: float) -> tuple[float, float]:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.cuda._sleep(int(sleep_ms * self.cycles_per_ms))
        start.record()
        keep = [fn() for _ in range(n)]
        end.record()
        host_ms = (time.perf_counter() - t0) * 1e3
        end.synchronize()
        del keep  # frees (and synchronizes) outside the timed region
        return start.elapsed_time(end) / n, host_ms

    def __call__(self, case: Case) -> float:
        case.fn()  # warm-up
        one, host = self._batch(case.fn, 1, 20.0)
        n = max(1, math.ceil(self.batch_ms / max(one, 1e-3)))
        n = min(n, 200, max(1, self.keep_bytes // max(case.out_bytes, 1)))
        sleep_ms = max(20.0, 2.0 * host * n)  # the host must finish enqueueing before it ends
        samples = []
        for _ in range(self.reps):
            ms, host_ms = self._batch(case.fn, n, sleep_ms)
            if host_ms > sleep_ms:
                self.host_bound = True
            samples.append(ms)
        return statistics.median(samples)


class CpuTimer:
    """Median ms per call over `reps` batches of at least `batch_s` wall time."""

    def __init__(self, batch_s: float, reps: int):
        self.batch_s, self.reps = batch_s, reps
        self.host_bound = False

    def __call__(self, case: Case) -> float:
        case.fn()
        t0 = time.perf_counter()
        case.fn()
        one = time.perf_counter() - t0
        n = max(1, math.ceil(self.batch_s / max(one, 1e-6)))
        samples = []
        for _ in range(self.reps):
            t0 = time.perf_counter()
            for _ in range(n):
                case.fn()
            samples.append((time.perf_counter() - t0) * 1e3 / n)
        return statistics.median(samples)


# ---- cases ---------------------------------------------------------------------------------------

def _nb(*tensors_or_bytes) -> int:
    return sum(t if isinstance(t, int) else t.numel() * t.element_size() for t in tensors_or_bytes)


def copy_case(dev: str, nbytes: int) -> Case:
    n = nbytes // 2
    src = torch.randn(n, device=dev, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    return Case("copy_ (baseline)", f"[{n}]", "bfloat16", 2 * nbytes, 0, lambda: dst.copy_(src))


def op_cases(dev: str, scale: int) -> list[Case]:
    """scale = tokens; the GPU uses 32768, the CPU a few hundred."""
    bf16, f32, fp8 = torch.bfloat16, torch.float32, torch.float8_e4m3fn
    t, hidden, inter, heads, hd = scale, 5120, 8192, 40, 128
    cases = []

    x = torch.randn(t, hidden, device=dev, dtype=bf16)
    w = torch.randn(hidden, device=dev, dtype=bf16)
    cases.append(Case("rms_norm", f"[{t}, {hidden}]", "bfloat16", _nb(x, x, w), _nb(x),
                      lambda: ops.rms_norm(x, w, 1e-5)))

    q = torch.randn(t * heads, hd, device=dev, dtype=bf16)
    cases.append(Case("qk_norm (no weight)", f"[{t * heads}, {hd}]", "bfloat16", _nb(q, q), _nb(q),
                      lambda: ops.qk_norm(q, 1e-5)))

    xr = torch.randn(t, heads, hd, device=dev, dtype=bf16)
    pos = torch.arange(t, device=dev, dtype=torch.int32)
    inv = torch.tensor(ops.rope_inv_freq(hd, 500000.0), device=dev, dtype=f32)
    cases.append(Case("rope", f"[{t}, {heads}, {hd}]", "bfloat16", _nb(xr, xr, pos, inv), _nb(xr),
                      lambda: ops.rope(xr, pos, inv)))

    g = torch.randn(t, inter, device=dev, dtype=bf16)
    u = torch.randn(t, inter, device=dev, dtype=bf16)
    cases.append(Case("silu_gate", f"[{t}, {inter}]", "bfloat16", _nb(g, u, g), _nb(g),
                      lambda: ops.silu_gate(g, u)))

    cases.append(Case("quantize_fp8_rowwise", f"[{t}, {hidden}]", "bfloat16->e4m3",
                      _nb(x, x.numel(), 4 * t), x.numel() + 4 * t,
                      lambda: ops.quantize_fp8_rowwise(x, 1200.0)))

    codes, scales = ops.quantize_fp8_rowwise(x)
    cases.append(Case("dequantize_fp8_rowwise", f"[{t}, {hidden}]", "e4m3->bfloat16",
                      _nb(codes, scales, x), _nb(x),
                      lambda: ops.dequantize_fp8_rowwise(codes, scales, "bfloat16")))

    xf = torch.randn(t // 2, inter, device=dev, dtype=f32)
    cases.append(Case("cast", f"[{t // 2}, {inter}]", "float32->bfloat16",
                      _nb(xf, xf.numel() * 2), xf.numel() * 2, lambda: ops.cast(xf, "bfloat16")))
    cases.append(Case("cast", f"[{t}, {hidden}]", "bfloat16->e4m3", _nb(x, x.numel()), x.numel(),
                      lambda: ops.cast(x, "float8_e4m3fn")))

    tr = torch.randn(inter, t // 2, device=dev, dtype=bf16).t()
    cases.append(Case("contiguous (transpose)", f"[{t // 2}, {inter}]", "bfloat16",
                      _nb(tr, tr), _nb(tr), lambda: ops.contiguous(tr)))
    sl = g[:, : inter // 2]
    cases.append(Case("contiguous (row slice)", f"[{t}, {inter // 2}]", "bfloat16",
                      _nb(sl, sl), _nb(sl), lambda: ops.contiguous(sl)))
    return cases


# ---- main ----------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--quick", action="store_true", help="smaller problems, fewer repetitions")
    args = ap.parse_args()

    gpu_ok = l4.cuda_available() and torch.cuda.is_available()
    dev = "cuda" if (args.device == "cuda" or (args.device == "auto" and gpu_ok)) else "cpu"
    if dev == "cuda" and not gpu_ok:
        raise SystemExit("--device cuda: no usable GPU (llama4_native.cuda_available() or "
                         "torch.cuda.is_available() is False)")
    t_start = time.perf_counter()
    if dev == "cuda":
        torch.cuda.init()
        name = torch.cuda.get_device_name()
        timer = CudaTimer(batch_ms=2.0 if args.quick else 5.0, reps=3 if args.quick else 5)
        scale, copy_bytes = (8192 if args.quick else 32768), (256 << 20 if args.quick else 1 << 30)
    else:
        name = f"CPU, {l4.build_info()['cpu_threads']} OpenMP threads"
        timer = CpuTimer(batch_s=0.05 if args.quick else 0.2, reps=3)
        scale, copy_bytes = (256 if args.quick else 2048), (16 << 20 if args.quick else 64 << 20)

    base = copy_case(dev, copy_bytes)
    base_ms = timer(base)
    base_gbs = base.nbytes / base_ms / 1e6
    del base
    print(f"llama4_native {l4.__version__} kernel bandwidth on {name}")
    print(f"baseline: torch copy_ of {copy_bytes >> 20} MiB: {base_gbs:.0f} GB/s (read + write)\n")
    header = f"{'op':<24} {'shape':<18} {'dtype':<18} {'ms/call':>9} {'GB/s':>8} {'vs copy':>8}"
    print(header)
    print("-" * len(header))
    for case in op_cases(dev, scale):
        ms = timer(case)
        gbs = case.nbytes / ms / 1e6
        print(f"{case.name:<24} {case.shape:<18} {case.dtype:<18} {ms:>9.3f} {gbs:>8.0f} "
              f"{gbs / base_gbs:>7.0%}")
    if timer.host_bound:
        print("\nnote: in some batches the host was still enqueueing when the queue filler ended: "
              "those timings include host gaps")
    print(f"\n({time.perf_counter() - t_start:.1f} s)")


if __name__ == "__main__":
    main()
