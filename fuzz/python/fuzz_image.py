"""atheris target: image decoding and preprocessing on arbitrary input. The first byte picks the
form: encoded bytes (Pillow: PNG, JPEG, GIF, BMP, WebP... and whatever the bytes claim to be), a
data: URL, or a numpy array (shape, dtype and values from the input). preprocess_image either gives
pixel values of the promised shape or raises ValueError / TypeError naming the image ("image: ...").
Decoding is bounded by a small pixel limit so that each input is quick."""
from __future__ import annotations

import base64
import sys
import warnings

import atheris

import numpy as np
import torch

with atheris.instrument_imports(include=["llama4_native"]):
    from llama4_native import image as l4image

from typed_errors import expect_typed, run

torch.set_num_threads(1)
warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning and friends
TILE, MAX_PATCHES, MAX_PIXELS = 28, 4, 1 << 20
DTYPES = (np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_, np.float16)


def preprocess(image):
    out = l4image.preprocess_image(image, tile_size=TILE, max_patches=MAX_PATCHES, max_pixels=MAX_PIXELS)
    rh, rw = out.aspect_ratio
    tiles = rh * rw + (1 if rh * rw > 1 else 0)
    assert tuple(out.pixel_values.shape) == (tiles, 3, TILE, TILE), out.pixel_values.shape
    assert torch.isfinite(out.pixel_values).all()


def array_from(fdp: atheris.FuzzedDataProvider) -> np.ndarray:
    ndim = fdp.ConsumeIntInRange(0, 4)
    shape = tuple(fdp.ConsumeIntInRange(0, 40) for _ in range(ndim))
    dtype = np.dtype(DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)])
    raw = fdp.ConsumeBytes(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
    flat = np.frombuffer(raw[: len(raw) - len(raw) % dtype.itemsize], dtype=dtype)
    return np.resize(flat, shape) if flat.size else np.zeros(shape, dtype)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    fdp = atheris.FuzzedDataProvider(data[1:])
    kind = data[0] % 3
    if kind == 0:
        image = fdp.ConsumeBytes(len(data))
    elif kind == 1:
        mime = ("png", "jpeg", "gif", "webp", "x")[fdp.ConsumeIntInRange(0, 4)]
        image = f"data:image/{mime};base64," + base64.b64encode(fdp.ConsumeBytes(len(data))).decode()
    else:
        image = array_from(fdp)
    expect_typed(lambda: preprocess(image), "image")


if __name__ == "__main__":
    run(test_one_input)
