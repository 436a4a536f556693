"""model.generate(): prompts in (token ids, a string, chat messages, or a list of those), tokens
and text out. Greedy or sampled (sampling.py), stop tokens and stop strings, streaming, and
continuous batching of several prompts on one engine (scheduler.py). Defaults for the sampling
parameters come from the checkpoint's generation_config.json when it has one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from .sampling import SamplingParams
from .scheduler import Request, Scheduler


@dataclass
class GenerationResult:
    token_ids: list[int]                 # the new tokens (prompt excluded; a stop token included)
    finish_reason: str                   # "stop" (stop token or string) or "length"
    text: str = ""                       # decoded new text (stop string and after it removed)
    logits: torch.Tensor | None = None   # [steps, vocab] float32 with return_logits=True
    prompt_tokens: int = 0
    timings: dict = field(default_factory=dict)  # prefill_s, decode_s, total_s, decode_tokens_per_s


def _is_messages(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(m, dict) for m in x)


def _is_ids(x) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dim() == 1 or (x.dim() == 2 and x.shape[0] == 1)
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(
        isinstance(t, int) and not isinstance(t, bool) for t in x)


def _split_batch(prompt):
    """-> (list of single prompts, was_batched)."""
    if isinstance(prompt, (list, tuple, str)) and len(prompt) == 0:
        raise ValueError("input_ids must not be empty" if not isinstance(prompt, str) else "prompt must not be empty")
    if isinstance(prompt, str) or _is_messages(prompt) or _is_ids(prompt):
        return [prompt], False
    if isinstance(prompt, torch.Tensor) and prompt.dim() == 2:
        return [row for row in prompt], True
    if isinstance(prompt, (list, tuple)) and prompt:
        return list(prompt), True
    raise TypeError("prompt must be token ids, a string, a list of chat messages, or a list of those")


def _encode(model, prompt) -> list[int]:
    from .engine import _as_id_list

    if isinstance(prompt, str):
        return [model.tokenizer.bos_id] + model.tokenizer.encode(prompt)
    if _is_messages(prompt):
        return model.tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True)
    return _as_id_list(prompt, "input_ids")


def _message_images(messages) -> tuple[list, int]:
    """The images carried by {"type": "image", "image" or "path": ...} content items, and the
    number of image items (an item may carry none: its image then comes from images=)."""
    found, items = [], 0
    for m in messages:
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


def _prompt_images(prompts: list, images, batched: bool) -> list:
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
        if _is_messages(p):
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


def _encode_with_images(model, prompt, images) -> tuple[list[int], torch.Tensor | None]:
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


def _defaults(model, temperature, top_k, top_p, min_p, repetition_penalty, stop_token_ids):
    """Unset parameters take the checkpoint's generation_config.json, then greedy."""
    gc = getattr(model, "generation_config", {}) or {}
    sampled = bool(gc.get("do_sample", False))
    if temperature is None:
        temperature = float(gc.get("temperature", 1.0)) if sampled else 0.0
    if top_k is None:
        top_k = int(gc.get("top_k", 0) or 0) if sampled else 0
    if top_p is None:
        top_p = float(gc.get("top_p", 1.0) or 1.0) if sampled else 1.0
    if stop_token_ids is None:
        stop_token_ids = model.default_stop_ids()
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                            min_p=0.0 if min_p is None else min_p,
                            repetition_penalty=1.0 if repetition_penalty is None else repetition_penalty)
    return params, frozenset(int(t) for t in stop_token_ids)


def _stop_string_check(model, stop_strings):
    if not stop_strings:
        return None
    stops = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
    if not all(isinstance(s, str) and s for s in stops):
        raise ValueError("stop_strings must be non-empty strings")
    tok = model.tokenizer
    return lambda out: any(s in tok.decode(out[-64:]) for s in stops)  # a stop string is short


def _finish_text(model, r: Request, stop_strings) -> str:
    tok = model.tokenizer
    ids = [t for t in r.output if t not in r.stop_ids]
    text = tok.decode(ids)
    if stop_strings:
        for s in ([stop_strings] if isinstance(stop_strings, str) else stop_strings):
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
    return text


def _result(model, r: Request, stop_strings) -> GenerationResult:
    decode_s = (r.t_end - r.t_first) if r.t_first else 0.0
    steps = max(len(r.output) - 1, 0)
    timings = {"prefill_s": (r.t_first or r.t_end) - r.t_start, "decode_s": decode_s,
               "total_s": r.t_end - r.t_start,
               "decode_tokens_per_s": steps / decode_s if decode_s > 0 else 0.0}
    logits = None
    if r.return_logits:
        logits = torch.stack(r.logits) if r.logits else torch.empty(0, model.vocab_size)
    return GenerationResult(token_ids=list(r.output), finish_reason=r.finish_reason or "length",
                            text=_finish_text(model, r, stop_strings), logits=logits,
                            prompt_tokens=len(r.prompt), timings=timings)


def generate(model, prompt=None, *, input_ids=None, images=None, max_new_tokens: int = 128,
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             min_p: float | None = None, repetition_penalty: float | None = None,
             seed: int | None = None, stop_token_ids=None, stop_strings=None, stream: bool = False,
             return_logits: bool = False, max_batch: int | None = None):
    """Generate for one prompt (-> GenerationResult, or an iterator of text pieces with
    stream=True) or a list of prompts (-> list of GenerationResult, served together).

    images: the prompt's images (one prompt), or one entry per prompt (a list of prompts): paths,
    bytes, PIL images, numpy arrays, ImageInput or pixel_values (llama4_native.multimodal). Chat
    messages may carry them as {"type": "image", "image": ...} items instead. Token-id prompts
    hold one <|image|> per image (or are already expanded); a plain string gets its images
    after BOS. The vision tower runs once per prompt, before its prefill."""
    if (prompt is None) == (input_ids is None):
        raise ValueError("pass exactly one of prompt and input_ids")
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if seed is not None and not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    prompts, batched = _split_batch(input_ids if input_ids is not None else prompt)
    params, stop_ids = _defaults(model, temperature, top_k, top_p, min_p, repetition_penalty,
                                 stop_token_ids)
    stop_check = _stop_string_check(model, stop_strings)
    requests = []
    for i, (p, imgs) in enumerate(zip(prompts, _prompt_images(prompts, images, batched))):
        ids, features = _encode_with_images(model, p, imgs)
        if len(ids) + max_new_tokens > model.max_context:
            raise ValueError(f"prompt {i} has {len(ids)} tokens; with max_new_tokens={max_new_tokens} "
                             f"it exceeds the context length {model.max_context}")
        gen = torch.Generator().manual_seed(seed + i) if seed is not None else None
        requests.append(Request(prompt=ids, max_new_tokens=max_new_tokens, params=params,
                                stop_ids=stop_ids, stop_check=stop_check, generator=gen,
                                return_logits=return_logits, image_features=features))
    scheduler = Scheduler(model, max_batch or model.max_sequences)
    if stream:
        if batched:
            raise ValueError("stream=True takes a single prompt")
        return _stream(model, scheduler, requests[0], stop_strings)
    for _ in scheduler.run(requests):
        pass
    results = [_result(model, r, stop_strings) for r in requests]
    return results if batched else results[0]


def _stream(model, scheduler: Scheduler, request: Request, stop_strings) -> Iterator[str]:
    """Text pieces as tokens arrive; never splits a UTF-8 character; stop tokens and stop strings
    are not emitted. Joined, the pieces equal the result's text."""
    from .tokenizer import IncrementalDecoder

    decoder = IncrementalDecoder(model.tokenizer)
    stops = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings or [])
    held = ""  # text that might be the start of a stop string
    for r, tok in scheduler.run([request]):
        if tok is None or tok in request.stop_ids:
            continue
        held += decoder.feed(tok)
        text = held
        if stops:
            for s in stops:
                cut = text.find(s)
                if cut >= 0:
                    text = text[:cut]
                    piece, held = text, ""
                    if piece:
                        yield piece
                    return
            # Emit all but a tail that could still begin a stop string.
            split = max(len(text) - (max(len(s) for s in stops) - 1), 0)
            piece, held = text[:split], text[split:]
        else:
            piece, held = text, ""
        if piece:
            yield piece
    tail = held + decoder.flush()
    if tail:
        yield tail
