"""Vision tower speed: llama4_native's CPU VisionModel.encode vs transformers' vision_model +
multi_modal_projector, same checkpoint, same pixels, same thread count; prints tiles/s, the
achieved GFLOP/s (dense matmuls and attention) and the ratio.

The checkpoint is a mid-size tower so the timing means something on a few cores: hidden 512,
4 layers, 8 heads (head_dim 64), 336-pixel tiles of 14-pixel patches (577 tokens per tile, 144
<|patch|> rows out), adapter 2048 -> 1024 -> 1024, projector 1024 -> 1024; a 1-layer text model
rides along only because the checkpoint format needs one. Outputs are checked to agree first.

    python benchmarks/bench_vision.py [--dtype bfloat16] [--tiles 4] [--threads 2] [--repeat 7]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roofline  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "build", "bench-vision-ckpt")

VISION = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=4, num_attention_heads=8,
              image_size=336, patch_size=14, num_channels=3, pixel_shuffle_ratio=0.5,
              vision_output_dim=1024, projector_input_dim=1024, projector_output_dim=1024,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
TEXT = dict(vocab_size=1024, hidden_size=1024, intermediate_size=256, intermediate_size_mlp=512,
            num_hidden_layers=1, num_attention_heads=8, num_key_value_heads=2, head_dim=128,
            num_local_experts=2, attention_chunk_size=8192, bos_token_id=1, eos_token_id=2,
            pad_token_id=0)


def make_checkpoint(path: str) -> None:
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        return
    torch.manual_seed(0)
    cfg = Llama4Config(text_config=TEXT, vision_config=VISION, image_token_index=1000,
                       boi_token_index=1001, eoi_token_index=1002)
    Llama4ForConditionalGeneration(cfg).float().save_pretrained(path)  # fp32 params, complex freqs kept
    open(marker, "w").close()


def flops_per_tile() -> float:
    """Multiply-adds x 2 of the tower's matmuls and attention for one tile."""
    D, I, L = VISION["hidden_size"], VISION["intermediate_size"], VISION["num_hidden_layers"]
    n = (VISION["image_size"] // VISION["patch_size"]) ** 2
    t = n + 1
    patch = n * 3 * VISION["patch_size"] ** 2 * D
    layer = t * D * (4 * D + 2 * I) + 2 * t * t * D  # qkv + o + fc1 + fc2, then q.k and p.v
    out = n // 4
    adapter = out * (4 * D * VISION["projector_input_dim"] + VISION["projector_output_dim"] ** 2)
    projector = out * VISION["projector_output_dim"] * TEXT["hidden_size"]
    return 2.0 * (patch + L * layer + adapter + projector)


def timed(fns, repeat: int) -> list[float]:
    """Median wall time of each function over `repeat` rounds, the functions interleaved within a
    round so that both see the same machine load (roofline.median_s)."""
    return roofline.median_s(fns, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--dir", default=DEFAULT_DIR)
    a = ap.parse_args()
    import llama4_native as l4  # the installed package (the source tree has no built _C)
    from transformers import Llama4ForConditionalGeneration

    torch.set_num_threads(a.threads)
    l4.set_cpu_threads(a.threads)
    make_checkpoint(a.dir)
    dt = getattr(torch, a.dtype)
    pixels = (torch.rand(a.tiles, 3, 336, 336, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dt)

    ours = l4.load(a.dir, dtype=a.dtype, max_sequences=1)  # the text side is never run
    hf = Llama4ForConditionalGeneration.from_pretrained(a.dir, dtype=dt).eval()  # keeps freqs_ci complex

    def run_hf():
        with torch.inference_mode():
            feats = hf.vision_model(pixels).last_hidden_state
            return hf.multi_modal_projector(feats.reshape(-1, feats.shape[-1]))

    def run_ours():
        return ours.encode_images([p[None] for p in pixels])

    err = (run_ours().float() - run_hf().float()).abs().max().item()
    t_hf, t_ours = timed([run_hf, run_ours], a.repeat)
    gf = flops_per_tile() * a.tiles / 1e9
    print(f"vision tower {a.dtype}, {a.tiles} tiles of 336x336 (577 tokens, hidden 512, 4 layers), "
          f"{a.threads} threads; outputs agree to {err:.1e}; medians of {a.repeat} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  transformers : {a.tiles / t_hf:7.2f} tiles/s  {gf / t_hf:7.1f} GFLOP/s  ({t_hf * 1e3:.0f} ms)")
    print(f"  llama4_native: {a.tiles / t_ours:7.2f} tiles/s  {gf / t_ours:7.1f} GFLOP/s  ({t_ours * 1e3:.0f} ms)")
    print(f"  ratio llama4_native / transformers: {t_hf / t_ours:.2f}x")


if __name__ == "__main__":
    main()
