"""The Llama 4 tokenizer: text <-> token ids, the chat template, and streaming detokenisation.

`get_tokenizer()` builds it from the `tokenizer.model` that the `llama-models` wheel ships
(`llama_models/llama4/tokenizer.model`; the file is read, no llama_models module is imported) and
runs it with the C++ tokenizer (llama4/tokenizer.h), or with tiktoken in a build without PCRE2:
either way the ids are those of Meta's reference `Tokenizer`. `Tokenizer.from_checkpoint(dir)`
prefers the checkpoint's own files. See LLAMA4.md §4.1 (ids) and §6 (format).

`encode` never adds a BOS (prepend `tok.bos_id` where a prompt needs one); `apply_chat_template`
starts with `<|begin_of_text|>` like both Meta and HF.

Special-token text in user input is *not* a special token by default (`allowed_special="none"`):
Meta's `Tokenizer.encode(allowed_special=None, disallowed_special=())` encodes it as plain text,
which stops prompt text from forging `<|eot|>` or headers. Pass "all" or a set of names to opt in.
"""
from __future__ import annotations

import codecs
import functools
import importlib.util
import operator
import warnings
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Union

from . import chat
from . import special_tokens as st
from .tokenizer_backends import CppBackend, HFBackend, TiktokenBackend, tiktoken_model_backend

AllowedSpecial = Union[str, AbstractSet[str]]  # "all" | "none" | a set of special-token names

# These ids are baked into the model config (image_token_index, eos ids, ...) and into the chat and
# image code, so a checkpoint tokenizer that moves them is rejected rather than silently mixed.
_FUNCTIONAL_TOKENS = (
    "<|begin_of_text|>", "<|end_of_text|>", "<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>",
    "<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>", "<|image_start|>", "<|image_end|>",
    "<|tile_x_separator|>", "<|tile_y_separator|>", "<|image|>", "<|patch|>",
)  # fmt: skip


def bundled_tokenizer_path() -> Path:
    """Path of `llama_models/llama4/tokenizer.model`, found without importing llama_models."""
    spec = importlib.util.find_spec("llama_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / "llama4" / "tokenizer.model"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the Llama 4 tokenizer.model ships in the llama-models wheel (llama_models/llama4/tokenizer.model); "
        f"install it with `pip install llama-models==0.3.0` (searched: {locations or 'llama_models not found'})"
    )


@functools.lru_cache(maxsize=1)
def get_tokenizer() -> "Tokenizer":
    """The bundled Llama 4 tokenizer (built once, then shared: it holds no mutable state)."""
    path = bundled_tokenizer_path()
    return Tokenizer(tiktoken_model_backend(path), source=str(path))


class Tokenizer:
    """Llama 4 byte-level BPE with 2,048 special tokens; vocab 202,048 (more if a checkpoint adds some)."""

    def __init__(self, backend: CppBackend | TiktokenBackend | HFBackend, source: str = ""):
        self._backend = backend
        self.source = source  # the file it was built from, for messages and logs
        for name in _FUNCTIONAL_TOKENS:
            got = backend.special_tokens.get(name)
            if got != st.SPECIAL_TOKENS[name]:
                raise ValueError(f"{source}: {name} has id {got}, expected {st.SPECIAL_TOKENS[name]} (LLAMA4.md §4.1)")
        self._special_ids = frozenset(backend.special_tokens.values())
        self._all_special = frozenset(backend.special_tokens)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "Tokenizer":
        """The tokenizer of a checkpoint folder (or a tokenizer.json / tokenizer.model file).

        Order: `tokenizer.json` via the `tokenizers` package when it is installed, else the
        checkpoint's `tokenizer.model`, else the bundled tokenizer (with a warning). A tokenizer.json
        encodes like HF: inputs over 400k chars or with runs over 25k chars are not cut as Meta cuts
        them, so ids can differ there (the decoded text is the same).
        """
        path = Path(path)
        if path.is_file():
            if path.suffix == ".json":
                return cls(HFBackend(path), source=str(path))
            return cls(tiktoken_model_backend(path), source=str(path))
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint path {path} does not exist")
        tok_json, tok_model = path / "tokenizer.json", path / "tokenizer.model"
        if tok_json.is_file():
            if importlib.util.find_spec("tokenizers") is not None:
                return cls(HFBackend(tok_json), source=str(tok_json))
            fallback = f"{tok_model}" if tok_model.is_file() else "the bundled tokenizer"
            warnings.warn(f"{tok_json} needs the `tokenizers` package, which is not installed; using {fallback}",
                          stacklevel=2)  # fmt: skip
        if tok_model.is_file():
            return cls(tiktoken_model_backend(tok_model), source=str(tok_model))
        if not tok_json.is_file():
            warnings.warn(f"{path} has no tokenizer.json or tokenizer.model; using the bundled Llama 4 tokenizer",
                          stacklevel=2)  # fmt: skip
        return get_tokenizer()

    # ---- text -> ids ------------------------------------------------------------------------------

    def encode(self, text: str, allowed_special: AllowedSpecial = "none") -> list[int]:
        """Token ids of `text`, without BOS. Special-token text becomes a special token only if allowed."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return self._backend.encode(text, self._allowed(allowed_special))

    def _allowed(self, allowed_special: AllowedSpecial) -> frozenset[str]:
        if allowed_special == "none":
            return frozenset()
        if allowed_special == "all":
            return self._all_special
        if isinstance(allowed_special, AbstractSet):
            unknown = sorted(set(allowed_special) - self._all_special)
            if unknown:
                raise ValueError(f"allowed_special names unknown special tokens: {unknown[:5]}")
            return frozenset(allowed_special)
        raise ValueError(f"allowed_special must be 'all', 'none' or a set of names, got {allowed_special!r}")

    # ---- ids -> text ------------------------------------------------------------------------------

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        out = [operator.index(i) for i in ids]
        n = self.vocab_size
        for i in out:
            if not 0 <= i < n:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {n})")
        return out

    def decode_bytes(self, ids: Iterable[int], skip_special_tokens: bool = False) -> bytes:
        """The raw bytes of `ids` (may end inside a UTF-8 character)."""
        ids = self._check_ids(ids)
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._special_ids]
        return self._backend.decode_bytes(ids)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; invalid UTF-8 becomes U+FFFD (as tiktoken and Meta's decode do)."""
        return self.decode_bytes(ids, skip_special_tokens).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token's bytes are its name, e.g. b'<|eot|>')."""
        (token_id,) = self._check_ids([token_id])
        return self._backend.token_bytes(token_id)

    def is_special(self, token_id: int) -> bool:
        return operator.index(token_id) in self._special_ids

    # ---- special tokens ---------------------------------------------------------------------------

    def special_token_id(self, name: str) -> int:
        """Id of a special token by its full name, e.g. special_token_id('<|eot|>') == 200008."""
        try:
            return self._backend.special_tokens[name]
        except KeyError:
            raise ValueError(f"unknown special token {name!r} (names look like '<|eot|>')") from None

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._backend.special_tokens)

    @property
    def vocab_size(self) -> int:
        return self._backend.vocab_size

    @property
    def bos_id(self) -> int:
        return st.BOS_ID

    @property
    def eos_id(self) -> int:
        """`<|end_of_text|>` (Meta's eos_id). Instruct models end turns with eot_id; see stop_ids."""
        return st.END_OF_TEXT_ID

    @property
    def eot_id(self) -> int:
        return st.EOT_ID

    @property
    def eom_id(self) -> int:
        return st.EOM_ID

    @property
    def pad_id(self) -> int:
        return st.PAD_ID

    @property
    def stop_ids(self) -> frozenset[int]:
        """Generation stops on any of these: end_of_text, eom, eot (Meta stop_tokens, HF eos list)."""
        return st.STOP_IDS

    # ---- chat -------------------------------------------------------------------------------------

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True,
                            tokenize: bool = True) -> list[int] | str:  # fmt: skip
        """Render `messages` in the Llama 4 chat format (chat.py): ids from BOS on, or the string.

        With the C++ tokenizer the ids come from the C++ chat format (llama4/chat.h, the same ids
        as chat.encode_chat, tested against it); images stay `<|image|>` placeholders here.
        """
        if not tokenize:
            return chat.render_chat(messages, add_generation_prompt)
        if isinstance(self._backend, CppBackend):
            return self._backend.cpp.chat(messages, add_generation_prompt, expand_images=False)
        return chat.encode_chat(self, messages, add_generation_prompt)

    @property
    def backend(self) -> str:
        """What encodes: "cpp" (the C++ tokenizer), "tiktoken" or "tokenizers" (a tokenizer.json)."""
        return {CppBackend: "cpp", TiktokenBackend: "tiktoken", HFBackend: "tokenizers"}[type(self._backend)]

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, backend={self.backend!r}, source={self.source!r})"


class IncrementalDecoder:
    """Streaming detokeniser: feed ids one at a time, get text that never splits a UTF-8 character.

    Bytes of an incomplete character wait for the next token. `"".join(pieces) + flush()` equals
    `tokenizer.decode(all_ids)` for any ids, including invalid UTF-8 (Python's incremental UTF-8
    decoder replaces exactly what a one-shot decode replaces).
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False):
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """Text completed by this token ('' while a character is still incomplete)."""
        if self._skip_special and self._tokenizer.is_special(token_id):
            return ""
        return self._utf8.decode(self._tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """End of stream: a trailing incomplete character comes out as U+FFFD; then starts afresh."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text

    def reset(self) -> None:
        self._utf8.reset()
