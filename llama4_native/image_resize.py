"""Antialiased bilinear resize of uint8 images, as torchvision runs it for the Llama 4 preprocessor.

Contract: `resize_bilinear_aa(img, (out_h, out_w), kernel)` takes `img: [C, H, W] uint8` (any C, CPU)
and returns `[C, out_h, out_w] uint8`. Same size in → the input back, unchanged.

The filter is the one PIL introduced in 2.7 and torch copied for `interpolate(..., antialias=True)`:
a separable triangle filter whose support is stretched by the downscale factor (so a 3x reduction
averages over ~6 input pixels, not 2), pixel-centre aligned (`align_corners=False`). Per axis, output
pixel i has centre `c = (i + 0.5) * in/out`, takes input pixels
`[int(c - support + 0.5), int(c + support + 0.5))`, weights `tri((j - c + 0.5) / max(in/out, 1))`
normalised to sum 1. The width is resampled first, then the height (the order matters for "uint8").

torchvision (what Hugging Face's `Llama4ImageProcessor` calls) has two code paths for uint8 tensors,
chosen by the machine, and they round differently; each of our kernels reproduces one of them:

* `kernel="float"` (default): uint8 → float32, antialiased interpolate, `round()` (half to even)
  back to uint8. torchvision takes this path on x86 CPUs whose torch capability string is not
  exactly "AVX2" (AVX512 machines included), on ARM, and on GPUs (with CUDA's float kernel, not
  checked here): most hosts that produce HF references. We compute the weights in float32 as
  torch does (float64 weights would move some window edges) and accumulate with one float32
  rounding per tap, as torch's compiled `+=` (an FMA) does.
* `kernel="uint8"`: torch's native uint8 kernel (a port of Pillow-SIMD), which torchvision uses on
  x86 CPUs whose capability is "AVX2": float64 weights turned into int16 fixed point with a per-axis
  precision, +half, shift, clamp, and the intermediate (after the width pass) rounded to uint8.
  Pure integer arithmetic, so the result is the same on every machine.

Measured agreement, asserted by tests/test_image_preprocess.py (30 synthetic photo-like images,
8-2000 px per side, resized up and down to 1-1680 px, 15.4 million values; torch 2.13 CPU, AVX512
host, Pillow 13):
  "uint8" vs torch's uint8 kernel (torchvision's AVX2 path): identical.
  "float" vs torch's float32 CPU kernel + round (torchvision's other path): max 1 level, 5 values
          in 15.4 million differ (all in windows of more than 5 taps, where torch's compiled loop
          rounds in a way we did not pin down).
  vs PIL `Image.resize(BILINEAR, reducing_gap=None)` (Meta's `preprocess.py` resizes PIL images):
          "uint8" max 1 level, mean |diff| 0.049; "float" max 1 level, mean 0.185.
  "float" vs "uint8" (how far apart the two HF paths are): max 1 level, mean 0.178.
PIL's BILINEAR is antialiased when downscaling: Pillow's docs say BILINEAR "for resize calculate[s]
the output pixel value using linear interpolation on all pixels that may contribute to the output
value", and the Pillow 2.7 release notes say every resize filter became convolution-based and
antialiased in 2.7. torchvision's resize docs say PIL always antialiases and that `antialias=True`
brings tensor results close to PIL; torch's uint8 kernel is a port of Pillow-SIMD's.
Speed: about 1-3 s for a 12-megapixel photo on 2 busy CPU cores ("uint8" is the faster kernel).
"""
from __future__ import annotations

import math

import numpy as np
import torch

KERNELS = ("float", "uint8")


def _axis_weights(n_in: int, n_out: int, ft) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel i: first input index xmin [n_out] int64 and weights w [n_out, taps] (dtype ft);
    output i = sum_j w[i, j] * input[xmin[i] + j] (w is zero past pixel i's window).

    torch's `_compute_indices_min_size_weights_aa`, operation for operation: ft is float64 for its
    uint8 path and float32 (the input dtype) for its float path, and each `.astype(ft)` / `ft(...)`
    below is a place where the C++ stores a double expression into a `scalar_t`. The float32 and
    float64 weights differ by more than rounding: a window edge can move by one pixel.
    """
    f64 = np.float64
    scale = ft(ft(n_in) / ft(n_out))
    support = scale if scale >= 1.0 else ft(1.0)  # bilinear: half-width 1, stretched when shrinking
    taps = int(math.ceil(support)) * 2 + 1
    invscale = ft(1.0 / f64(scale)) if scale >= 1.0 else ft(1.0)
    center = (f64(scale) * (np.arange(n_out, dtype=f64) + 0.5)).astype(ft)
    # C++ static_cast<int64_t>(double) truncates toward zero, like np.trunc.
    xmin = np.maximum(np.trunc((center - support).astype(f64) + 0.5).astype(np.int64), 0)
    xend = np.minimum(np.trunc((center + support).astype(f64) + 0.5).astype(np.int64), n_in)
    size = np.clip(xend - xmin, 0, taps)
    j = np.arange(taps, dtype=np.int64)[None, :]
    d = ((j + xmin[:, None]).astype(ft) - center[:, None]).astype(ft)
    x = np.abs(((d.astype(f64) + 0.5) * f64(invscale)).astype(ft))
    w = np.where((j < size[:, None]) & (x < 1.0), (1.0 - x.astype(f64)).astype(ft), ft(0.0))
    # torch sums the taps one after another in ft; cumsum is sequential too (np.sum is pairwise).
    total = np.cumsum(w, axis=1, dtype=ft)[:, -1:]
    w = np.divide(w, total, out=w, where=total != 0.0).astype(ft)
    return xmin, w


def _int16_weights(w: np.ndarray) -> tuple[np.ndarray, int]:
    """Fixed-point weights of torch's uint8 path (`_compute_index_ranges_int16_weights`): the
    largest precision p <= 22 with round(max_w * 2^(p+1)) < 2^15, weights round-half-up(w * 2^p)."""
    wt_max = float(w.max())
    p = 0
    while p < 22 and int(0.5 + wt_max * (1 << (p + 1))) < (1 << 15):
        p += 1
    return np.floor(w * (1 << p) + 0.5).astype(np.int64), p


def _resample_axis(x: torch.Tensor, n_out: int, dim: int, kernel: str) -> torch.Tensor:
    """Resample axis `dim` of x [C, H, W] to n_out. x is uint8 (or the float32 output of the other
    axis); the result is float32 for "float" and uint8 for "uint8" (torch rounds between passes)."""
    n_in = x.shape[dim]
    xmin, w = _axis_weights(n_in, n_out, np.float64 if kernel == "uint8" else np.float32)
    shape = [1, 1, 1]
    shape[dim] = n_out
    if kernel == "uint8":
        wi, p = _int16_weights(w)
        out_shape = list(x.shape)
        out_shape[dim] = n_out
        # Max sum is 255 * ~2^p with p <= 22, below 2^31: int32 is exact, as in torch's kernel.
        acc = torch.full(out_shape, 1 << (p - 1), dtype=torch.int32)
        weights = torch.from_numpy(wi.astype(np.int32))
    else:
        acc = None
        weights = torch.from_numpy(w.astype(np.float64))
    for j in range(w.shape[1]):
        wj = weights[:, j]
        if not bool(wj.any()):
            continue  # a tap past every pixel's window: contributes nothing
        # Taps past a pixel's window have weight 0; clamping their index keeps the gather in range.
        idx = torch.from_numpy(np.minimum(xmin + j, n_in - 1))
        # Gathering from uint8 and promoting in the multiply moves fewer bytes than a float copy.
        term = x.index_select(dim, idx) * wj.view(shape)
        if kernel == "uint8":
            acc.add_(term)
        elif acc is None:
            acc = term.to(torch.float32)  # torch: output = t0 * w0, rounded to float32
        else:
            # torch: output += t * w in float32, which the compiler fuses into an FMA (one rounding).
            # The product of a float32 pixel and a float32 weight is exact in float64, so adding in
            # float64 and rounding once reproduces the FMA; a zero weight leaves acc unchanged.
            acc = (acc.to(torch.float64) + term).to(torch.float32)
    if kernel == "uint8":
        return (acc >> p).clamp_(0, 255).to(torch.uint8)
    return acc


def resize_bilinear_aa(img: torch.Tensor, size: tuple[int, int], kernel: str = "float") -> torch.Tensor:
    """Antialiased bilinear resize. img: [C, H, W] uint8 → [C, size[0], size[1]] uint8."""
    if kernel not in KERNELS:
        raise ValueError(f"resize kernel must be one of {KERNELS}, got {kernel!r}")
    if img.dtype != torch.uint8 or img.dim() != 3:
        raise ValueError(f"img must be [C, H, W] uint8, got {tuple(img.shape)} {img.dtype}")
    out_h, out_w = int(size[0]), int(size[1])
    if out_h < 1 or out_w < 1 or img.shape[1] < 1 or img.shape[2] < 1:
        raise ValueError(f"cannot resize {tuple(img.shape[1:])} to {(out_h, out_w)}: sizes must be >= 1")
    if (out_h, out_w) == tuple(img.shape[1:]):
        return img  # torchvision returns the input untouched in this case too
    x = img
    if out_w != x.shape[2]:
        x = _resample_axis(x, out_w, 2, kernel)
    if out_h != x.shape[1]:
        x = _resample_axis(x, out_h, 1, kernel)
    if kernel == "float":
        # torch.round is half-to-even, like torchvision's round_(); the clamp only catches fp noise.
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x
