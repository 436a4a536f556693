"""The ways to run the Llama 4 byte-level BPE: a tiktoken file (in C++ or with tiktoken) or a Hugging
Face tokenizer.json.

Every backend offers the same things, in token ids / raw bytes:
  encode(text, allowed_special: frozenset[str]) -> list[int]   no BOS; only `allowed_special`
                                                                 names become special tokens
  token_bytes(id) -> bytes, special_tokens: {name: id}, vocab_size
`Tokenizer` (tokenizer.py) builds the public API on top and never sees which one it runs.

* `CppBackend` runs a `tokenizer.model` with the C++ tokenizer (llama4/tokenizer.h: PCRE2 for the
  o200k pattern, tiktoken's merge loop, Meta's cutting); the ids are tiktoken's. It is the default
  (`tiktoken_model_backend`) whenever the library was built with it (build_info()["tokenizer"]).
* `TiktokenBackend` reads a `tokenizer.model` (200,000 lines `base64(bytes) rank`) and encodes exactly
  like Meta's `llama_models/llama4/tokenizer.py`: the o200k pattern, the 2,048 special tokens after
  the ranks, and the same cutting of long inputs (tiktoken panics on some very long pieces). It is
  the fallback for builds without PCRE2 and the reference the C++ tokenizer is tested against.
* `HFBackend` runs a checkpoint's own `tokenizer.json` through the `tokenizers` package.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Iterator

import tiktoken

from . import _C
from .special_tokens import NUM_BASE_TOKENS, SPECIAL_TOKEN_NAMES

# Meta `Tokenizer.O200K_PATTERN`, character for character.
O200K_PATTERN = r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501

# Meta's limits: tiktoken handles <= 400k chars per call, and runs of more than 25k whitespace or
# non-whitespace chars are cut (https://github.com/openai/tiktoken/issues/195).
TIKTOKEN_MAX_ENCODE_CHARS = 400_000
MAX_NO_WHITESPACES_CHARS = 25_000

# Python's `\s` on str patterns is str.isspace(), so this finds exactly the runs Meta would cut.
_LONG_RUN = re.compile(r"\s{%d,}|\S{%d,}" % (MAX_NO_WHITESPACES_CHARS + 1, MAX_NO_WHITESPACES_CHARS + 1))


def load_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Parse a tiktoken BPE file: one `base64(token_bytes) rank` per line, blank lines ignored."""
    ranks: dict[bytes, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'base64 rank', got {line.strip()[:80]!r}")
            ranks[base64.b64decode(parts[0])] = int(parts[1])
    return ranks


def split_long_runs(s: str, max_run: int = MAX_NO_WHITESPACES_CHARS) -> Iterator[str]:
    """Meta's `_split_whitespaces_or_nonwhitespaces`: cut `s` so no piece has a run > max_run.

    The cut points are Meta's exactly (a new piece starts at the char that would make a run of
    max_run + 1); the regex pre-check only skips the per-char loop when there is nothing to cut.
    """
    if max_run == MAX_NO_WHITESPACES_CHARS and not _LONG_RUN.search(s):
        yield s
        return
    run_len = 0
    run_is_space = s[0].isspace() if s else False
    start = 0
    for i, ch in enumerate(s):
        is_space = ch.isspace()
        if run_is_space != is_space:
            run_len = 1
            run_is_space = is_space
        else:
            run_len += 1
            if run_len > max_run:
                yield s[start:i]
                start = i
                run_len = 1
    yield s[start:]


class TiktokenBackend:
    """A Llama 4 `tokenizer.model` run by tiktoken, with Meta's special tokens and input cutting."""

    def __init__(self, model_path: Path):
        ranks = load_tiktoken_ranks(model_path)
        if len(ranks) != NUM_BASE_TOKENS or max(ranks.values()) != NUM_BASE_TOKENS - 1:
            raise ValueError(
                f"{model_path}: expected {NUM_BASE_TOKENS} dense BPE ranks (a Llama 4 tokenizer.model), "
                f"got {len(ranks)} ranks up to {max(ranks.values(), default=-1)}"
            )
        self.special_tokens = {name: NUM_BASE_TOKENS + i for i, name in enumerate(SPECIAL_TOKEN_NAMES)}
        self.vocab_size = NUM_BASE_TOKENS + len(self.special_tokens)
        self._enc = tiktoken.Encoding(
            name=model_path.name,
            pat_str=O200K_PATTERN,
            mergeable_ranks=ranks,
            special_tokens=self.special_tokens,
        )

    def encode(self, text: str, allowed_special: frozenset[str]) -> list[int]:
        ids: list[int] = []
        for i in range(0, len(text), TIKTOKEN_MAX_ENCODE_CHARS):
            for piece in split_long_runs(text[i : i + TIKTOKEN_MAX_ENCODE_CHARS]):
                # disallowed_special=() : special-token text that is not allowed is ordinary text.
                ids += self._enc.encode(piece, allowed_special=allowed_special, disallowed_special=())
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(token_id)

    def decode_bytes(self, ids: list[int]) -> bytes:
        return self._enc.decode_bytes(ids)


class CppBackend:
    """A Llama 4 `tokenizer.model` run by the C++ tokenizer (`_C.Tokenizer`): tiktoken's ids, faster."""

    def __init__(self, model_path: Path):
        self.cpp = _C.Tokenizer(str(model_path))  # ValueError naming the file (and line) if it is bad
        self.special_tokens = {name: NUM_BASE_TOKENS + i for i, name in enumerate(_C.special_token_names())}
        self.vocab_size = self.cpp.vocab_size

    def encode(self, text: str, allowed_special: frozenset[str]) -> list[int]:
        return self.cpp.encode(text, allowed_special if allowed_special else "none")

    def token_bytes(self, token_id: int) -> bytes:
        return self.cpp.token_bytes(token_id)

    def decode_bytes(self, ids: list[int]) -> bytes:
        return self.cpp.decode_bytes(ids)


def cpp_tokenizer_built() -> bool:
    """True when libllama4 was built with the C++ tokenizer (PCRE2 found; LLAMA4_TOKENIZER=AUTO/ON)."""
    return bool(_C.build_info()["tokenizer"])


def tiktoken_model_backend(model_path: Path) -> CppBackend | TiktokenBackend:
    """The backend for a tiktoken `tokenizer.model`: the C++ one when built, else tiktoken."""
    return CppBackend(model_path) if cpp_tokenizer_built() else TiktokenBackend(model_path)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable char table that byte-level BPE vocabularies are written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class HFBackend:
    """A checkpoint's `tokenizer.json` run by the `tokenizers` package (must be byte-level BPE)."""

    def __init__(self, json_path: Path):
        from tokenizers import Tokenizer as HFTokenizer  # optional dependency (ships with transformers)

        self._tk = HFTokenizer.from_file(str(json_path))
        decoder = self._tk.decoder
        if decoder is None or "ByteLevel" not in type(decoder).__name__ + repr(decoder):
            raise ValueError(f"{json_path}: expected a byte-level BPE tokenizer, decoder is {decoder!r}")
        added = self._tk.get_added_tokens_decoder()  # {id: AddedToken}
        self.special_tokens = {tok.content: i for i, tok in added.items()}
        self._added_bytes = {i: tok.content.encode("utf-8") for i, tok in added.items()}
        self.vocab_size = self._tk.get_vocab_size(with_added_tokens=True)
        self._byte_of = {ch: b for b, ch in _bytes_to_unicode().items()}
        self._split_cache: dict[frozenset[str], re.Pattern] = {}

    def _encode_plain(self, text: str) -> list[int]:
        # The backend's pipeline without its added-token matching (what transformers'
        # `_encode_without_added_tokens` does), so special-token text stays text.
        if self._tk.normalizer is not None:
            text = self._tk.normalizer.normalize_str(text)
        pieces = [text]
        if self._tk.pre_tokenizer is not None:
            pieces = [p for p, _ in self._tk.pre_tokenizer.pre_tokenize_str(text)]
        return [t.id for p in pieces for t in self._tk.model.tokenize(p)]

    def encode(self, text: str, allowed_special: frozenset[str]) -> list[int]:
        if not allowed_special:
            return self._encode_plain(text)
        pattern = self._split_cache.get(allowed_special)
        if pattern is None:
            longest_first = sorted(allowed_special, key=len, reverse=True)
            pattern = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")")
            self._split_cache[allowed_special] = pattern
        ids: list[int] = []
        # re.split with one group alternates [text, special, text, special, ..., text].
        for k, piece in enumerate(pattern.split(text)):
            if k % 2:
                ids.append(self.special_tokens[piece])
            elif piece:
                ids += self._encode_plain(piece)
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        if token_id in self._added_bytes:
            return self._added_bytes[token_id]
        token = self._tk.id_to_token(token_id)
        if token is None:
            raise ValueError(f"token id {token_id} is not in the vocabulary")
        return bytes(self._byte_of[ch] for ch in token)

    def decode_bytes(self, ids: list[int]) -> bytes:
        return b"".join(self.token_bytes(i) for i in ids)
