"""References for tests/test_image_preprocess.py: synthetic photos and the HF pipeline rebuilt in torch.

* `photo_like(h, w, seed)` → [h, w, 3] uint8: lighting gradients, oriented textures with periods
  from 2 px up to half the image (so downscaling has something to alias), hard-edged objects,
  saturated areas and sensor noise.
* `hf_resolution()` executes the pure resolution functions of the installed transformers
  `image_processing_llama4.py` (`find_supported_resolutions`, `get_best_fit`,
  `get_max_res_without_distortion`), extracted with `ast` because the module imports torchvision at
  the top, and torchvision does not import with the local torch. None when transformers is missing.
* `hf_plan` repeats `Llama4ImageProcessor._preprocess`'s glue around them, line for line.
* `torchvision_resize(img, size, path)` is torchvision's `resize_image` for uint8 CPU tensors:
  "uint8" calls torch's native uint8 kernel (AVX2 machines), "float" converts to float32, calls the
  float kernel and rounds (all other machines and GPUs).
* `hf_pixel_values` chains those with HF's bf16 rescale/normalize and `split_to_tiles`.
"""
from __future__ import annotations

import ast
import collections
import functools
import importlib.util
import math
import pathlib

import numpy as np
import torch
import torch.nn.functional as F


def photo_like(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = rng.uniform(60, 190, 3) + np.stack(
        [rng.uniform(-50, 50) * xx / w + rng.uniform(-50, 50) * yy / h for _ in range(3)], axis=-1)
    for _ in range(6):
        period = math.exp(rng.uniform(math.log(2.0), math.log(max(h, w) / 2 + 2)))
        theta, phase = rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
        wave = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + phase)
        img += rng.uniform(4, 35, 3) * wave[..., None]
    for _ in range(4):  # objects with hard edges, some saturated
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = y0 + rng.integers(1, h // 2 + 2), x0 + rng.integers(1, w // 2 + 2)
        img[y0:y1, x0:x1] = rng.choice([0.0, 255.0, rng.uniform(0, 255)], 3)
    img += rng.normal(0.0, 6.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def hf_resolution() -> dict | None:
    spec = importlib.util.find_spec("transformers")
    if spec is None or spec.origin is None:
        return None
    path = pathlib.Path(spec.origin).parent / "models" / "llama4" / "image_processing_llama4.py"
    if not path.is_file():
        return None
    tree = ast.parse(path.read_text())
    want = {"get_factors", "get_max_res_without_distortion", "find_supported_resolutions", "get_best_fit"}
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in want]
    if {n.name for n in body} != want:
        return None
    ns = {"math": math, "torch": torch, "defaultdict": collections.defaultdict,
          "lru_cache": functools.lru_cache, "SizeDict": object}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), ns)
    return ns


class _Size(collections.namedtuple("_Size", "height width")):
    """Stands in for HF's SizeDict (hashable, for find_supported_resolutions' lru_cache)."""


def hf_plan(h: int, w: int, tile: int = 336, max_patches: int = 16, to_max: bool = False):
    """((canvas_h, canvas_w), (resized_h, resized_w)) as Llama4ImageProcessor._preprocess gets them."""
    ns = hf_resolution()
    size = _Size(tile, tile)
    possible = torch.tensor(ns["find_supported_resolutions"](max_num_chunks=max_patches, patch_size=size))
    image_size = torch.Size([h, w])
    target_size = ns["get_best_fit"](image_size, possible, resize_to_max_canvas=to_max)
    max_upscaling_size = None if to_max else size.height
    if max_upscaling_size is not None:
        new_target_height = min(max(image_size[0], max_upscaling_size), target_size[0])
        new_target_width = min(max(image_size[1], max_upscaling_size), target_size[1])
        target = (new_target_height, new_target_width)
    else:
        target = target_size
    nh, nw = ns["get_max_res_without_distortion"](image_size, target)
    return (int(target_size[0]), int(target_size[1])), (int(max(nh, 1)), int(max(nw, 1)))


def torchvision_resize(img: torch.Tensor, size: tuple[int, int], path: str) -> torch.Tensor:
    """img: [C, H, W] uint8 → [C, h, w] uint8, as torchvision.transforms.v2.functional.resize."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    if path == "uint8":
        return F.interpolate(img[None], size=list(size), mode="bilinear", align_corners=False,
                             antialias=True)[0]
    y = F.interpolate(img[None].to(torch.float32), size=list(size), mode="bilinear", align_corners=False,
                      antialias=True)[0]
    return y.round_().to(torch.uint8)


def _hf_rescale_normalize(x: torch.Tensor) -> torch.Tensor:
    # Llama4ImageProcessor.rescale_and_normalize + torchvision normalize_image, default mean/std.
    x = x.to(dtype=torch.bfloat16) * (1 / 255)
    mean = torch.as_tensor([0.5, 0.5, 0.5], dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor([0.5, 0.5, 0.5], dtype=x.dtype).view(-1, 1, 1)
    return x.sub(mean).div_(std)


def hf_pixel_values(rgb: np.ndarray, path: str, tile: int = 336, max_patches: int = 16) -> torch.Tensor:
    """rgb: [H, W, 3] uint8 → HF's pixel_values for it, [tiles, 3, tile, tile] bf16."""
    img = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    (ch, cw), (nh, nw) = hf_plan(rgb.shape[0], rgb.shape[1], tile, max_patches)
    x = torchvision_resize(img, (nh, nw), path)
    x = F.pad(x, [0, cw - nw, 0, ch - nh], value=0)  # pad_to_best_fit: right/bottom, fill 0
    x = _hf_rescale_normalize(x)
    rh, rw = ch // tile, cw // tile
    # image_transforms.split_to_tiles on a batch of one
    tiles = x[None].view(1, 3, rh, tile, rw, tile).permute(0, 2, 4, 1, 3, 5).reshape(rh * rw, 3, tile, tile)
    if rh * rw > 1:
        thumb = _hf_rescale_normalize(torchvision_resize(img, (tile, tile), path))
        tiles = torch.cat([tiles, thumb[None]], dim=0)
    return tiles
