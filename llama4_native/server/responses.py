"""OpenAI response bodies: whole responses and SSE chunks of /v1/chat/completions and
/v1/completions, and their logprobs in each endpoint's own layout."""
from __future__ import annotations

import json
import math
import time
import uuid

from ..generate import TokenLogprobs

_MIN_LOGPROB = -9999.0  # JSON has no -inf (vLLM clamps the same way)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _lp(x: float) -> float:
    return x if math.isfinite(x) else _MIN_LOGPROB


def _token(tokenizer, token_id: int) -> tuple[str, list[int]]:
    b = tokenizer.token_bytes(token_id)
    return b.decode("utf-8", errors="replace"), list(b)


def chat_logprobs(tokenizer, items: list[TokenLogprobs] | None) -> dict | None:
    if items is None:
        return None
    content = []
    for t in items:
        text, raw = _token(tokenizer, t.token_id)
        top = []
        for tid, lp in t.top:
            tt, tb = _token(tokenizer, tid)
            top.append({"token": tt, "logprob": _lp(lp), "bytes": tb})
        content.append({"token": text, "logprob": _lp(t.logprob), "bytes": raw, "top_logprobs": top})
    return {"content": content}


def completion_logprobs(tokenizer, items: list[TokenLogprobs] | None, offset: int = 0) -> dict | None:
    """`offset`: characters of the choice's text before these tokens (text_offset)."""
    if items is None:
        return None
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for t in items:
        text, _ = _token(tokenizer, t.token_id)
        out["tokens"].append(text)
        out["token_logprobs"].append(_lp(t.logprob))
        out["top_logprobs"].append({_token(tokenizer, tid)[0]: _lp(lp) for tid, lp in t.top})
        out["text_offset"].append(offset)
        offset += len(text)
    return out


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class Choice:
    """What one choice (one sample of one prompt) has produced so far."""

    def __init__(self, index: int):
        self.index = index
        self.text = ""
        self.tokens = 0
        self.logprobs: list[TokenLogprobs] = []
        self.finish_reason: str | None = None


def chat_response(rid: str, model: str, choices: list[Choice], prompt_tokens: int, tokenizer,
                  want_logprobs: bool) -> dict:
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.text},
                         "logprobs": chat_logprobs(tokenizer, c.logprobs) if want_logprobs else None,
                         "finish_reason": c.finish_reason} for c in choices],
            "usage": usage(prompt_tokens, sum(c.tokens for c in choices))}


def completion_response(rid: str, model: str, choices: list[Choice], prompt_tokens: int, tokenizer,
                        want_logprobs: bool) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": c.index, "text": c.text,
                         "logprobs": completion_logprobs(tokenizer, c.logprobs) if want_logprobs else None,
                         "finish_reason": c.finish_reason} for c in choices],
            "usage": usage(prompt_tokens, sum(c.tokens for c in choices))}


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


class ChunkWriter:
    """SSE chunks of one streamed response (chat or completion)."""

    def __init__(self, chat: bool, rid: str, model: str, tokenizer):
        self.chat, self.rid, self.model, self.tokenizer = chat, rid, model, tokenizer
        self.created = int(time.time())
        self.offsets: dict[int, int] = {}  # completion text_offset per choice

    def _chunk(self, choices: list[dict], usage_: dict | None = None) -> str:
        body = {"id": self.rid, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": choices}
        if usage_ is not None:
            body["usage"] = usage_
        return sse(body)

    def role(self, index: int) -> str:
        return self._chunk([{"index": index, "delta": {"role": "assistant", "content": ""},
                             "logprobs": None, "finish_reason": None}])

    def piece(self, index: int, text: str, logprobs: list[TokenLogprobs] | None, finish: str | None) -> str:
        if self.chat:
            delta = {"content": text} if text or not finish else {}
            lp = chat_logprobs(self.tokenizer, logprobs)
            return self._chunk([{"index": index, "delta": delta, "logprobs": lp, "finish_reason": finish}])
        offset = self.offsets.get(index, 0)
        lp = completion_logprobs(self.tokenizer, logprobs, offset)
        self.offsets[index] = offset + (sum(len(t) for t in lp["tokens"]) if lp else 0)
        return self._chunk([{"index": index, "text": text, "logprobs": lp, "finish_reason": finish}])

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        return self._chunk([], usage(prompt_tokens, completion_tokens))
