"""model.generate(): prompts in (prompts.py), tokens and text out. The C++ scheduler batches,
samples and stops on stop tokens (llama4/scheduler.h); this loop feeds it the requests, turns
tokens into text (never splitting a character), cuts stop strings and streams.

Sampling parameters: keyword arguments set them for every prompt; `sampling=` gives one
SamplingParams or one per prompt, whose set fields win; unset ones come from the checkpoint's
generation_config.json, then greedy (sampling_params.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterator

import torch

from . import _C
from .processor_inputs import images_from_pixel_values, unpad, warn_if_padded
from .prompts import as_id_list, encode_with_images, is_messages, prompt_images, split_batch
from .sampling_params import SamplingParams
from .text_stream import TextStream


class GenerationError(RuntimeError):
    """A request could not go on (its logits were not finite, say); the message names it."""


@dataclass
class TokenLogprobs:
    token_id: int
    logprob: float                          # of the chosen token, under the model's distribution
    top: list[tuple[int, float]]            # the `logprobs` most likely (id, logprob), best first


@dataclass
class GenerationResult:
    token_ids: list[int]                 # the new tokens (prompt excluded; a stop token included)
    finish_reason: str                   # "stop" (stop token or string) or "length"
    text: str = ""                       # decoded new text (stop string and after it removed)
    logits: torch.Tensor | None = None   # [steps, vocab] float32 with return_logits=True
    prompt_tokens: int = 0
    timings: dict = field(default_factory=dict)  # prefill_s, decode_s, total_s, decode_tokens_per_s
    logprobs: list[TokenLogprobs] | None = None  # one per token when logprobs is set
    samples: list["GenerationResult"] = field(default_factory=list)  # all n samples (this is samples[0])


@dataclass
class StreamOutput:
    """One step's news for one sample (streaming a batch, or n > 1)."""
    index: int                           # the prompt's position in the batch
    sample: int                          # 0..n-1
    token_ids: list[int]                 # new tokens
    text: str                            # new text (held back while it could begin a stop string)
    logprobs: list[TokenLogprobs] | None = None
    finish_reason: str | None = None     # set on the sample's last output


class _Sample:
    """What one sample has produced so far."""

    def __init__(self, model, index: int, k: int, prompt_tokens: int, stop_ids, stop_strings, t_start: float):
        self.index, self.k, self.prompt_tokens, self.stop_ids = index, k, prompt_tokens, frozenset(stop_ids)
        self.tokens: list[int] = []
        self.logprobs: list[TokenLogprobs] = []
        self.logits: list[torch.Tensor] = []
        self.text = TextStream(model.tokenizer, stop_strings)
        self.finish: str | None = None
        self.t_start, self.t_first, self.t_end = t_start, None, None

    def add(self, tokens, logprobs, logits, now: float) -> tuple[str, bool]:
        """-> (new text, whether a stop string ended the sample)."""
        self.t_first = self.t_first or now
        self.tokens += tokens
        if logprobs:
            self.logprobs += [TokenLogprobs(t, lp, list(zip(ids, lps))) for t, (lp, ids, lps) in zip(tokens, logprobs)]
        if logits is not None:
            self.logits.append(torch.from_dlpack(logits))
        piece = "".join(self.text.feed(t) for t in tokens if t not in self.stop_ids)
        return piece, self.text.stopped

    def result(self, want_logprobs: bool, want_logits: bool, vocab: int) -> GenerationResult:
        t_end = self.t_end or time.perf_counter()
        decode_s = t_end - self.t_first if self.t_first else 0.0
        timings = {"prefill_s": (self.t_first or t_end) - self.t_start, "decode_s": decode_s,
                   "total_s": t_end - self.t_start,
                   "decode_tokens_per_s": max(len(self.tokens) - 1, 0) / decode_s if decode_s > 0 else 0.0}
        logits = None
        if want_logits:
            logits = torch.cat(self.logits) if self.logits else torch.empty(0, vocab)
        return GenerationResult(token_ids=list(self.tokens), finish_reason=self.finish or "length",
                                text=self.text.full_text(), logits=logits,
                                prompt_tokens=self.prompt_tokens, timings=timings,
                                logprobs=list(self.logprobs) if want_logprobs else None)


def advance(scheduler, rid: int, s: _Sample, tokens, logprobs, logits, finish: str) -> tuple[str, str]:
    """One scheduler output for sample `s` (request `rid`) -> (new text, finish reason or "").
    A stop string ends the sample here: the scheduler is told to stop it (pages freed)."""
    piece, stopped = s.add(tokens, logprobs, logits, time.perf_counter())
    if stopped and not finish:
        scheduler.cancel(rid, s.k)
        finish = "stop"
    if finish:
        s.finish, s.t_end = finish, time.perf_counter()
        piece += s.text.flush()
    return piece, finish


def _fallback(model, kwargs: dict) -> SamplingParams:
    """generate()'s keyword arguments, then generation_config.json (sampling only when it says
    do_sample), then the checkpoint's stop ids."""
    from_config = SamplingParams(**model.default_sampling(), stop_token_ids=tuple(model.default_stop_ids()))
    return SamplingParams(**kwargs).merged(from_config)


def _per_prompt(sampling, n_prompts: int, fallback: SamplingParams, batched: bool) -> list[SamplingParams]:
    """Each prompt's parameters: its own, then the fallback. One seed for a whole batch gives
    prompt i the seed + i, so that equal prompts still draw differently."""
    if sampling is None or isinstance(sampling, SamplingParams):
        given = [sampling or SamplingParams()] * n_prompts
    elif isinstance(sampling, (list, tuple)) and all(isinstance(s, SamplingParams) for s in sampling):
        if len(sampling) != n_prompts:
            raise ValueError(f"sampling has {len(sampling)} entries for {n_prompts} prompts")
        given = list(sampling)
    else:
        raise TypeError("sampling must be a SamplingParams or a list of them, one per prompt")
    out = []
    for i, p in enumerate(given):
        if batched and p.seed is None and fallback.seed is not None:
            p = replace(p, seed=fallback.for_prompt(i).seed)
        out.append(p.merged(fallback))
    return out


def generate(model, prompt=None, *, input_ids=None, attention_mask=None, pixel_values=None, images=None, sampling=None, max_new_tokens: int | None = None,
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             min_p: float | None = None, repetition_penalty: float | None = None,
             presence_penalty: float | None = None, frequency_penalty: float | None = None,
             seed: int | None = None, n: int | None = None, logprobs: int | None = None, stop_token_ids=None,
             stop_strings=None, stream: bool = False, return_logits: bool = False, max_batch: int | None = None):
    """Generate for one prompt (-> GenerationResult; with stream=True an iterator of text pieces)
    or a list of prompts (-> list of GenerationResult, served together; with stream=True an
    iterator of StreamOutput). n > 1 gives n samples per prompt (result.samples; streaming yields
    StreamOutput then too). logprobs=k reports each token's logprob and the k most likely.

    images: the prompt's images (one prompt), or one entry per prompt (a list of prompts): paths,
    bytes, PIL images, numpy arrays, ImageInput or pixel_values (llama4_native.multimodal). Chat
    messages may carry them as {"type": "image", "image": ...} items instead. Token-id prompts
    hold one <|image|> per image (or are already expanded); a plain string gets its images
    after BOS. The vision tower runs once per prompt, before its prefill.

    attention_mask / pixel_values: what transformers' Llama4Processor returns, so that
    `generate(**processor(text=..., images=..., return_tensors="pt"))` works: padding (0s in the
    mask) is dropped per row, and pixel_values (all tiles of the batch) are cut into each prompt's
    images with the tile grids read from its expanded ids (processor_inputs.py)."""
    if (prompt is None) == (input_ids is None):
        raise ValueError("pass exactly one of prompt and input_ids")
    source = input_ids if input_ids is not None else prompt
    if attention_mask is not None:
        source = unpad(source, attention_mask)
    else:
        warn_if_padded(source, model.generation_config.get("pad_token_id"))
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
        raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
    fallback = _fallback(model, dict(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, repetition_penalty=repetition_penalty,
        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty, seed=seed, n=n, logprobs=logprobs,
        max_new_tokens=max_new_tokens, stop_token_ids=stop_token_ids, stop_strings=stop_strings))
    prompts, batched = split_batch(source)
    params = _per_prompt(sampling, len(prompts), fallback, batched)
    if pixel_values is not None:
        if images is not None:
            raise ValueError("pass images or pixel_values, not both")
        per_prompt = _images_from_pixel_values(model, prompts, pixel_values)
        images = per_prompt if batched else per_prompt[0]
    encoded = [encode_with_images(model, p, imgs) for p, imgs in zip(prompts, prompt_images(prompts, images, batched))]

    scheduler = _C.Scheduler(model._engine, max_batch=max_batch or 0)
    run = _Run(model, scheduler, params, encoded, return_logits)
    if stream:
        if not batched and all(p.n in (None, 1) for p in params):
            return run.text_pieces()
        return run.stream_outputs()
    for _ in run.events():
        pass
    results = run.results()
    return results if batched else results[0]


def _images_from_pixel_values(model, prompts: list, pixel_values) -> list:
    """Each prompt's images cut from the processor's pixel_values (the prompts must be the
    processor's token ids, whose expanded images give the tile grids)."""
    ids = []
    for i, p in enumerate(prompts):
        if isinstance(p, str) or is_messages(p):
            raise ValueError(f"prompt {i}: pixel_values go with the processor's input_ids (images already "
                             f"expanded into <|patch|> tokens); with text or chat messages pass images=")
        ids.append(as_id_list(p, f"input_ids[{i}]"))
    return images_from_pixel_values(ids, pixel_values, model.image_tokens, model._vision_config().tokens_per_tile)


class _Run:
    """The requests of one generate() call on a C++ Scheduler, and what they produced."""

    def __init__(self, model, scheduler, params: list[SamplingParams], encoded, return_logits: bool):
        self.model, self.scheduler, self.params, self.return_logits = model, scheduler, params, return_logits
        self.samples: dict[tuple[int, int], _Sample] = {}
        self.index_of: dict[int, int] = {}  # request id -> prompt index
        self.ids: list[int] = []
        for i, ((ids, features), p) in enumerate(zip(encoded, params)):
            kw = p.engine_kwargs()
            rid = scheduler.add_request(ids, image_features=features, return_logits=return_logits, **kw)
            self.ids.append(rid)
            self.index_of[rid] = i
            now = time.perf_counter()
            for k in range(kw["n"]):
                self.samples[(i, k)] = _Sample(model, i, k, len(ids), kw["stop_token_ids"], p.stop_strings, now)

    def events(self) -> Iterator[StreamOutput]:
        try:
            while self.scheduler.has_unfinished():
                for rid, k, tokens, logprobs, logits, finish, error in self.scheduler.step():
                    i = self.index_of[rid]
                    s = self.samples[(i, k)]
                    if finish == "error":
                        raise GenerationError(f"prompt {i}: {error}")
                    piece, finish = advance(self.scheduler, rid, s, tokens, logprobs, logits, finish)
                    yield StreamOutput(i, k, list(tokens), piece, s.logprobs[-len(tokens):] if logprobs else None,
                                       finish or None)
        finally:
            for rid in self.ids:  # an abandoned stream or an error: free what is still running
                self.scheduler.cancel(rid)

    def text_pieces(self) -> Iterator[str]:
        for out in self.events():
            if out.text:
                yield out.text

    def stream_outputs(self) -> Iterator[StreamOutput]:
        yield from self.events()

    def results(self) -> list[GenerationResult]:
        out = []
        vocab = self.model.vocab_size
        for i, p in enumerate(self.params):
            n = p.n or 1
            samples = [self.samples[(i, k)].result(p.logprobs is not None, self.return_logits, vocab) for k in range(n)]
            first = samples[0]
            first.samples = samples
            out.append(first)
        return out
