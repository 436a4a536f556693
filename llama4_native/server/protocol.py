"""The OpenAI request bodies the server accepts (pydantic; ranges as OpenAI documents them) and the
conversion of their sampling fields to SamplingParams. Fields OpenAI defines that this engine does
not implement (tools, response_format, logit_bias, best_of > n, echo, suffix) are refused with 400
rather than silently ignored; unknown extra fields are ignored, as OpenAI's server does.

vLLM extensions accepted: top_k, min_p, repetition_penalty, ignore_eos, stop_token_ids."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..sampling_params import SamplingParams


class ProtocolError(ValueError):
    """A request the server refuses; `status` and `code` go into the OpenAI-style error body."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Sampling(BaseModel):
    """Fields both endpoints share."""
    model_config = ConfigDict(extra="ignore")

    model: str
    n: int = Field(1, ge=1, le=128)
    temperature: Optional[float] = Field(None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(None, gt=0.0, le=1.0)
    top_k: Optional[int] = Field(None, ge=0)
    min_p: Optional[float] = Field(None, ge=0.0, le=1.0)
    repetition_penalty: Optional[float] = Field(None, gt=0.0)
    presence_penalty: Optional[float] = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: Optional[float] = Field(None, ge=-2.0, le=2.0)
    seed: Optional[int] = Field(None, ge=0, lt=2**64)
    stop: Optional[Union[str, list[str]]] = None
    stop_token_ids: Optional[list[int]] = None
    ignore_eos: bool = False
    max_tokens: Optional[int] = Field(None, ge=1)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    logit_bias: Optional[dict[str, float]] = None
    user: Optional[str] = None

    @model_validator(mode="after")
    def _check(self):
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        if len(stops) > 4:
            raise ValueError(f"stop: at most 4 sequences, got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("stop: sequences must not be empty")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by this server")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream=true")
        return self

    def sampling(self, logprobs: int | None, max_tokens: int | None, default_stop_ids) -> SamplingParams:
        """The request's SamplingParams (unset fields stay None: the model's defaults fill them)."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        stop_ids = list(self.stop_token_ids or [])
        if not self.ignore_eos:
            stop_ids += [t for t in default_stop_ids if t not in stop_ids]
        return SamplingParams(
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
            repetition_penalty=self.repetition_penalty, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty, seed=self.seed, n=self.n, logprobs=logprobs,
            max_new_tokens=max_tokens, stop_token_ids=tuple(stop_ids), stop_strings=tuple(stop) if stop else None)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ImageURL(BaseModel):
    url: str
    detail: Optional[str] = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "image_url"]
    text: Optional[str] = None
    image_url: Optional[ImageURL] = None

    @model_validator(mode="after")
    def _check(self):
        if self.type == "text" and self.text is None:
            raise ValueError("a content part of type 'text' needs a 'text' field")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("a content part of type 'image_url' needs an 'image_url' field")
        return self


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Optional[Union[str, list[ContentPart]]] = None
    name: Optional[str] = None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)
    tools: Optional[list[Any]] = None
    response_format: Optional[dict] = None

    @model_validator(mode="after")
    def _check_chat(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs=true")
        if self.tools:
            raise ValueError("tools are not supported by this server")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise ValueError("response_format other than text is not supported by this server")
        return self

    def logprob_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    max_tokens: Optional[int] = Field(16, ge=1)  # OpenAI's default for completions
    logprobs: Optional[int] = Field(None, ge=0, le=20)
    echo: bool = False
    suffix: Optional[str] = None
    best_of: Optional[int] = None

    @model_validator(mode="after")
    def _check_completion(self):
        if self.echo:
            raise ValueError("echo is not supported by this server")
        if self.suffix:
            raise ValueError("suffix is not supported by this server")
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError("best_of other than n is not supported by this server")
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt must not be empty")
        if isinstance(self.prompt, list) and any(isinstance(p, list) and not p for p in self.prompt):
            raise ValueError("prompt: token id lists must not be empty")
        return self

    def prompts(self) -> list:
        """Single prompts: strings or token-id lists."""
        p = self.prompt
        if isinstance(p, str) or (p and isinstance(p[0], int)):
            return [p]
        return list(p)

    def logprob_count(self) -> int | None:
        return self.logprobs

    def token_limit(self) -> int | None:
        return self.max_tokens


def messages_for_template(messages: list[ChatMessage], images: dict[int, bytes]) -> list[dict]:
    """The chat messages as the chat template takes them; image parts become
    {"type": "image", "image": <bytes>} items (images: part number -> fetched bytes, numbered in
    order over all messages). "developer" is OpenAI's newer name for "system"."""
    out, k = [], 0
    for m in messages:
        role = "system" if m.role == "developer" else m.role
        if m.content is None or isinstance(m.content, str):
            out.append({"role": role, "content": m.content or ""})
            continue
        items = []
        for part in m.content:
            if part.type == "text":
                items.append({"type": "text", "text": part.text})
            else:
                items.append({"type": "image", "image": images[k]})
                k += 1
        out.append({"role": role, "content": items})
    return out


def image_urls(messages: list[ChatMessage]) -> list[str]:
    return [p.image_url.url for m in messages if isinstance(m.content, list) for p in m.content
            if p.type == "image_url"]
