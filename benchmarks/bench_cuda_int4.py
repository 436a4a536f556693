"""CUDA INT4 (W4A16) grouped GEMM over experts (llama4/moe_int4.h, llama4/moe_int4_config.h): its two
kernels against limits measured in the same run. Needs the CUDA backend and a GPU (else it says so
and exits 0); benchmarks/bench_quant.py has the CPU side.

Shapes: Llama 4 experts, gate_up (N 16384, K 5120) and down (N 5120, K 8192), group 128, E = 16
(Scout) and 128 (Maverick).
  * Decode (1..64 rows per busy expert): GB/s of bytes the call must read (the busy experts' int4
    weights and scales, x) and write (out), against a device-to-device copy of 2 GiB measured here
    (bytes read + written per second). Both kernels are timed; the heuristic's pick is marked *.
  * Prefill (512..4096 rows per expert): TFLOP/s (2 * rows * N * K per call) against torch.matmul
    of bf16 8192^3 measured here, and the ratio to torch running the same experts with bf16
    weights (one torch.matmul per expert, weights already dequantized: the memory-hungry baseline
    INT4 replaces).
Targets, printed as met / missed (the exit status does not depend on them): decode >= 70% of the
copy bandwidth at 1 row per busy expert; prefill >= 50% of the bf16 matmul peak at >= 2048 rows
per expert. Out and workspace are preallocated, so the timed calls allocate nothing (the CUTLASS
path's transposed scales come from the stream-ordered pool).

    python benchmarks/bench_cuda_int4.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import os

import torch

import llama4_native as l4
from llama4_native import ops
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_timing import cuda_ms  # noqa: E402

SHAPES = {"gate_up": (16384, 5120), "down": (5120, 8192)}  # (N, K)
GROUP = 128
TARGET_BW, TARGET_PEAK = 0.70, 0.50


def graph_ms(fn, calls: int = 16) -> tuple[float, str]:
    """ms per call of fn replayed from a CUDA graph of `calls` calls, so the host's per-call cost
    (binding, validation: tens of microseconds, as long as a decode call) is not what is timed;
    plain back-to-back calls if capture fails (say which)."""
    try:
        fn()
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(calls):
                fn()
        return cuda_ms(graph.replay) / calls, "graph"
    except RuntimeError as e:
        torch.cuda.synchronize()
        print(f"  (CUDA graph capture failed, timing eager calls: {e})")
        return cuda_ms(fn), "eager"


def copy_gbps() -> float:
    n = 2 << 30
    src, dst = torch.empty(n, dtype=torch.uint8, device="cuda"), torch.empty(n, dtype=torch.uint8, device="cuda")
    return 2 * n / cuda_ms(lambda: dst.copy_(src)) / 1e6


def bf16_peak_tflops() -> float:
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    return 2 * n**3 / cuda_ms(lambda: a @ b) / 1e9


def experts(E: int, N: int, K: int):
    """Random int4 weights [E, N, K/2] and bf16 scales [E, N, K/G] (the values do not matter)."""
    w = torch.randint(0, 256, (E, N, K // 2), dtype=torch.uint8, device="cuda")
    s = (torch.rand(E, N, K // GROUP, device="cuda") / 64 + 1e-3).to(torch.bfloat16)
    return w, s


def offsets(E: int, busy: int, rows_per_expert: int, shift: int = 0) -> torch.Tensor:
    """`busy` experts spread over E (moved by `shift`), each with rows_per_expert rows."""
    counts = [0] * E
    for i in range(busy):
        counts[(i * E // busy + shift) % E] = rows_per_expert
    off = [0]
    for c in counts:
        off.append(off[-1] + c)
    return torch.tensor(off, dtype=torch.int32, device="cuda")


def bench_decode(copy: float, quick: bool) -> None:
    print(f"\ndecode: GB/s of bytes read + written, vs copy {copy:.0f} GB/s (* = the heuristic's pick)")
    print(f"{'case':>34} {'gemv ms':>9} {'GB/s':>7} {'vs copy':>8} {'cutlass ms':>10} {'GB/s':>7} {'vs copy':>8}")
    # (E, busy experts, rows each); 16..64 rows show where the heuristic's gemv/cutlass crossover
    # (kMoeInt4GemvMaxRowsPerExpert = 8) really lies on this GPU.
    cases = [(16, 1, 1), (16, 16, 1), (16, 16, 4), (16, 16, 8), (16, 16, 16), (16, 16, 32),
             (16, 16, 64), (128, 1, 1), (128, 64, 1)]
    if quick:
        cases = [(16, 1, 1), (16, 16, 1), (16, 16, 8), (16, 16, 32)]
    for E in sorted({c[0] for c in cases}):
        for name, (N, K) in SHAPES.items():
            w, s = experts(E, N, K)
            ws = torch.empty(ops.moe_grouped_gemm_int4_workspace_bytes("cuda:0", E), dtype=torch.uint8,
                             device="cuda")
            for e_, busy, per in cases:
                if e_ != E:
                    continue
                R = busy * per
                x = torch.randn(R, K, device="cuda").to(torch.bfloat16)
                out = torch.empty(R, N, dtype=torch.bfloat16, device="cuda")
                # Successive calls use other busy experts, so the weights read exceed the L2 cache.
                offs = [offsets(E, busy, per, shift) for shift in range(max(1, E // busy))]
                nbytes = busy * (N * K // 2 + N * (K // GROUP) * 2) + R * K * 2 + R * N * 2
                pick = ops.moe_int4_gemm_config(R, E, N, GROUP)["name"]
                cells = []
                for kernel in ("gemv", "cutlass"):
                    turn = iter(range(1 << 62))

                    def call():
                        off = offs[next(turn) % len(offs)]
                        ops.moe_grouped_gemm_int4_kernel(x, w, s, off, kernel, out=out, workspace=ws)
                    ms, how = graph_ms(call)
                    gbps = nbytes / ms / 1e6
                    mark = "*" if kernel == pick else " "
                    cells.append(f"{ms:9.4f}{mark} {gbps:6.0f} {gbps / copy:8.1%}")
                    if how != "graph":
                        cells[-1] += " (eager)"
                    if kernel == pick and per == 1:
                        verdict = "met" if gbps / copy >= TARGET_BW else "missed"
                        cells[-1] += f" [{verdict} {TARGET_BW:.0%}]"
                label = f"E={E} {name} {busy} busy x {per} rows"
                print(f"{label:>34} {cells[0]} {cells[1]}")
            del w, s


def bench_prefill(peak: float, quick: bool) -> None:
    print(f"\nprefill: TFLOP/s, vs bf16 matmul {peak:.0f} TFLOP/s, and torch with bf16 experts (ratio > 1: INT4 faster)")
    print(f"{'case':>32} {'kernel':>8} {'ms':>9} {'TFLOP/s':>8} {'vs peak':>8} {'torch ms':>9} {'torch/ours':>10}")
    E = 16
    per_expert = [512, 2048] if quick else [512, 2048, 4096]
    for name, (N, K) in SHAPES.items():
        w, s = experts(E, N, K)
        w_bf16 = torch.randn(E, N, K, device="cuda", dtype=torch.bfloat16)
        ws = torch.empty(ops.moe_grouped_gemm_int4_workspace_bytes("cuda:0", E), dtype=torch.uint8, device="cuda")
        for per in per_expert:
            R = E * per
            x = torch.randn(R, K, device="cuda").to(torch.bfloat16)
            out = torch.empty(R, N, dtype=torch.bfloat16, device="cuda")
            off = offsets(E, E, per)
            pick = ops.moe_int4_gemm_config(R, E, N, GROUP)["name"]
            ms = cuda_ms(lambda: ops.moe_grouped_gemm_int4_kernel(x, w, s, off, pick, out=out, workspace=ws))
            tflops = 2 * R * N * K / ms / 1e9
            xs, ys = x.view(E, per, K), torch.empty_like(out).view(E, per, N)

            def torch_experts():
                for e in range(E):
                    torch.matmul(xs[e], w_bf16[e].T, out=ys[e])
            t_ms = cuda_ms(torch_experts)
            torch_cell = f"{t_ms:9.3f} {t_ms / ms:10.2f}"
            verdict = ""
            if per >= 2048:
                verdict = f" [{'met' if tflops / peak >= TARGET_PEAK else 'missed'} {TARGET_PEAK:.0%}]"
            label = f"E={E} {name} {per} rows/expert"
            print(f"{label:>32} {pick:>8} {ms:9.3f} {tflops:8.0f} {tflops / peak:8.1%} {torch_cell}{verdict}")
        del w, s, w_bf16


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer cases (smoke run)")
    args = p.parse_args()
    if not (l4.cuda_available() and torch.cuda.is_available()):
        print("bench_cuda_int4: no CUDA backend or no GPU here: nothing to measure")
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}")
    copy = copy_gbps()
    peak = bf16_peak_tflops()
    print(f"copy: {copy:.0f} GB/s (read + write); bf16 matmul 8192^3: {peak:.0f} TFLOP/s")
    bench_decode(copy, args.quick)
    bench_prefill(peak, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
