"""Bounded image decoding (llama4_native/image_limits.py): the pixel-count limit is checked from the
file header before any pixel is decoded (and on arrays / PIL images before any conversion), it is
configurable (argument, environment variable), and a JPEG far larger than the resize needs is
decoded at reduced scale without changing the tile plan."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from llama4_native.image import canvas_for, preprocess_image, preprocess_images
from llama4_native.image_io import load_rgb, load_rgb_bounded
from llama4_native.image_limits import DEFAULT_MAX_PIXELS, ENV_MAX_PIXELS, resolve_max_pixels


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is 64 bytes: decoding it
    fails, so an error about the size proves the header check came first."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)


def jpeg(rgb: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90, **save)
    return buf.getvalue()


def test_9000x9000_png_refused_from_its_header():
    data = png_header_only(9000, 9000)
    with pytest.raises(ValueError, match=r"^image: 9000x9000 is 81,000,000 pixels, more than the limit of "
                                         r"50,000,000 \(max_pixels / \$LLAMA4_MAX_IMAGE_PIXELS\)$"):
        preprocess_image(data)
    # within the limit the same file gets as far as decoding (and fails there: it has no pixels)
    with pytest.raises(ValueError, match="^image: cannot decode"):
        preprocess_image(data, max_pixels=81_000_000)
    with pytest.raises(ValueError, match=r"^image 1: 9000x9000 is"):
        preprocess_images([gradient(4, 4), data])


def test_limit_is_configurable(monkeypatch):
    small = jpeg(gradient(17, 23))
    assert preprocess_image(small, max_pixels=17 * 23).pixel_values.shape[0] == 1  # at the limit: fine
    with pytest.raises(ValueError, match=r"^image: 23x17 is 391 pixels, more than the limit of 390 "):
        preprocess_image(small, max_pixels=390)
    monkeypatch.setenv(ENV_MAX_PIXELS, "390")
    with pytest.raises(ValueError, match=r"more than the limit of 390 "):
        load_rgb(small)
    assert load_rgb(small, max_pixels=391).shape == (17, 23, 3)  # the argument wins over the variable
    monkeypatch.setenv(ENV_MAX_PIXELS, "lots")
    with pytest.raises(ValueError, match=r"^LLAMA4_MAX_IMAGE_PIXELS='lots' is not an integer$"):
        load_rgb(small)
    monkeypatch.setenv(ENV_MAX_PIXELS, "0")
    with pytest.raises(ValueError, match=r"^LLAMA4_MAX_IMAGE_PIXELS must be a positive integer, got 0$"):
        load_rgb(small)
    monkeypatch.delenv(ENV_MAX_PIXELS)
    assert resolve_max_pixels(None) == DEFAULT_MAX_PIXELS
    for bad in (0, -5, 2.5, True, "100"):
        with pytest.raises(ValueError, match=r"^max_pixels must be a positive int, got "):
            preprocess_image(small, max_pixels=bad)


def test_arrays_and_pil_images_are_checked_before_conversion():
    with pytest.raises(ValueError, match=r"^image: 30x20 is 600 pixels, more than the limit of 599 "):
        load_rgb(np.zeros((20, 30, 3), np.float64), max_pixels=599)  # before the float range check
    with pytest.raises(ValueError, match=r"^image: 30x20 is 600 pixels"):
        load_rgb(Image.new("RGB", (30, 20)), max_pixels=599)
    assert load_rgb(np.zeros((20, 30), np.uint8), max_pixels=600).shape == (20, 30, 3)


def test_jpeg_draft_decodes_at_reduced_scale_with_the_same_plan():
    h, w = 2000, 1400
    data = jpeg(gradient(h, w))
    tile = 336

    def target(hh, ww):
        nh, nw = canvas_for(hh, ww, tile, 1).resized
        return max(nh, tile), max(nw, tile)

    rgb, full = load_rgb_bounded(data, target=target)
    assert full == (h, w)
    # the resize needs 336 x 336 (one tile): libjpeg may go down to >= 2x that per side, here 1/2
    assert rgb.shape == (1000, 700, 3)
    drafted = preprocess_image(data, tile_size=tile, max_patches=1)
    whole = preprocess_image(gradient(h, w), tile_size=tile, max_patches=1)  # full-size pixels
    assert drafted.aspect_ratio == whole.aspect_ratio and drafted.pixel_values.shape == whole.pixel_values.shape
    # The same picture: a smooth gradient survives both paths within a few levels (JPEG's own
    # loss included); a different plan (resized size, grid) would be off by far more.
    diff = (drafted.pixel_values - whole.pixel_values).abs() * 127.5  # normalised -> uint8 levels
    assert diff.mean() < 2.0, float(diff.mean())


def test_no_draft_when_the_source_is_not_far_larger():
    data = jpeg(gradient(600, 500))  # target 336 per side: 600 / 2 < 2 * 336, so no reduction
    rgb, full = load_rgb_bounded(data, target=lambda hh, ww: (336, 336))
    assert rgb.shape == (600, 500, 3) and full == (600, 500)
    np.testing.assert_array_equal(load_rgb(data), rgb)


def test_jpeg_draft_respects_exif_rotation():
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees: 1600 x 400 stored -> 400 x 1600 shown
    data = jpeg(gradient(400, 1600), exif=exif.tobytes())
    asked = []

    def target(hh, ww):
        asked.append((hh, ww))
        return 100, 25  # the displayed image's needs: 100 rows, 25 columns

    rgb, full = load_rgb_bounded(data, target=target)
    assert asked == [(1600, 400)]  # asked about the displayed size
    assert full == (1600, 400)
    # stored 1600 wide x 400 high needs 100 x 25 per stored (width, height) -> 1/8 scale still
    # leaves 200 x 50 >= 2 x (100, 25): decoded at 200 x 50, shown as 50 x 200
    assert rgb.shape == (200, 50, 3)
