"""Decode an image input and convert it to RGB uint8, the way Hugging Face's Llama 4 processor does.

Contract: `load_rgb(image, label)` → numpy `[H, W, 3] uint8`, H, W >= 1. Bad input raises ValueError
(unreadable/corrupt data, unsupported mode, empty image, wrong array shape or dtype, more pixels
than the limit of `image_limits`, read from the header before decoding) or TypeError (a type we do
not take), with `label` ("image", "image 3") at the start of the message.

Accepted inputs:
* a `data:image/...;base64,` URL (a `str`), as OpenAI's `image_url` items carry them.
* a file path (`str` / `os.PathLike`) or encoded bytes (`bytes`, `bytearray`, `memoryview`): decoded
  with Pillow, and the EXIF orientation applied, as HF's `load_image` does for paths and URLs.
  Truncated files are an error, even when other code (Meta's `preprocess.py` does) has set Pillow's
  global LOAD_TRUNCATED_IMAGES: it is held off while we decode and restored afterwards.
* a `PIL.Image.Image`: used as given (HF's processor does not apply EXIF orientation to images the
  caller already opened).
* a numpy array, channels last: `[H, W]` gray, `[H, W, 1]` gray, `[H, W, 2]` gray+alpha,
  `[H, W, 3]` RGB, `[H, W, 4]` RGBA. dtype uint8 (0-255), uint16 (0-65535, scaled like 16-bit
  images below) or float16/32/64 in [0, 1] (quantised to uint8 as round-half-even(x * 255); the
  reference pipeline works on uint8, and HF itself would rescale a float image by 1/255 a second
  time). Other dtypes, NaN/inf or floats outside [0, 1] are errors.

Mode conversion follows HF's `convert_to_rgb` for PIL images: an image with an alpha band or a
`transparency` entry is composited onto WHITE (`alpha_composite` over an opaque white background);
every other supported mode goes through Pillow's `convert("RGB")` (palette, 1-bit, L, CMYK with
Pillow's (255 - c)(255 - k)/255 rule, YCbCr, RGBX). The compositing is done here with
`round(a/255 * c + (1 - a/255) * 255)`, which equals Pillow's `alpha_composite` on all 65,536
(colour, alpha) pairs (and Meta's `paste` with an alpha mask) and is what HF does for RGBA arrays.

16-bit grayscale (`I;16`, `I;16L`, `I;16B`, `I;16N` and uint16 arrays) is scaled to 8 bits as
round(v / 257), mapping 0..65535 onto 0..255. HF/Pillow's `convert("RGB")` instead clips values
above 255 to white, which turns almost every real 16-bit image white; we do not copy that.
"""
from __future__ import annotations

import io
import os

import numpy as np

from .data_url import decode_image_data_url, is_data_url, short
from .image_limits import TargetFn, apply_draft, check_pixels, resolve_max_pixels

try:  # Pillow is only needed for paths, bytes and PIL images; arrays work without it.
    from PIL import Image, ImageOps
except ImportError:  # pragma: no cover - exercised only where Pillow is absent
    Image = None
    ImageOps = None

_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")
# Modes whose conversion to RGB is well defined; "I" (32-bit int) and "F" (float) have no fixed
# range, "La"/"LAB"/"HSV" are not photographs a chat user sends.
SUPPORTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr") + _MODES_16BIT


def _require_pil(label: str) -> None:
    if Image is None:
        raise TypeError(f"{label}: decoding files, bytes and PIL images needs Pillow (pip install Pillow)")


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """rgb: [H, W, C] uint8, alpha: [H, W, 1] uint8 → [H, W, C] uint8, composited on white."""
    a = alpha.astype(np.float64) / 255.0
    out = a * rgb.astype(np.float64) + (1.0 - a) * 255.0
    return np.round(out).astype(np.uint8)  # np.round is half-to-even, as in HF's numpy path


def _u16_to_u8(x: np.ndarray) -> np.ndarray:
    # (v * 255 + 32767) // 65535 == round(v / 257) for 0 <= v <= 65535, in exact integers.
    return ((x.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _from_pil(im, label: str) -> np.ndarray:
    if im.width < 1 or im.height < 1:
        raise ValueError(f"{label}: empty image ({im.width}x{im.height} pixels)")
    if im.mode not in SUPPORTED_MODES:
        raise ValueError(
            f"{label}: unsupported image mode {im.mode!r}; supported: {', '.join(SUPPORTED_MODES)}")
    if im.mode in _MODES_16BIT:
        gray = _u16_to_u8(np.asarray(im).astype(np.uint16))  # "I;16B" arrays are big-endian
        return np.repeat(gray[:, :, None], 3, axis=2)
    # HF's test for transparency, verbatim: an alpha band, or a palette/colour-key transparency.
    if "A" in im.getbands() or im.info.get("transparency") is not None:
        rgba = np.asarray(im.convert("RGBA"))
        return composite_on_white(rgba[:, :, :3], rgba[:, :, 3:])
    return np.asarray(im.convert("RGB"))


class _TooLarge(ValueError):
    """The header's size exceeds the pixel limit: reported as is, not as a decoding failure."""


def _decode(data, label: str, what: str, max_pixels: int, target: TargetFn | None):
    """Open `data` (a path or a file-like object) with Pillow, check its size from the header, then
    fully decode it (at reduced JPEG scale when `target` allows). -> (image, (height, width) of
    the full-size image as displayed)."""
    _require_pil(label)
    from PIL import ImageFile

    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(data) as im:  # closes the file on every path, errors included
            try:
                check_pixels(im.width, im.height, max_pixels, label)
            except ValueError as e:
                raise _TooLarge(str(e)) from None
            full_w, full_h = im.size
            apply_draft(im, target)
            im.load()  # Image.open is lazy; corrupt or truncated pixel data only fails here
            out = ImageOps.exif_transpose(im)  # a new image (a copy when there is no rotation)
            rotated = out.size != im.size
            return out, ((full_w, full_h) if rotated else (full_h, full_w))
    except _TooLarge:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise ValueError(f"{label}: cannot decode {what}: {type(e).__name__}: {e}") from e
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def _from_array(a: np.ndarray, label: str) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"{label}: expected an array of shape [H, W] or [H, W, C] with C in 1..4 (channels last), "
            f"got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{label}: empty image (array shape {a.shape})")
    # kind + itemsize rather than ==, so that big-endian ">u2" arrays count as uint16 too
    if a.dtype.kind == "u" and a.dtype.itemsize == 1:
        u8 = a
    elif a.dtype.kind == "u" and a.dtype.itemsize == 2:
        u8 = _u16_to_u8(a)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"{label}: float arrays must hold finite values in [0, 1], got NaN or inf")
        if a.min() < 0.0 or a.max() > 1.0:
            raise ValueError(
                f"{label}: float arrays must hold values in [0, 1], got range [{a.min()}, {a.max()}]")
        u8 = np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise ValueError(f"{label}: unsupported array dtype {a.dtype}; use uint8, uint16 or float in [0, 1]")
    c = u8.shape[2]
    if c == 1:
        return np.repeat(u8, 3, axis=2)
    if c == 2:
        return composite_on_white(np.repeat(u8[:, :, :1], 3, axis=2), u8[:, :, 1:])
    if c == 4:
        return composite_on_white(u8[:, :, :3], u8[:, :, 3:])
    return u8


def load_rgb(image, label: str = "image", *, max_pixels: int | None = None) -> np.ndarray:
    """Any accepted input (see the module doc) → [H, W, 3] uint8 RGB, C-contiguous and writable
    (torch.from_numpy warns on read-only arrays, which np.asarray of a PIL image is). Images over
    the pixel limit (`image_limits`) are refused before decoding."""
    return load_rgb_bounded(image, label, max_pixels=max_pixels)[0]


def load_rgb_bounded(image, label: str = "image", *, max_pixels: int | None = None,
                     target: TargetFn | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """load_rgb, and the (height, width) of the image at full size: a JPEG far larger than
    `target(height, width)` needs is decoded at reduced scale (`image_limits.apply_draft`)."""
    limit = resolve_max_pixels(max_pixels)
    full = None
    if isinstance(image, np.ndarray):
        if image.ndim in (2, 3):
            check_pixels(image.shape[1], image.shape[0], limit, label)
        rgb = _from_array(image, label)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ValueError(f"{label}: empty bytes")
        im, full = _decode(io.BytesIO(bytes(image)), label, f"{len(image)} bytes", limit, target)
        rgb = _from_pil(im, label)
    elif is_data_url(image):
        data = decode_image_data_url(image, label=label)
        im, full = _decode(io.BytesIO(data), label, f"a data URL of {len(data)} bytes", limit, target)
        rgb = _from_pil(im, label)
    elif isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not isinstance(path, str):
            raise TypeError(f"{label}: bytes paths are not supported; pass encoded image bytes or a str path")
        if path.split(":", 1)[0].lower() in ("http", "https"):
            raise ValueError(f"{label}: {short(path)!r} is a URL; images are not downloaded here (pass the "
                             f"file, its bytes or a data: URL)")
        if not os.path.isfile(path):
            raise ValueError(f"{label}: no such file: {short(path)!r}")
        im, full = _decode(path, label, f"file {short(path)!r}", limit, target)
        rgb = _from_pil(im, label)
    elif Image is not None and isinstance(image, Image.Image):
        check_pixels(image.width, image.height, limit, label)
        rgb = _from_pil(image, label)
    else:
        raise TypeError(
            f"{label}: unsupported type {type(image).__module__}.{type(image).__qualname__}; expected a "
            "path (str or os.PathLike), encoded bytes, a PIL.Image.Image or a numpy array (H, W[, C])")
    if not (rgb.flags.c_contiguous and rgb.flags.writeable):
        rgb = np.array(rgb, order="C")
    return rgb, (full or rgb.shape[:2])
