"""Bounds on what one image may cost before any pixel is decoded (issue 12: a 9000x9000 PNG took
56 s and 2 GB to preprocess before anything said no).

* Pixel count: width x height from the file's header (Pillow reads only the header on open) must
  not exceed `max_pixels`, else ValueError naming the image, its size and the limit. Arrays and
  PIL images the caller already holds are checked the same way before any conversion or resize.
  The limit: the `max_pixels` argument of preprocess_image / load_rgb, else the environment
  variable LLAMA4_MAX_IMAGE_PIXELS, else DEFAULT_MAX_PIXELS (50 million: a 48 MP phone photo
  passes; Pillow's own DecompressionBombError comes only at 179 million).
* JPEG draft decoding: when the preprocessor needs far fewer pixels than the file holds, libjpeg
  decodes at 1/2, 1/4 or 1/8 scale (DCT scaling, Pillow's `Image.draft`), never below twice the
  size the resize needs per side, so a draft happens only for sources at least 4x that size. The
  tile grid and resized size are planned from the full size (as without draft); the pixel values
  then differ from a full decode by a little (the resize starts from a 2x+ larger image either way).
"""
from __future__ import annotations

import os
from typing import Callable

DEFAULT_MAX_PIXELS = 50_000_000
ENV_MAX_PIXELS = "LLAMA4_MAX_IMAGE_PIXELS"
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)

# (height, width) -> the (height, width) the preprocessor will resize to, per side at least.
TargetFn = Callable[[int, int], tuple[int, int]]


def resolve_max_pixels(max_pixels: int | None) -> int:
    """The limit in force: the argument, else $LLAMA4_MAX_IMAGE_PIXELS, else DEFAULT_MAX_PIXELS."""
    if max_pixels is None:
        env = os.environ.get(ENV_MAX_PIXELS, "").strip()
        if not env:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(env)
        except ValueError:
            raise ValueError(f"{ENV_MAX_PIXELS}={env[:40]!r} is not an integer") from None
        if max_pixels < 1:
            raise ValueError(f"{ENV_MAX_PIXELS} must be a positive integer, got {max_pixels}")
        return max_pixels
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
    return max_pixels


def check_pixels(width: int, height: int, max_pixels: int, label: str) -> None:
    """ValueError when a width x height image exceeds the limit (before it is decoded)."""
    if width * height > max_pixels:
        raise ValueError(f"{label}: {width}x{height} is {width * height:,} pixels, more than the limit of "
                         f"{max_pixels:,} (max_pixels / ${ENV_MAX_PIXELS})")


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block: the full decode reports what is wrong, if anything
        return 1


def apply_draft(im, target: TargetFn | None) -> None:
    """Let a JPEG decode at reduced scale when `target` (for the displayed, EXIF-rotated size) is
    at most a quarter of the source per side. A no-op for other formats."""
    if target is None or getattr(im, "format", None) != "JPEG":
        return
    w, h = im.size
    swap = _orientation(im) in _SWAPPING_ORIENTATIONS
    th, tw = target(w, h) if swap else target(h, w)  # target of the displayed image
    if swap:
        th, tw = tw, th  # back to the stored orientation
    im.draft(None, (2 * max(tw, 1), 2 * max(th, 1)))  # scale s only while w / s >= 2 * tw, h / s >= 2 * th
