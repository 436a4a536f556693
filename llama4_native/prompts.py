"""Every prompt form -> token ids and image feature rows, in one stage: token ids (a list or a 1-d
tensor), a string (BOS + its tokens), chat messages (the chat template; image items, OpenAI's
image_url items with data: URLs or local paths too), or a list of
those (a batch); images given with `images=` or inside chat messages. The vision tower runs here,
once per prompt."""
from __future__ import annotations

import torch

from .data_url import short


def as_id_list(ids, name: str) -> list[int]:
    if isinstance(ids, torch.Tensor):
        if ids.dtype.is_floating_point or ids.dtype.is_complex:
            raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
        if ids.dim() == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.dim() != 1:
            raise ValueError(f"{name} must be 1-d, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    try:
        out = [int(t) for t in ids]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of integer token ids") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    bad = next((i for i, t in enumerate(out) if not 0 <= t < 2**31), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] = {out[bad]} is outside the vocabulary (token ids are >= 0 "
                         f"and below vocab_size)")
    return out


def is_messages(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(m, dict) for m in x)


def is_ids(x) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dim() == 1 or (x.dim() == 2 and x.shape[0] == 1)
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(
        isinstance(t, int) and not isinstance(t, bool) for t in x)


def split_batch(prompt):
    """-> (list of single prompts, was_batched)."""
    if isinstance(prompt, (list, tuple, str)) and len(prompt) == 0:
        raise ValueError("input_ids must not be empty" if not isinstance(prompt, str) else "prompt must not be empty")
    if isinstance(prompt, str) or is_messages(prompt) or is_ids(prompt):
        return [prompt], False
    if isinstance(prompt, torch.Tensor) and prompt.dim() == 2:
        return [row for row in prompt], True
    if isinstance(prompt, (list, tuple)) and prompt:
        return list(prompt), True
    raise TypeError("prompt must be token ids, a string, a list of chat messages, or a list of those")


def _image_url_item(item: dict, where: str) -> dict:
    """OpenAI's {"type": "image_url", "image_url": {"url": ...} or "..."} -> our image item. The URL
    is a data: URL or a local path: generate() downloads nothing."""
    spec = item.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise ValueError(f"{where}: an image_url item needs {{'image_url': {{'url': ...}}}} with a string URL")
    if url.split(":", 1)[0].lower() in ("http", "https"):
        raise ValueError(f"{where}: {short(url)!r} is a URL; generate() does not download images (give a "
                         f"data: URL, a local path, or the image itself)")
    return {"type": "image", "image": url}


def native_messages(messages) -> list:
    """Chat messages with OpenAI image_url items turned into {"type": "image", "image": ...} items."""
    out = []
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, (list, tuple)) and any(isinstance(c, dict) and c.get("type") == "image_url"
                                                      for c in content):
            items = [_image_url_item(c, f"messages[{i}].content[{j}]")
                     if isinstance(c, dict) and c.get("type") == "image_url" else c for j, c in enumerate(content)]
            m = {**m, "content": items}
        out.append(m)
    return out


def _encode(model, prompt) -> list[int]:
    if isinstance(prompt, str):
        return [model.tokenizer.bos_id] + model.tokenizer.encode(prompt)
    if is_messages(prompt):
        return model.tokenizer.apply_chat_template(native_messages(prompt), add_generation_prompt=True)
    return as_id_list(prompt, "input_ids")


def _message_images(messages) -> tuple[list, int]:
    """The images carried by {"type": "image", "image" or "path": ...} content items, and the
    number of image items (an item may carry none: its image then comes from images=)."""
    found, items = [], 0
    for m in native_messages(messages):
        content = m.get("content")
        if not isinstance(content, (list, tuple)):
            continue
        for item in content:
            if isinstance(item, dict) and item.get("type") == "image":
                items += 1
                payload = item.get("image", item.get("path"))
                if payload is not None:
                    found.append(payload)
    return found, items


def prompt_images(prompts: list, images, batched: bool) -> list:
    """Per prompt: its images (a list, or None for a text-only prompt). `images` is one prompt's
    list (single prompt) or one entry per prompt (batched); chat messages may carry them instead."""
    if images is not None and batched:
        if not isinstance(images, (list, tuple)) or len(images) != len(prompts):
            raise ValueError(f"with {len(prompts)} prompts, images must be a list of {len(prompts)} "
                             f"entries (None, an image, or a list of images per prompt)")
        per = list(images)
    else:
        per = [images] * len(prompts)
    for i, p in enumerate(prompts):
        if is_messages(p):
            found, items = _message_images(p)
            if found and per[i] is not None:
                raise ValueError(f"prompt {i}: images are given both in the messages and with images=; "
                                 f"use one of the two")
            if found and len(found) != items:
                raise ValueError(f"prompt {i}: {items - len(found)} of its {items} image items carry no "
                                 f"image (give each an 'image' entry, or none and pass images=)")
            if found:
                per[i] = found
            elif items and per[i] is None:
                raise ValueError(f"prompt {i}: its messages hold {items} image item(s) but no image "
                                 f"was given (put it in the item's 'image' entry, or pass images=)")
    return per


def encode_with_images(model, prompt, images) -> tuple[list[int], torch.Tensor | None]:
    """Prompt ids (images expanded) and the feature rows of their <|patch|> tokens. A plain string
    prompt has no image placeholder (special-token text is not special in it): its images go
    right after BOS."""
    ids = _encode(model, prompt)
    if images is None:
        return ids, None
    tokens = model.image_tokens
    if isinstance(prompt, str) and tokens.image not in ids and tokens.patch not in ids:
        n = len(images) if isinstance(images, (list, tuple)) else 1
        ids = ids[:1] + [tokens.image] * n + ids[1:]
    return model._with_images(ids, images)
