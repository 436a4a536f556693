"""Loading Hugging Face's fused experts in place, and the expert GEMMs over that layout.

Writes (once, cached) a text-only Llama 4 checkpoint with Scout's true widths but few layers and
experts, sized to fit a shared machine (default: 1 MoE layer, 4 experts, hidden 5120, expert width
8192 in bf16: ~1 GB of fused experts, `experts.gate_up_proj` [E, D, 2I] and `experts.down_proj`
[E, I, D]), then, each in a fresh process and in the same run:

Load, for this build and for --old-python (an older build's interpreter, e.g. main's before the
experts were read in place, which transposed them into new copies):
  - load time / read time, the read time being that of reading the file into a buffer (from the
    page cache: it is read once first so that both builds see the same cache; the median of reads
    before and after the loads, the better of the two); wall and CPU time (a shared machine's wall
    times are noise). "load" is _C.load_checkpoint; "load+touch" adds a first read of every
    weight byte (the AVX-512 read probe over each tensor's memory: what the first forward pass
    pays for the pages a zero-copy load has not read);
  - peak RSS growth / file size: VmHWM after load+touch minus VmRSS before the load (file pages of
    the memory map count as they are touched; copies count in full).

Kernels, this build only: the expert layer's two GEMMs at Scout's shapes (gate_up x[M, 5120] .
[5120, 16384], down x[M, 8192] . [8192, 5120]) through ops.grouped_linear, with the expert in
Hugging Face's layout read in place (KN) vs the row-major copy the old loader made (NK). CPU time
(time.process_time, median of --reps) rather than wall time, since the machine is shared: the
ratio kn / nk at decode (M = 1, 4, 8: the weight-streaming GEMVs) and prefill (M = 64, 256: the
packed bf16 GEMM, or sgemm for fp32).

    python benchmarks/bench_load.py [--old-python /work/wt/lead/.venv/bin/python] [--experts 4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "build", "bench-load-ckpt")

SCOUT = dict(hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16384, num_attention_heads=40,
             num_key_value_heads=8, head_dim=128)


def text_config(layers: int, experts: int, vocab: int) -> dict:
    return dict(SCOUT, vocab_size=vocab, num_hidden_layers=layers, num_local_experts=experts,
                num_experts_per_tok=1, interleave_moe_layer_step=1, use_qk_norm=True,
                no_rope_layers=[1] * layers, attention_chunk_size=8192, rope_theta=500000.0,
                rope_scaling={"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                max_position_embeddings=16384, rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False,
                bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
                model_type="llama4_text", architectures=["Llama4ForCausalLM"], torch_dtype="bfloat16")


def make_checkpoint(path: str, layers: int, experts: int, vocab: int) -> str:
    from safetensors.torch import save_file

    cfg = text_config(layers, experts, vocab)
    marker = os.path.join(path, ".complete")
    if os.path.exists(marker) and open(marker).read() == json.dumps(cfg):
        return path
    os.makedirs(path, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    D, I, V, E = cfg["hidden_size"], cfg["intermediate_size"], vocab, experts
    H, KV, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def mat(*shape):  # bf16, filled a slab at a time (no fp32 copy of a whole 1 GB tensor)
        out = torch.empty(shape, dtype=torch.bfloat16)
        flat = out.view(shape[0], -1)
        for i in range(shape[0]):
            flat[i] = (torch.randn(flat.shape[1], generator=g) / (shape[-2] ** 0.5)).to(torch.bfloat16)
        return out

    t = {"model.embed_tokens.weight": mat(V, D), "model.norm.weight": torch.ones(D, dtype=torch.bfloat16),
         "lm_head.weight": mat(V, D)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = torch.ones(D, dtype=torch.bfloat16)
        t[p + "post_attention_layernorm.weight"] = torch.ones(D, dtype=torch.bfloat16)
        t[p + "self_attn.q_proj.weight"] = mat(H * d, D)
        t[p + "self_attn.k_proj.weight"] = mat(KV * d, D)
        t[p + "self_attn.v_proj.weight"] = mat(KV * d, D)
        t[p + "self_attn.o_proj.weight"] = mat(D, H * d)
        f = p + "feed_forward."
        t[f + "router.weight"] = mat(E, D)
        t[f + "experts.gate_up_proj"] = mat(E, D, 2 * I)  # x @ W layout, as the hub stores it
        t[f + "experts.down_proj"] = mat(E, I, D)
        t[f + "shared_expert.gate_proj.weight"] = mat(I, D)
        t[f + "shared_expert.up_proj.weight"] = mat(I, D)
        t[f + "shared_expert.down_proj.weight"] = mat(D, I)
    save_file(t, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    with open(marker, "w") as fh:
        fh.write(json.dumps(cfg))
    return path


# Runs in a fresh process of the interpreter under test: prints a JSON line.
LOAD_CHILD = r"""
import json, sys, time, torch
from llama4_native import _C
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
path = sys.argv[1]
torch.set_num_threads(int(sys.argv[2]))
_C.set_cpu_threads(int(sys.argv[2])) if hasattr(_C, "set_cpu_threads") else None
rss0 = status("VmRSS")
t0, c0 = time.perf_counter(), time.process_time()
loaded = _C.load_checkpoint(path, "bfloat16")
weights = {n: torch.from_dlpack(t) for n, t in loaded.text_weights.items()}
t1, c1 = time.perf_counter(), time.process_time()
for w in weights.values():  # every byte once, in memory order (a transposed view's is its storage's)
    m = w.permute(*sorted(range(w.dim()), key=lambda d: -w.stride(d))) if w.dim() > 1 else w
    _C.cpu_read_probe(m)
t2, c2 = time.perf_counter(), time.process_time()
strided = sorted(n for n, w in weights.items() if not w.is_contiguous())
print(json.dumps({"load": [t1 - t0, c1 - c0], "touch": [t2 - t1, c2 - c1], "rss0": rss0, "hwm": status("VmHWM"),
                  "strided": strided}))
"""


def read_time(path: str, reps: int = 3) -> tuple[float, float]:
    """(wall, CPU) seconds of reading the file into a buffer (from the page cache), medians."""
    buf = bytearray(64 << 20)
    walls, cpus = [], []
    for _ in range(reps + 1):  # the first read puts the file in the page cache
        t0, c0 = time.perf_counter(), time.process_time()
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls[1:]), statistics.median(cpus[1:])


def run_load(python: str, folder: str, threads: int) -> dict:
    import llama4_native

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if python == sys.executable:  # this build: the installed package, not a source tree's
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(llama4_native.__file__))
    r = subprocess.run([python, "-c", LOAD_CHILD, folder, str(threads)], capture_output=True, text=True, env=env,
                       cwd=tempfile.gettempdir(), timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{python}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def cpu_median(fn, reps: int) -> float:
    """CPU seconds per call: the median of reps samples of enough calls each to span >= 0.2 s of CPU
    time (process_time ticks are coarse: 4 ms here)."""
    c0 = time.process_time()
    fn()
    calls = max(1, int(0.2 / max(time.process_time() - c0, 1e-3)))
    times = []
    for _ in range(reps):
        c0 = time.process_time()
        for _ in range(calls):
            fn()
        times.append((time.process_time() - c0) / calls)
    return statistics.median(times)


def bench_kernels(reps: int, dtypes: list[str]) -> None:
    from llama4_native import ops

    D, I = SCOUT["hidden_size"], SCOUT["intermediate_size"]
    g = torch.Generator().manual_seed(1)
    print("\nexpert GEMMs at Scout's shapes, one expert, CPU ms per call (median of %d): kn = HF layout in "
          "place, nk = the row-major copy the old loader made" % reps)
    print(f"{'dtype':9} {'matrix':8} {'M':>4} {'nk ms':>9} {'kn ms':>9} {'kn/nk':>6}")
    for dtype in dtypes:
        dt = getattr(torch, dtype)
        for name, K, N in (("gate_up", D, 2 * I), ("down", I, D)):
            w_hf = (torch.randn(1, K, N, generator=g) / K ** 0.5).to(dt)
            kn, nk = w_hf.transpose(1, 2), w_hf.transpose(1, 2).contiguous()
            for M in (1, 4, 8, 64, 256):
                x = torch.randn(M, K, generator=g).to(dt)
                off = torch.tensor([0, M], dtype=torch.int32)
                t_nk = cpu_median(lambda: ops.grouped_linear(x, nk, off), reps)
                t_kn = cpu_median(lambda: ops.grouped_linear(x, kn, off), reps)
                print(f"{dtype:9} {name:8} {M:4d} {t_nk * 1e3:9.1f} {t_kn * 1e3:9.1f} {t_kn / t_nk:6.2f}", flush=True)
            del w_hf, kn, nk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=DEFAULT_DIR)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192, help="small: the experts are what this measures")
    ap.add_argument("--old-python", default="/work/wt/lead/.venv/bin/python",
                    help="an older build's interpreter (the transposing loader); '' to skip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-kernels", action="store_true")
    args = ap.parse_args()
    from llama4_native import set_cpu_threads

    set_cpu_threads(args.threads)
    torch.set_num_threads(args.threads)
    if not args.skip_load:
        folder = make_checkpoint(os.path.abspath(args.dir), args.layers, args.experts, args.vocab)
        f = os.path.join(folder, "model.safetensors")
        size = os.path.getsize(f)
        builds = [("ours", sys.executable)] + ([("old", args.old_python)] if args.old_python else [])
        read = read_time(f)
        runs = {label: run_load(python, folder, args.threads) for label, python in builds}
        read = tuple(min(a, b) for a, b in zip(read, read_time(f)))  # bracket the loads
        print(f"checkpoint {size / 1e9:.2f} GB ({args.layers} layer(s), {args.experts} experts, hidden "
              f"{SCOUT['hidden_size']}, expert width {SCOUT['intermediate_size']}); reading it (page cache): "
              f"{read[0]:.2f} s wall = {size / read[0] / 1e9:.2f} GB/s, {read[1]:.2f} s CPU")
        print("ratios to the read time (wall | CPU); peak RSS growth (VmHWM after load+touch - VmRSS before) / file size")
        print(f"{'build':6} {'load/read':>15} {'(load+touch)/read':>19} {'RSS/size':>9}  in place (strided views)")
        for label, r in runs.items():
            lt = [a + b for a, b in zip(r["load"], r["touch"])]
            growth = (r["hwm"] - r["rss0"]) / size
            print(f"{label:6} {r['load'][0] / read[0]:7.2f} | {r['load'][1] / read[1]:5.2f} "
                  f"{lt[0] / read[0]:9.2f} | {lt[1] / read[1]:5.2f} {growth:9.2f}  {', '.join(r['strided']) or '-'}",
                  flush=True)
    if not args.skip_kernels:
        bench_kernels(args.reps, args.dtypes)


if __name__ == "__main__":
    main()
