"""Llama 4 image preprocessing: image → tiles of normalised pixels for the vision encoder (spec §3.1).

    preprocess_image(image) -> ImageInput
        pixel_values  [tiles, 3, tile_size, tile_size]  (float32 by default)
                      local tiles in row-major order, then the global thumbnail when there is more
                      than one local tile
        aspect_ratio  (ratio_h, ratio_w): the grid of local tiles
        num_tiles     pixel_values.shape[0] = ratio_h * ratio_w (+ 1 for the global tile)

This reproduces Hugging Face's `Llama4ImageProcessor` (transformers 5.23), which Meta's
`preprocess.py` matches up to the resize kernel (PIL there, see `image_resize`):

1. Candidate canvases: for n = max_patches..1 tiles, every factorisation a * b = n gives the canvas
   (a * tile, b * tile), listed in HF's order (grouped by aspect ratio). 50 canvases for 16.
2. Best fit: scale = min(canvas_h / H, canvas_w / W) per canvas. The smallest scale >= 1 wins (the
   largest with resize_to_max_canvas); with none >= 1, the largest scale < 1. Among canvases with the
   winning scale the smallest area wins, the first listed on a tie (no image size we
   scanned, up to 3000 px a side, produces such a tie with 16 tiles).
3. Target: (min(max(H, tile), canvas_h), min(max(W, tile), canvas_w)), i.e. never upscale past one
   tile (the canvas itself with resize_to_max_canvas). Resize preserving the aspect ratio: if
   tw / W < th / H the size is (min(floor(H * tw / W), th), tw), else (th, min(floor(W * th / H), tw)),
   each side at least 1.
4. Antialiased bilinear resize on uint8 (`image_resize`), pasted top-left on a black canvas.
5. Rescale and normalise. reference_bf16=True (default) does it in bfloat16 with HF's exact torch
   ops: x = bf16(u8) * (1/255), then (x - bf16(mean)) / bf16(std), every step rounded to bf16, as the
   original Llama 4 code does; then cast to `dtype` (exact for float32). reference_bf16=False uses
   float32 throughout with Meta's ToTensor + Normalize arithmetic (u8 / 255, - mean, / std). Black
   padding becomes -1 with the default mean = std = 0.5.
6. Split the canvas into ratio_h x ratio_w tiles, row-major.
7. With more than one tile, append the global tile: the whole original image resized, ignoring its
   aspect ratio, to tile x tile, normalised the same way.

Resize accuracy (measured, see `image_resize`): the default kernel matches torch's float32 CPU
kernel, which torchvision uses for HF on AVX512 and ARM CPUs (GPUs take the same path with CUDA's
kernel), in all but 5 of 15.4 million test values, each off by one uint8 level; resize_kernel="uint8" is bit-identical to torch's uint8 kernel (HF on AVX2-only
CPUs); both stay within one uint8 level of PIL's BILINEAR resize (Meta's reference), with a mean
absolute difference of 0.19 levels ("float") and 0.05 levels ("uint8").

HF computes the scales in step 2 and, when a side is limited by the canvas, the division and the
multiply of step 3 on float32 torch tensors; we repeat that arithmetic, because doing it in float64
changes the resized size by one pixel for about 1 in 4,500 sizes up to 4000x4000 (e.g. 3240x540 → 2688x447 in HF,
2688x448 in float64 and in Meta's code, which uses Python floats).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

from .image_io import load_rgb_bounded
from .image_resize import KERNELS, resize_bilinear_aa

_f32 = np.float32


@dataclass(frozen=True, eq=False)
class ImageInput:
    """One preprocessed image. pixel_values: [num_tiles, 3, tile, tile]."""

    pixel_values: torch.Tensor
    aspect_ratio: tuple[int, int]  # (ratio_h, ratio_w): local tiles per column / per row

    @property
    def num_tiles(self) -> int:
        """Rows of pixel_values: ratio_h * ratio_w local tiles, plus the global tile when > 1."""
        return int(self.pixel_values.shape[0])


@dataclass(frozen=True)
class CanvasPlan:
    """Where an H x W image goes: canvas and resized sizes are (height, width) in pixels."""

    canvas: tuple[int, int]  # multiples of tile_size
    resized: tuple[int, int]  # the image is resized to this and pasted top-left
    aspect_ratio: tuple[int, int]  # canvas // tile_size

    @property
    def num_tiles(self) -> int:
        n = self.aspect_ratio[0] * self.aspect_ratio[1]
        return n + 1 if n > 1 else n


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def patch_tokens_per_tile(image_size: int, patch_size: int, pixel_shuffle_ratio: float) -> int:
    """<|patch|> tokens per tile: (image_size / patch_size)^2 * ratio^2 (144 for 336 / 14 / 0.5).

    Computed as HF's processor does: (image_size // patch_size)^2 // round(1 / ratio^2)."""
    image_size = _positive_int("image_size", image_size)
    patch_size = _positive_int("patch_size", patch_size)
    if not 0.0 < float(pixel_shuffle_ratio) <= 1.0:
        raise ValueError(f"pixel_shuffle_ratio must be in (0, 1], got {pixel_shuffle_ratio!r}")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    patches = (image_size // patch_size) ** 2
    downsample = int(round(1.0 / float(pixel_shuffle_ratio) ** 2))
    if patches % downsample:
        raise ValueError(
            f"{patches} patches per tile cannot be pixel-shuffled by ratio {pixel_shuffle_ratio}")
    return patches // downsample


@lru_cache(maxsize=16)
def _candidate_canvases(tile: int, max_patches: int) -> tuple[tuple[int, int], ...]:
    """(h, w) canvases in HF's `find_supported_resolutions` order; the order decides area ties."""
    by_ratio: dict[float, list[tuple[int, int]]] = {}
    for n in range(max_patches, 0, -1):
        for a in sorted(d for d in range(1, n + 1) if n % d == 0):
            by_ratio.setdefault(a / (n // a), []).append((a, n // a))
    return tuple((a * tile, b * tile) for group in by_ratio.values() for a, b in group)


def _best_fit(h: int, w: int, canvases: Sequence[tuple[int, int]], to_max: bool) -> tuple[int, int]:
    """HF `get_best_fit`, float32 like its torch tensors (int64 canvas / int → float32)."""
    c = np.asarray(canvases, dtype=np.int64)
    scales = np.minimum(c[:, 0].astype(_f32) / _f32(h), c[:, 1].astype(_f32) / _f32(w))
    up = scales[scales >= 1]
    chosen = (up.max() if to_max else up.min()) if up.size else scales[scales < 1].max()
    cand = c[scales == chosen]
    best = cand[int(np.argmin(cand[:, 0] * cand[:, 1]))]  # argmin takes the first minimum, like torch
    return int(best[0]), int(best[1])


def _fit_without_distortion(h: int, w: int, th: int, tw: int, th_f32: bool, tw_f32: bool) -> tuple[int, int]:
    """HF `get_max_res_without_distortion`. A target side taken from the canvas is a torch int64
    scalar in HF, which makes its scale (and the product with it) float32 and the comparison float32;
    a side taken from the image is a Python int, so the scale is a float64 Python float."""
    sw = _f32(tw) / _f32(w) if tw_f32 else tw / w
    sh = _f32(th) / _f32(h) if th_f32 else th / h
    width_limited = (_f32(sw) < _f32(sh)) if (th_f32 or tw_f32) else (sw < sh)
    if width_limited:
        new_h = math.floor(_f32(h) * sw) if tw_f32 else math.floor(h * sw)
        return min(new_h, th), tw
    new_w = math.floor(_f32(w) * sh) if th_f32 else math.floor(w * sh)
    return th, min(new_w, tw)


def canvas_for(h: int, w: int, tile_size: int = 336, max_patches: int = 16, *,
               resize_to_max_canvas: bool = False) -> CanvasPlan:
    """The canvas, resized size and tile grid for an h x w image (steps 1-3 of the module doc)."""
    h, w = _positive_int("h", h), _positive_int("w", w)
    tile = _positive_int("tile_size", tile_size)
    max_patches = _positive_int("max_patches", max_patches)
    ch, cw = _best_fit(h, w, _candidate_canvases(tile, max_patches), bool(resize_to_max_canvas))
    if resize_to_max_canvas:
        th, tw, th_f32, tw_f32 = ch, cw, True, True
    else:
        # HF: min(max(H, tile), canvas_h) — Python's min returns the canvas (a tensor) only when it
        # is strictly smaller, which decides float32 vs float64 in the next step.
        th, th_f32 = (ch, True) if ch < max(h, tile) else (max(h, tile), False)
        tw, tw_f32 = (cw, True) if cw < max(w, tile) else (max(w, tile), False)
    nh, nw = _fit_without_distortion(h, w, th, tw, th_f32, tw_f32)
    return CanvasPlan(canvas=(ch, cw), resized=(max(nh, 1), max(nw, 1)),
                      aspect_ratio=(ch // tile, cw // tile))


def _normalize(u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, bf16: bool) -> torch.Tensor:
    """u8: [3, H, W] uint8 → [3, H, W] (bf16 or float32). mean, std: [3, 1, 1] in the compute dtype."""
    if bf16:
        # HF Llama4ImageProcessor.rescale_and_normalize, then torchvision's normalize (sub, div).
        return (u8.to(torch.bfloat16) * (1 / 255)).sub_(mean).div_(std)
    return u8.to(torch.float32).div_(255).sub_(mean).div_(std)  # Meta: ToTensor, Normalize


def _check_options(tile_size, max_patches, mean, std, dtype, resize_kernel):
    _positive_int("tile_size", tile_size)
    _positive_int("max_patches", max_patches)
    for name, v in (("mean", mean), ("std", std)):
        if len(v) != 3:
            raise ValueError(f"{name} must have 3 values (R, G, B), got {v!r}")
    if any(float(s) == 0.0 for s in std):
        raise ValueError(f"std must be non-zero, got {std!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")
    if resize_kernel not in KERNELS:
        raise ValueError(f"resize_kernel must be one of {KERNELS}, got {resize_kernel!r}")


def _preprocess_rgb(rgb: np.ndarray, tile: int, max_patches: int, to_max: bool, mean, std,
                    dtype: torch.dtype, bf16: bool, kernel: str, full_size=None) -> ImageInput:
    """rgb: [H, W, 3] uint8 → ImageInput (steps 1-7). full_size: (H, W) to plan the canvas from,
    when rgb was decoded at reduced scale (JPEG draft, see image_limits)."""
    h, w = full_size or rgb.shape[:2]
    plan = canvas_for(h, w, tile, max_patches, resize_to_max_canvas=to_max)
    img = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()  # [3, H, W] uint8
    ct = torch.bfloat16 if bf16 else torch.float32
    mean_t = torch.tensor([float(m) for m in mean], dtype=ct).view(3, 1, 1)
    std_t = torch.tensor([float(s) for s in std], dtype=ct).view(3, 1, 1)

    (ch, cw), (nh, nw), (rh, rw) = plan.canvas, plan.resized, plan.aspect_ratio
    canvas = torch.zeros(3, ch, cw, dtype=torch.uint8)  # black right/bottom padding
    canvas[:, :nh, :nw] = resize_bilinear_aa(img, (nh, nw), kernel)
    x = _normalize(canvas, mean_t, std_t, bf16)
    tiles = x.view(3, rh, tile, rw, tile).permute(1, 3, 0, 2, 4).reshape(rh * rw, 3, tile, tile)
    if rh * rw > 1:
        thumb = _normalize(resize_bilinear_aa(img, (tile, tile), kernel), mean_t, std_t, bf16)
        tiles = torch.cat([tiles, thumb.unsqueeze(0)], dim=0)
    return ImageInput(pixel_values=tiles.to(dtype).contiguous(), aspect_ratio=(rh, rw))


def _preprocess(image, label: str, *, tile_size, max_patches, resize_to_max_canvas, mean, std, dtype,
                reference_bf16, resize_kernel, max_pixels) -> ImageInput:
    _check_options(tile_size, max_patches, mean, std, dtype, resize_kernel)
    tile, patches, to_max = int(tile_size), int(max_patches), bool(resize_to_max_canvas)

    def target(h: int, w: int) -> tuple[int, int]:  # what the resizes need: the canvas and the thumbnail
        nh, nw = canvas_for(h, w, tile, patches, resize_to_max_canvas=to_max).resized
        return max(nh, tile), max(nw, tile)

    rgb, full = load_rgb_bounded(image, label, max_pixels=max_pixels, target=target)
    return _preprocess_rgb(rgb, tile, patches, to_max, mean, std, dtype, bool(reference_bf16), resize_kernel,
                           full_size=full)


def preprocess_image(image, *, tile_size: int = 336, max_patches: int = 16,
                     resize_to_max_canvas: bool = False,
                     mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5),
                     dtype: torch.dtype = torch.float32, reference_bf16: bool = True,
                     resize_kernel: str = "float", max_pixels: int | None = None) -> ImageInput:
    """Preprocess one image (path, bytes, PIL image or numpy array; see `image_io`) for Llama 4.

    tile_size / max_patches / resize_to_max_canvas / mean / std: HF's `size`, `max_patches`,
    `resize_to_max_canvas`, `image_mean`, `image_std` (defaults = the published checkpoints').
    dtype: dtype of pixel_values.
    reference_bf16: normalise in bfloat16 like HF and the original code (the values are bf16-rounded
    even when dtype is float32); False normalises in float32 like Meta's ToTensor + Normalize.
    resize_kernel: "float" or "uint8", the two torchvision code paths (see `image_resize`).
    max_pixels: the largest width x height accepted, checked from the file header before decoding
    (None: $LLAMA4_MAX_IMAGE_PIXELS or image_limits.DEFAULT_MAX_PIXELS); a JPEG at least 4x larger
    per side than the resize needs is decoded at reduced scale (see `image_limits`).
    Raises ValueError (bad data or options) or TypeError (unsupported input type) naming the image.
    """
    return _preprocess(image, "image", tile_size=tile_size, max_patches=max_patches,
                       resize_to_max_canvas=resize_to_max_canvas, mean=mean, std=std, dtype=dtype,
                       reference_bf16=reference_bf16, resize_kernel=resize_kernel, max_pixels=max_pixels)


def preprocess_images(images: Sequence, **options) -> list[ImageInput]:
    """preprocess_image on each image of a list or tuple, same options; errors name the index
    ("image 2: cannot decode ...")."""
    if not isinstance(images, (list, tuple)):
        raise TypeError(f"images must be a list or tuple, got {type(images).__name__}")
    # Bind against preprocess_image's signature: unknown options raise TypeError, defaults filled in.
    bound = inspect.signature(preprocess_image).bind(None, **options)
    bound.apply_defaults()
    opts = {k: v for k, v in bound.arguments.items() if k != "image"}
    _check_options(opts["tile_size"], opts["max_patches"], opts["mean"], opts["std"], opts["dtype"],
                   opts["resize_kernel"])
    return [_preprocess(im, f"image {i}", **opts) for i, im in enumerate(images)]


__all__ = ["ImageInput", "CanvasPlan", "preprocess_image", "preprocess_images", "canvas_for",
           "patch_tokens_per_tile"]
