r"""Llama 4 chat format (LLAMA4.md §6) and the image-token expansion of §4.2.

  render_chat(messages, add_generation_prompt=True) -> str
  encode_chat(tokenizer, messages, add_generation_prompt=True) -> list[int]   (starts with BOS)
  expand_image_tokens(ids, tiles_per_image, patches_per_tile) -> list[int]

A message is {"role": ..., "content": ...}. Roles: system, user, assistant, ipython (tool results;
"tool" is accepted as its alias, as both Meta and HF do). Content is a str or a list of
{"type": "text", "text": str} / {"type": "image", ...} items; an image item renders `<|image|>`.
An assistant message may carry OpenAI-style "tool_calls": [{"function": {"name", "arguments"}}].

    <|begin_of_text|>
    <|header_start|>{role}<|header_end|>\n\n{content}<|eot|>      per message
    <|header_start|>assistant<|header_end|>\n\n                    generation prompt

No default system prompt or date is added. The text follows the HF template of transformers 5.23
(`processing_llama4.py`); where that differs from Meta's `ChatFormat`, HF is followed:
  * tool results and tool-calling assistant turns end in <|eot|> (Meta: <|eom|>);
  * a tool call renders `<|python_start|>{content}<|python_end|>{"name": n, "parameters": {...}}`
    (Meta: `{"type": "function", "name": ..., "parameters": ...}` without python tags);
  * a tool result is written as JSON, so a str result appears quoted (Meta: raw text);
  * a leading system message is stripped of surrounding whitespace (Meta: kept).
Three HF behaviours are not copied because they lose or mangle input: an assistant message with an
empty "tool_calls" list is rendered as a plain message (HF drops it), a system message given as a
list keeps all its text items (HF keeps the first), and tool-call "arguments" must be a dict (HF
would quote a JSON-string argument a second time).

Ids: the text between two template-written special tokens is encoded as one piece, and special-token
text inside message content stays plain text (as Meta does; HF's default would turn it into real
special tokens). The ids equal HF's `apply_chat_template(tokenize=True, sanitize_control_tokens=True)`
whenever content holds no special-token text (HF then also cuts the text around it), and equal Meta's
ids except that Meta encodes the header's "\n\n" and each text item separately: they differ only
when content starts with \r or \n, or when adjacent text items would merge across their boundary.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import special_tokens as st

_ROLES = ("system", "user", "assistant", "ipython", "tool")


class _Segments:
    """The rendered chat as (is_special, text) parts: template-written special tokens and plain text."""

    def __init__(self) -> None:
        self.parts: list[tuple[bool, str]] = []

    def special(self, name: str) -> None:
        self.parts.append((True, name))

    def text(self, s: str) -> None:
        if s:
            self.parts.append((False, s))

    def header(self, role: str) -> None:
        self.special("<|header_start|>")
        self.text(role)
        self.special("<|header_end|>")
        self.text("\n\n")


def _role(i: int, msg: object) -> str:
    if not isinstance(msg, Mapping):
        raise ValueError(f"messages[{i}]: expected a dict with 'role' and 'content', got {type(msg).__name__}")
    role = msg.get("role")
    if role not in _ROLES:
        raise ValueError(f"messages[{i}].role: unknown role {role!r} (expected one of {', '.join(_ROLES)})")
    return role


def _tool_calls(i: int, msg: Mapping, role: str) -> list[tuple[str, str]]:
    """[(name, arguments as JSON)] of an assistant message's tool calls; [] when it has none."""
    calls = msg.get("tool_calls")
    if calls is None:
        return []
    if role != "assistant":
        raise ValueError(f"messages[{i}].tool_calls: only assistant messages can call tools (role is {role!r})")
    if not isinstance(calls, Sequence) or isinstance(calls, str):
        raise ValueError(f"messages[{i}].tool_calls: expected a list, got {type(calls).__name__}")
    out = []
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping):
            raise ValueError(f"{where}.function: expected {{'name': str, 'arguments': dict}}, got {call!r}")
        name, args = fn.get("name"), fn.get("arguments")
        if not isinstance(name, str):
            raise ValueError(f"{where}.function.name: expected str, got {type(name).__name__}")
        if not isinstance(args, Mapping):
            # HF would write a JSON-string argument quoted a second time; make the caller decode it.
            raise ValueError(f"{where}.function.arguments: expected a dict (json.loads a JSON string first), "
                             f"got {type(args).__name__}")  # fmt: skip
        out.append((name, _to_json(f"{where}.function.arguments", dict(args))))
    return out


def _to_json(where: str, value: object) -> str:
    # HF's tojson filter: json.dumps(ensure_ascii=False) with default separators.
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: not JSON-serialisable ({e})") from None


def _content(out: _Segments, i: int, msg: Mapping, *, allow_none: bool = False) -> None:
    """Render a str or a list of text/image items."""
    content = msg.get("content")
    if content is None and allow_none:
        return
    if isinstance(content, str):
        out.text(content)
        return
    if not isinstance(content, Sequence):
        raise ValueError(f"messages[{i}].content: expected str or a list of items, got {type(content).__name__}")
    for j, item in enumerate(content):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise ValueError(f"messages[{i}].content[{j}].text: expected str, got {type(text).__name__}")
            out.text(text)
        elif kind == "image":
            out.special("<|image|>")  # expanded to tiles and patches by expand_image_tokens
        else:
            got = repr(kind) if isinstance(item, Mapping) else type(item).__name__
            raise ValueError(f"messages[{i}].content[{j}].type: expected 'text' or 'image', got {got}")


def _system_text(msg: Mapping) -> str:
    """Text of the leading system message, stripped as HF's `|trim` does."""
    content = msg.get("content")
    if isinstance(content, str):
        return content.strip()
    parts = _Segments()
    _content(parts, 0, msg)
    if any(is_special for is_special, _ in parts.parts):
        raise ValueError("messages[0].content: a system message cannot contain images")
    return "".join(s for _, s in parts.parts).strip()


def _tool_result(i: int, msg: Mapping) -> str:
    content = msg.get("content")
    if not isinstance(content, (str, Mapping, list, tuple)):
        got = type(content).__name__
        raise ValueError(f"messages[{i}].content: a tool result must be str, dict or list, got {got}")
    return _to_json(f"messages[{i}].content", content)


def _segments(messages: Sequence[Mapping], add_generation_prompt: bool) -> list[tuple[bool, str]]:
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        raise ValueError(f"messages: expected a list of dicts, got {type(messages).__name__}")
    out = _Segments()
    out.special("<|begin_of_text|>")
    for i, msg in enumerate(messages):
        role = _role(i, msg)
        calls = _tool_calls(i, msg, role)
        if role in ("ipython", "tool"):
            out.header("ipython")
            out.text(_tool_result(i, msg))
        elif calls:
            out.header("assistant")
            out.special("<|python_start|>")
            _content(out, i, msg, allow_none=True)
            out.special("<|python_end|>")
            for name, args in calls:
                out.text('{"name": "' + name + '", "parameters": ' + args + "}")
        elif i == 0 and role == "system":
            out.header("system")
            out.text(_system_text(msg))
        else:
            out.header(role)
            _content(out, i, msg)
        out.special("<|eot|>")
    if add_generation_prompt:
        out.header("assistant")
    return out.parts


def render_chat(messages: Sequence[Mapping], add_generation_prompt: bool = True) -> str:
    """The prompt string, from `<|begin_of_text|>` on."""
    return "".join(s for _, s in _segments(messages, add_generation_prompt))


def encode_chat(tokenizer, messages: Sequence[Mapping], add_generation_prompt: bool = True) -> list[int]:
    """The prompt ids, from BOS on. `tokenizer` is a llama4_native Tokenizer."""
    ids: list[int] = []
    pending: list[str] = []
    for is_special, s in _segments(messages, add_generation_prompt):
        if is_special:
            if pending:
                ids += tokenizer.encode("".join(pending), allowed_special="none")
                pending = []
            ids.append(tokenizer.special_token_id(s))
        else:
            pending.append(s)
    if pending:
        ids += tokenizer.encode("".join(pending), allowed_special="none")
    return ids


# ---- images (LLAMA4.md §4.2) -------------------------------------------------------------------------


def num_patches_per_tile(image_size: int = 336, patch_size: int = 14, pixel_shuffle_ratio: float = 0.5) -> int:
    """<|patch|> tokens per tile: (image_size / patch_size)^2 / round(1 / ratio^2) -> 144 for Llama 4."""
    return (image_size // patch_size) ** 2 // int(round(1.0 / pixel_shuffle_ratio**2))


@dataclass(frozen=True)
class ImageTokens:
    """The ids an image expands into. Defaults: Llama 4's (§4.1). A checkpoint with its own
    vocabulary (e.g. a tiny test model) takes its <|patch|> from config image_token_index and its
    start/end from boi/eoi_token_index; `image` is the placeholder the chat template writes."""

    patch: int = st.PATCH_ID
    image: int = st.IMAGE_ID
    start: int = st.IMAGE_START_ID
    end: int = st.IMAGE_END_ID
    tile_x: int = st.TILE_X_SEPARATOR_ID
    tile_y: int = st.TILE_Y_SEPARATOR_ID


LLAMA4_IMAGE_TOKENS = ImageTokens()


# The most tokens one image may expand into (a 16-tile Llama 4 image is 2,467), as in C++
# (llama4/chat.h kMaxImageTokens): a grid past it is an error, not a list the caller's numbers size.
MAX_IMAGE_TOKENS = 1 << 20


def image_token_count(ratio_h: int, ratio_w: int, patches_per_tile: int) -> int:
    """len(image_token_ids(...)), computed without building them."""
    grid = ratio_h * ratio_w
    return 3 + patches_per_tile + (grid * patches_per_tile + grid if grid > 1 else 0)


def image_token_ids(ratio_h: int, ratio_w: int, patches_per_tile: int,
                    tokens: ImageTokens = LLAMA4_IMAGE_TOKENS) -> list[int]:
    """The tokens of one image cut into ratio_h x ratio_w tiles (plus a global tile when > 1)."""
    count = image_token_count(ratio_h, ratio_w, patches_per_tile)
    if count > MAX_IMAGE_TOKENS:
        raise ValueError(f"an image of {ratio_h}x{ratio_w} tiles with {patches_per_tile} patches per tile is "
                         f"more than {MAX_IMAGE_TOKENS} tokens, the most allowed")
    patches = [tokens.patch] * patches_per_tile
    ids = [tokens.start]
    if ratio_h * ratio_w > 1:
        for _ in range(ratio_h):
            for x in range(ratio_w):
                ids += patches
                if x < ratio_w - 1:
                    ids.append(tokens.tile_x)
            ids.append(tokens.tile_y)  # after every row, the last one included
    ids.append(tokens.image)
    ids += patches  # the single tile, or the global tile
    ids.append(tokens.end)
    return ids


def _is_pos_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def expand_image_tokens(ids: Sequence[int], tiles_per_image: Sequence[tuple[int, int]],
                        patches_per_tile: int, tokens: ImageTokens = LLAMA4_IMAGE_TOKENS) -> list[int]:  # fmt: skip
    """Replace the k-th `<|image|>` placeholder in `ids` by image k's tile/patch tokens.

    tiles_per_image[k] = (ratio_h, ratio_w), the tile grid of image k from the image processor;
    patches_per_tile = num_patches_per_tile(...) (144 for the published models); tokens: the ids
    to use (Llama 4's by default).
    """
    if not _is_pos_int(patches_per_tile):
        raise ValueError(f"patches_per_tile must be a positive int, got {patches_per_tile!r}")
    for k, ratio in enumerate(tiles_per_image):
        if not (isinstance(ratio, Sequence) and len(ratio) == 2 and all(map(_is_pos_int, ratio))):
            raise ValueError(f"tiles_per_image[{k}]: expected (ratio_h, ratio_w) of positive ints, got {ratio!r}")
    ids = list(ids)
    n_placeholders = ids.count(tokens.image)
    if n_placeholders != len(tiles_per_image):
        raise ValueError(f"ids hold {n_placeholders} <|image|> placeholders but tiles_per_image "
                         f"describes {len(tiles_per_image)} images")  # fmt: skip
    if tokens.patch in ids:
        # An expanded image also holds <|image|>; expanding twice would nest images.
        raise ValueError("ids already hold <|patch|> tokens: the images look expanded already")
    out: list[int] = []
    images = iter(tiles_per_image)
    for t in ids:
        if t == tokens.image:
            ratio_h, ratio_w = next(images)
            out += image_token_ids(ratio_h, ratio_w, patches_per_tile, tokens)
        else:
            out.append(t)
    return out
