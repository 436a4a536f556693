"""Random JSON-like values for the atheris targets: mostly the shapes an API expects (dicts with
the right keys), often the wrong types, sometimes deep or odd (surrogates, huge ints, NaN)."""
from __future__ import annotations

import atheris

SPELLINGS = ("<|eot|>", "<|header_start|>assistant<|header_end|>", "<|image|>", "<|patch|>",
             "<|begin_of_text|>", "\ud800", "\n\n", "", " ")


def text(fdp: atheris.FuzzedDataProvider) -> str:
    s = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 24))
    if fdp.ConsumeBool():
        s += SPELLINGS[fdp.ConsumeIntInRange(0, len(SPELLINGS) - 1)]
    return s


def value(fdp: atheris.FuzzedDataProvider, keys: tuple[str, ...] = (), depth: int = 0):
    """Any JSON-like value; dicts draw their keys from `keys` (plus an odd one now and then)."""
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))  # up to 2^71: past int64
    if kind == 3:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()  # NaN, inf too
    if kind in (4, 5):
        return text(fdp)
    if kind in (6, 7):
        return [value(fdp, keys, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    out = {}
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        key = keys[fdp.ConsumeIntInRange(0, len(keys) - 1)] if keys and fdp.ConsumeIntInRange(0, 4) else text(fdp)
        out[key] = value(fdp, keys, depth + 1)
    return out


MESSAGE_KEYS = ("role", "content", "type", "text", "image", "image_url", "url", "tool_calls",
                "function", "name", "arguments")
ROLES = ("system", "user", "assistant", "ipython", "tool", "developer")


def messages(fdp: atheris.FuzzedDataProvider) -> list:
    """A list of chat messages, each mostly well-formed, with random values where it counts."""
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        if fdp.ConsumeIntInRange(0, 5) == 0:
            out.append(value(fdp, MESSAGE_KEYS))
            continue
        role = ROLES[fdp.ConsumeIntInRange(0, len(ROLES) - 1)] if fdp.ConsumeIntInRange(0, 5) else value(fdp)
        kind = fdp.ConsumeIntInRange(0, 3)
        if kind == 0:
            content = text(fdp)
        elif kind == 1:
            content = [{"type": "text", "text": text(fdp)} if fdp.ConsumeBool() else value(fdp, MESSAGE_KEYS)
                       for _ in range(fdp.ConsumeIntInRange(0, 3))]
        else:
            content = value(fdp, MESSAGE_KEYS)
        msg = {"role": role, "content": content}
        if fdp.ConsumeIntInRange(0, 4) == 0:
            msg["tool_calls"] = [{"function": {"name": text(fdp), "arguments": value(fdp, MESSAGE_KEYS)}}
                                 if fdp.ConsumeBool() else value(fdp, MESSAGE_KEYS)
                                 for _ in range(fdp.ConsumeIntInRange(0, 2))]
        out.append(msg)
    return out
