"""Text-decoder weights as torch tensors, over the C++ loader (llama4/checkpoint.h).

The C++ loader owns the one table from Hugging Face names to the engine's names and layouts (fused
and per-expert experts, tied lm_head, FP8 layouts, quantization at load) and validates the whole
checkpoint from its headers before reading data. A tensor that needs no conversion is a zero-copy
view of the memory-mapped file (read-only memory, see safetensors_io). This module adds the torch
view of the result and a progress bar.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Iterator

import torch

from . import _C
from .config import TextConfig
from .quantization import Fp8Plan
from .safetensors_io import Checkpoint, CheckpointError, as_torch, open_checkpoint  # noqa: F401

OUT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PROGRESS_MIN_BYTES = 1 << 30


def load_text_weights(checkpoint: str | os.PathLike | Checkpoint, config: TextConfig,
                      dtype: str = "bfloat16", progress: bool | None = None,
                      fp8: Fp8Plan | None = None) -> dict[str, torch.Tensor]:
    """All text-decoder tensors in the engine's names/layouts, converted to `dtype`; FP8 experts
    (stored, or quantized at load per `fp8`) as e4m3 + float32 scales."""
    return dict(iter_text_weights(checkpoint, config, dtype, progress, fp8))


def iter_text_weights(checkpoint: str | os.PathLike | Checkpoint, config: TextConfig,
                      dtype: str = "bfloat16", progress: bool | None = None,
                      fp8: Fp8Plan | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Like load_text_weights, one tensor at a time: a consumer that copies each tensor elsewhere
    (e.g. to the GPU) never holds more than one converted tensor in host memory. The whole checkpoint
    is validated (headers only) before the first tensor is yielded."""
    ckpt = open_checkpoint(checkpoint)
    bar = ProgressBar(ckpt.path, progress)
    stream = _C.text_weight_stream(ckpt._c, config, dtype, fp8, bar.update)
    for name, t in stream:
        yield name, torch.from_dlpack(t)
    bar.close()


class ProgressBar:
    """A one-line progress bar on stderr (no tqdm dependency), fed by the loader's (done, total)
    callback; `show` None shows it for checkpoints over PROGRESS_MIN_BYTES."""

    def __init__(self, label: str, show: bool | None):
        self.show, self.label = show, os.path.basename(os.fspath(label).rstrip("/"))
        self.total = self.done = 0
        self.t0 = self.last = time.monotonic()
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.show is None:
            self.show = total > PROGRESS_MIN_BYTES
        now = time.monotonic()
        if self.show and (not self.drawn or now - self.last >= 0.1 or done >= total):
            self.last, self.drawn = now, True
            self._draw()

    def _draw(self) -> None:
        frac = min(self.done / max(self.total, 1), 1.0)
        bar = "#" * int(30 * frac)
        rate = self.done / max(time.monotonic() - self.t0, 1e-9) / 1e9
        sys.stderr.write(f"\rloading {self.label} [{bar:<30}] {100 * frac:5.1f}% "
                         f"{self.done / 1e9:.2f}/{self.total / 1e9:.2f} GB {rate:.2f} GB/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.show:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()
