"""The inputs users of the OpenAI API bring, in generate() itself: image_url items in chat
messages, data: URLs wherever an image is taken, and error messages that never echo kilobytes of
input (issue 11, item 3)."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

import llama4_native as l4
from llama4_native.data_url import decode_image_data_url
from llama4_native.image_io import load_rgb


def _png(seed=0, size=(40, 56)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_data_url_decodes_to_the_same_pixels_as_the_bytes():
    data = _png()
    assert decode_image_data_url(_url(data)) == data
    assert np.array_equal(load_rgb(_url(data)), load_rgb(data))


@pytest.mark.parametrize("bad, match", [
    ("data:image/png;base64," + "A" * 50_000 + "!!", "does not decode"),
    ("data:text/plain;base64,aGVsbG8=", "image/"),
    ("data:image/png,notbase64", "base64"),
    ("data:image/png;base64", "','"),
    ("data:image/png;base64,", "no data"),
])
def test_bad_data_urls_give_short_messages(bad, match):
    with pytest.raises(ValueError, match=match) as e:
        load_rgb(bad)
    assert len(str(e.value)) < 300


def test_missing_path_and_url_messages_are_short():
    with pytest.raises(ValueError, match="no such file") as e:
        load_rgb("/nonexistent/" + "x" * 50_000 + ".png")
    assert len(str(e.value)) < 300
    with pytest.raises(ValueError, match="not downloaded"):
        load_rgb("https://example.com/cat.png")  # refused before any connection


@pytest.fixture(scope="module")
def model(real_vocab_checkpoint):
    return l4.load(real_vocab_checkpoint, dtype="bfloat16")


def _ask(image_item):
    return [{"role": "user", "content": [image_item, {"type": "text", "text": "What is it?"}]}]


def test_image_url_items_in_generate_match_image_items(model, tmp_path):
    data = _png(1)
    path = tmp_path / "img.png"
    path.write_bytes(data)
    ref = model.generate(_ask({"type": "image", "image": data}), max_new_tokens=4, temperature=0.0)
    for item in ({"type": "image_url", "image_url": {"url": _url(data)}},
                 {"type": "image_url", "image_url": _url(data)},
                 {"type": "image_url", "image_url": {"url": str(path)}},
                 {"type": "image", "image": _url(data)}):
        got = model.generate(_ask(item), max_new_tokens=4, temperature=0.0)
        assert got.token_ids == ref.token_ids and got.prompt_tokens == ref.prompt_tokens, item
    text_only = model.generate([{"role": "user", "content": "What is it?"}], max_new_tokens=4, temperature=0.0)
    assert ref.prompt_tokens > text_only.prompt_tokens + 100


def test_image_url_items_refuse_web_urls_and_bad_shapes(model):
    with pytest.raises(ValueError, match="does not download") as e:
        model.generate(_ask({"type": "image_url", "image_url": {"url": "http://example.com/" + "a" * 10_000}}),
                       max_new_tokens=1)
    assert len(str(e.value)) < 300
    with pytest.raises(ValueError, match="image_url"):
        model.generate(_ask({"type": "image_url", "image_url": {"link": "x"}}), max_new_tokens=1)
