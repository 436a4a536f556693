"""Prints the README's table of what fits (llama4_native.plan): Scout and Maverick in bf16, with FP8
routed experts, and in INT4 W4A16 (group 128: routed experts, shared expert and dense MLPs, as
quantization="int4" and llm-compressor's recipe make them), bf16 and FP8 KV cache, on 1, 2, 4 and 8
H100 80 GB / H200 141 GB, per GPU, 90% of the memory used."""
from __future__ import annotations

import llama4_native as l4


def cell(p) -> str:
    if not p.fits:
        return f"no ({p.weight_bytes / 2**30:.0f} GiB weights)"
    ctx = p.max_context
    ctx_s = f"{ctx / 2**20:.1f}M" if ctx >= 2**20 else f"{ctx // 1000}k"
    return f"{p.weight_bytes / 2**30:.0f} GiB, {ctx_s} ctx, {p.max_sequences(32768)} x 32k"


def main() -> None:
    kv_dtypes = ["bf16", "fp8"]
    print("| model | quantized | KV | GPUs | H100 80 GB (per GPU) | H200 141 GB (per GPU) |")
    print("|---|---|---|---|---|---|")
    for preset in ("scout", "maverick"):
        for quant in (None, "fp8", "int4"):
            for kv in kv_dtypes:
                for gpus in (1, 2, 4, 8):
                    cells = [cell(l4.plan(preset=preset, gpu_memory=g, gpus=gpus, quantization=quant,
                                          kv_cache_dtype=kv)) for g in ("h100", "h200")]
                    print(f"| {preset} | {quant or 'bf16'} | {kv} | {gpus} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
