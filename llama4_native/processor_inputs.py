"""What transformers' `Llama4Processor` returns, as generate() inputs: `generate(**processor(...))`.

    unpad(input_ids, attention_mask)           -> the ids of each row with its padding removed
    warn_if_padded(input_ids, pad_id)          -> a warning when a batch looks padded but has no mask
    images_from_pixel_values(prompts, pixel_values, tokens, tokens_per_tile)
                                               -> each prompt's images (ImageInput with its tile grid)

The processor pads a batch (on the left by default, Llama4Processor's padding_side) and marks the
real tokens in `attention_mask`; our scheduler serves each prompt at its own length, so padding is
dropped rather than masked. Its `pixel_values` are all tiles of all images of the batch,
concatenated in prompt order, without their tile grids (the processor pops `aspect_ratios`); the
grids are in the ids, which hold each image already expanded (LLAMA4.md §4.2): an image's block is
exactly `image_token_ids(rows, cols, ...)`, so the grid is read back from its separators and the
block is checked against that one layout.
"""
from __future__ import annotations

import warnings

import torch

from .chat import ImageTokens, image_token_ids
from .image import ImageInput


def _rows(x, name: str) -> tuple[list[list[int]], bool]:
    """A [B, T] tensor / list of lists, or one row ([T] or [1, T] tensor, a flat list) -> (rows,
    whether the caller gets a batch back: any 2-d form except a [1, T] tensor, as generate() does)."""
    if isinstance(x, torch.Tensor):
        if x.dtype.is_floating_point or x.dtype.is_complex:
            raise TypeError(f"{name} must hold integers, got dtype {x.dtype}")
        if x.dim() == 1:
            return [x.tolist()], False
        if x.dim() == 2:
            return x.tolist(), x.shape[0] != 1
        raise ValueError(f"{name} must be [batch, tokens] or [tokens], got shape {tuple(x.shape)}")
    if isinstance(x, (list, tuple)) and x and all(isinstance(r, (list, tuple, torch.Tensor)) for r in x):
        return [list(r.tolist() if isinstance(r, torch.Tensor) else r) for r in x], True
    if isinstance(x, (list, tuple)):
        return [list(x)], False
    raise TypeError(f"{name} must be a tensor or a list of token ids (or of rows of them), got "
                    f"{type(x).__name__}")


def unpad(input_ids, attention_mask):
    """input_ids without the positions attention_mask marks 0: a list of rows for a batch, one list
    for a single prompt. Each row's 1s must be one run (left or right padding); a mask with holes
    or a row with no token is refused (ValueError naming the row)."""
    rows, batched = _rows(input_ids, "input_ids")
    masks, _ = _rows(attention_mask, "attention_mask")
    if len(masks) != len(rows) or any(len(m) != len(r) for m, r in zip(masks, rows)):
        raise ValueError(f"attention_mask must have the shape of input_ids: {len(masks)} rows of "
                         f"{sorted({len(m) for m in masks})} for {len(rows)} rows of {sorted({len(r) for r in rows})}")
    out = []
    for i, (row, mask) in enumerate(zip(rows, masks)):
        if any(m not in (0, 1) for m in mask):
            raise ValueError(f"attention_mask row {i} must hold only 0 and 1")
        kept = [k for k, m in enumerate(mask) if m]
        if not kept:
            raise ValueError(f"attention_mask row {i} marks no token: the prompt would be empty")
        if kept[-1] - kept[0] + 1 != len(kept):
            raise ValueError(f"attention_mask row {i} has 0s between its 1s: only left or right padding "
                             f"can be dropped")
        out.append(row[kept[0]:kept[-1] + 1])
    return out if batched else out[0]


def warn_if_padded(input_ids, pad_id: int | None) -> None:
    """A [B, T] tensor whose rows begin or end with the pad token was most likely padded by a
    tokenizer: without attention_mask its padding would be read as prompt."""
    if pad_id is None or not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        return
    padded = [i for i, row in enumerate(input_ids.tolist()) if row and pad_id in (row[0], row[-1])]
    if padded:
        warnings.warn(f"input_ids rows {padded[:8]} begin or end with the pad token (id {pad_id}) and no "
                      f"attention_mask was given: the padding is treated as prompt. Pass the tokenizer's "
                      f"attention_mask to drop it.", UserWarning, stacklevel=3)


def image_grids(ids: list[int], tokens: ImageTokens, tokens_per_tile: int, where: str) -> list[tuple[int, int]]:
    """The (rows, cols) tile grid of each expanded image in `ids`, in order."""
    grids, pos = [], 0
    while True:
        try:
            start = ids.index(tokens.start, pos)
        except ValueError:
            return grids
        try:
            end = ids.index(tokens.end, start)
        except ValueError:
            raise ValueError(f"{where}: image {len(grids)} (<|image_start|> at position {start}) has no "
                             f"<|image_end|>") from None
        block = ids[start:end + 1]
        rows = block.count(tokens.tile_y)
        cols = block.count(tokens.tile_x) // rows + 1 if rows else 1
        if block != image_token_ids(rows or 1, cols, tokens_per_tile, tokens):
            raise ValueError(f"{where}: image {len(grids)} (positions {start}..{end}) is not an image "
                             f"expanded by the processor ({tokens_per_tile} <|patch|> per tile, tile "
                             f"separators between tiles, <|image|> before the global tile)")
        grids.append((rows or 1, cols))
        pos = end + 1


def _tiles(grid: tuple[int, int]) -> int:
    n = grid[0] * grid[1]
    return n + 1 if n > 1 else n  # the global tile comes with more than one local tile


def images_from_pixel_values(prompts: list[list[int]], pixel_values: torch.Tensor, tokens: ImageTokens,
                             tokens_per_tile: int) -> list[list[ImageInput] | None]:
    """Cut the batch's pixel_values [all tiles, 3, S, S] into each prompt's images, with the grids
    read from its ids; None for a prompt without images."""
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a tensor [tiles, 3, size, size], got {type(pixel_values).__name__}")
    if pixel_values.dim() == 5:  # [images, tiles, 3, S, S] as some processors return: the same tiles
        pixel_values = pixel_values.flatten(0, 1)
    grids = [image_grids(ids, tokens, tokens_per_tile, f"prompt {i}") for i, ids in enumerate(prompts)]
    want = sum(_tiles(g) for per in grids for g in per)
    if pixel_values.dim() != 4 or pixel_values.shape[0] != want:
        raise ValueError(f"pixel_values has shape {list(pixel_values.shape)} but the prompts' expanded "
                         f"images need {want} tiles [tiles, 3, size, size] (tile grids per prompt: {grids})")
    out, row = [], 0
    for per in grids:
        images = []
        for g in per:
            images.append(ImageInput(pixel_values=pixel_values[row:row + _tiles(g)], aspect_ratio=g))
            row += _tiles(g)
        out.append(images or None)
    return out


__all__ = ["unpad", "warn_if_padded", "image_grids", "images_from_pixel_values"]
