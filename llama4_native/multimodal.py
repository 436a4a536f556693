"""Images in a prompt: image inputs -> tiles of pixels -> vision features, and the prompt ids in
which each image's `<|patch|>` tokens receive those features (LLAMA4.md §3-§4).

    as_image_inputs(images, vision_config) -> list[ImageInput]     (pixel_values [tiles, 3, S, S])
    prompt_with_images(ids, inputs, tokens, tokens_per_tile) -> ids with every image expanded
    vision_features(vision_model, inputs, dtype, device) -> [sum(tiles) * tokens_per_tile, D_text]

An image is a file path, encoded bytes, a PIL image or a numpy array (preprocessed here with the
checkpoint's tile size, as HF's Llama4ImageProcessor does), an `ImageInput`, or preprocessed
`pixel_values`: a float tensor [N, 3, S, S]. Bare pixel_values carry no tile grid, so N must be 1
(a single tile, 1x1); for several tiles pass `ImageInput(pixel_values, aspect_ratio=(h, w))`, with
N = h*w (+1 global tile when h*w > 1).

Prompt ids either hold one `<|image|>` placeholder per image (what the chat template writes), which
is expanded with each image's tile grid, or are already expanded (they hold `<|patch|>`), in which
case their patch count must equal the images' tiles * tokens_per_tile. At most MAX_IMAGES images per
prompt. Every problem raises ValueError (or TypeError for an unsupported input type) naming the
image.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .chat import ImageTokens, expand_image_tokens
from .config import VisionConfig
from .image import ImageInput, preprocess_image

MAX_IMAGES = 8  # per prompt, as the published models are served
_PIXEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _grid_tiles(ratio: tuple[int, int]) -> int:
    n = ratio[0] * ratio[1]
    return n + 1 if n > 1 else n


def _check_pixels(pv: torch.Tensor, ratio: tuple[int, int], c: VisionConfig, label: str) -> torch.Tensor:
    if not pv.dtype.is_floating_point:
        raise TypeError(f"{label}: pixel_values must be a float tensor, got dtype {pv.dtype}")
    want = (c.num_channels, c.image_size, c.image_size)
    if pv.dim() != 4 or tuple(pv.shape[1:]) != want:
        raise ValueError(f"{label}: pixel_values must have shape [tiles, {', '.join(map(str, want))}] "
                         f"(the checkpoint's image_size), got {list(pv.shape)}")
    if pv.shape[0] != _grid_tiles(ratio):
        raise ValueError(f"{label}: a {ratio[0]}x{ratio[1]} tile grid needs {_grid_tiles(ratio)} tiles "
                         f"(local tiles + a global tile when more than one), got {pv.shape[0]}")
    if not bool(torch.isfinite(pv).all()):
        raise ValueError(f"{label}: pixel_values hold NaN or infinite values")
    return pv if pv.dtype in _PIXEL_DTYPES else pv.to(torch.float32)


def as_image_inputs(images, c: VisionConfig) -> list[ImageInput]:
    """Preprocess / validate a list of images, or one image (see the module doc for the kinds)."""
    if not isinstance(images, (list, tuple)):
        images = [images]  # one image
    if len(images) > MAX_IMAGES:
        raise ValueError(f"at most {MAX_IMAGES} images per prompt are supported, got {len(images)}")
    out = []
    for i, im in enumerate(images):
        label = f"image {i}"
        if isinstance(im, ImageInput):
            ratio = tuple(int(x) for x in im.aspect_ratio)
            out.append(ImageInput(_check_pixels(im.pixel_values, ratio, c, label), ratio))
        elif isinstance(im, torch.Tensor):
            if im.dim() == 4 and im.shape[0] != 1:
                raise ValueError(f"{label}: pixel_values with {im.shape[0]} tiles need their tile grid; "
                                 f"pass ImageInput(pixel_values, aspect_ratio=(rows, cols)) instead")
            if im.dim() != 4:
                raise ValueError(f"{label}: a tensor image must be preprocessed pixel_values "
                                 f"[tiles, 3, {c.image_size}, {c.image_size}], got shape {list(im.shape)} "
                                 f"(pass raw pixels as a numpy array [H, W, 3])")
            out.append(ImageInput(_check_pixels(im, (1, 1), c, label), (1, 1)))
        else:
            try:
                out.append(preprocess_image(im, tile_size=c.image_size))
            except (ValueError, TypeError) as e:
                msg = str(e)
                raise type(e)(msg if msg.startswith(label) else f"{label}: {msg}") from None
    return out


def prompt_with_images(ids: list[int], inputs: Sequence[ImageInput], tokens: ImageTokens,
                       tokens_per_tile: int) -> list[int]:
    """The prompt ids with each image's tokens: expanded from `<|image|>` placeholders, or checked
    when already expanded."""
    n_patch = ids.count(tokens.patch)
    if n_patch:
        want = sum(x.num_tiles for x in inputs) * tokens_per_tile
        if n_patch != want:
            raise ValueError(f"the prompt holds {n_patch} <|patch|> tokens (id {tokens.patch}) but the "
                             f"{len(inputs)} image(s) give {want} feature rows "
                             f"({sum(x.num_tiles for x in inputs)} tiles x {tokens_per_tile})")
        return list(ids)
    n_placeholders = ids.count(tokens.image)
    if n_placeholders != len(inputs):
        raise ValueError(f"the prompt holds {n_placeholders} <|image|> placeholders (id {tokens.image}) "
                         f"but {len(inputs)} image(s) were given")
    return expand_image_tokens(ids, [x.aspect_ratio for x in inputs], tokens_per_tile, tokens)


def vision_features(vision_model, inputs: Sequence[ImageInput], dtype: torch.dtype,
                    device: str = "cpu") -> torch.Tensor:
    """All tiles of all images through the vision tower (on `device`, where its weights are), in
    order: [tiles * tokens_per_tile, D]."""
    pixels = torch.cat([x.pixel_values.to(dtype) for x in inputs], dim=0).to(device)
    return torch.from_dlpack(vision_model.encode(pixels))


__all__ = ["MAX_IMAGES", "as_image_inputs", "prompt_with_images", "vision_features"]
