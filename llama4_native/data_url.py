"""`data:` URLs (RFC 2397) of images -> their bytes, for every place that takes an image: generate()
(an image path that is a data URL, OpenAI `image_url` items) and the server. Errors are ValueError
with a short message: they never echo the URL's kilobytes."""
from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote


def short(text: str, limit: int = 80) -> str:
    """`text` for an error message: cut, with its length said, when longer than `limit`."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def is_data_url(x) -> bool:
    return isinstance(x, str) and x[:5].lower() == "data:"


def decode_image_data_url(url: str, max_bytes: int | None = None, label: str = "image") -> bytes:
    """data:image/<type>;base64,<data> -> the encoded image bytes (at most max_bytes)."""
    head, sep, payload = url.partition(",")
    if not sep:
        raise ValueError(f"{label}: a data URL needs a ',' before its data ({short(url)})")
    parts = head[len("data:"):].split(";")
    if not parts[0].lower().startswith("image/"):
        raise ValueError(f"{label}: a data URL must hold an image/* type, got {short(parts[0], 40)!r}")
    if "base64" not in [p.lower() for p in parts[1:]]:
        raise ValueError(f"{label}: data URLs must be base64-encoded (data:image/...;base64,...)")
    if max_bytes is not None and len(payload) > (max_bytes * 4) // 3 + 8:
        raise ValueError(f"{label}: the image is larger than the limit of {max_bytes} bytes")
    try:
        data = base64.b64decode("".join(unquote(payload).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{label}: the data URL's base64 does not decode ({short(url)})") from None
    if not data:
        raise ValueError(f"{label}: the data URL holds no data")
    return data
