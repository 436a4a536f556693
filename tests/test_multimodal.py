"""Images through the Python API and the engine step: accepted image kinds, prompt expansion, chat
messages with image items in generate(), batching (image rows of several sequences in one pass,
and a decode step that samples the placeholder id next to a prefill with images), and one test
per failure mode (the exception type and the words of its message).
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import llama4_native as l4
from llama4_native.chat import ImageTokens, expand_image_tokens
from llama4_native.image import ImageInput, preprocess_image

TOKENS = ImageTokens(patch=499, image=494, start=497, end=498, tile_x=495, tile_y=496)


def _pixels(tiles: int, seed: int) -> torch.Tensor:
    return torch.rand(tiles, 3, 56, 56, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def scout(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout")
    model = l4.load(folder, dtype="float32")
    model.image_tokens = TOKENS
    return model


@pytest.fixture(scope="module")
def real_vocab(tmp_path_factory):
    """A random checkpoint with the real vocabulary, tokenizer and 336-pixel tiles (144 tokens per
    tile), so chat messages render and tokenize as they do for the published models."""
    from llama4_native.tiny import make_tiny

    folder = make_tiny(tmp_path_factory.mktemp("tiny_real_vocab"), dtype="float32", processor_files=False)
    return l4.load(folder, dtype="float32", max_sequences=2)  # chunk 8192: keep the KV pool small


# ---- the engine step ------------------------------------------------------------------------------


def test_one_step_mixes_image_prefills_and_a_text_decode_of_the_placeholder_id(scout):
    """Three sequences in one step: two prefills with their own images (their rows are gathered into
    one pass in token order) and a decode that sampled <|patch|> itself, which embeds as text. Each
    gets the logits it gets alone."""
    a_ids, a_feats = scout._with_images([1, 5, TOKENS.image, 6, 7], [_pixels(1, 1)])
    b_ids, b_feats = scout._with_images([1, 9, TOKENS.image, 10], [ImageInput(_pixels(3, 2), (1, 2))])
    c_prompt = [1, 20, 21, 22]
    seqs = [scout._new_sequence() for _ in range(3)]
    try:
        ref_a = scout._step([(seqs[0], a_ids, True, a_feats)])
        ref_b = scout._step([(seqs[1], b_ids, True, b_feats)])
        scout._step([(seqs[2], c_prompt, False)])
        ref_c = scout._step([(seqs[2], [TOKENS.patch], True)])
        sa, sb, sc = (scout._new_sequence() for _ in range(3))
        scout._step([(sc, c_prompt, False)])
        out = scout._step([(sa, a_ids, True, a_feats), (sc, [TOKENS.patch], True), (sb, b_ids, True, b_feats)])
        for s in (sa, sb, sc):
            scout._free_sequence(s)
    finally:
        for s in seqs[:3]:
            scout._free_sequence(s)
    torch.testing.assert_close(out[:len(a_ids)], ref_a, rtol=0, atol=1e-5)
    torch.testing.assert_close(out[len(a_ids)], ref_c[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[len(a_ids) + 1:], ref_b, rtol=0, atol=1e-5)


def test_step_rejects_features_that_disagree_with_the_placeholders(scout):
    ids, feats = scout._with_images([1, TOKENS.image, 5], [_pixels(1, 3)])
    seq = scout._new_sequence()
    try:
        with pytest.raises(ValueError, match=r"hold 4 image placeholder tokens \(id 499\) but image_features has 3 rows"):
            scout._step([(seq, ids, True, feats[:3])])
        with pytest.raises(TypeError, match="image_features must have the model dtype float32, got bfloat16"):
            scout._step([(seq, ids, True, feats.bfloat16())])
        with pytest.raises(ValueError, match=r"image_features must have shape \[n, 64\]"):
            scout._step([(seq, ids, True, feats[:, :10])])
        assert scout._engine.length(seq) == 0  # nothing ran
    finally:
        scout._free_sequence(seq)


# ---- image kinds and prompt forms --------------------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_every_image_kind_gives_the_same_features(scout, tmp_path):
    from PIL import Image

    arr = np.random.default_rng(0).integers(0, 256, (70, 40, 3), dtype=np.uint8)
    path = tmp_path / "im.png"
    path.write_bytes(_png(arr))
    pre = preprocess_image(arr, tile_size=56)
    expected = scout.encode_images([pre])
    for kind in (arr, _png(arr), str(path), path, Image.fromarray(arr)):
        torch.testing.assert_close(scout.encode_images([kind]), expected, rtol=0, atol=0)
    assert pre.num_tiles > 1  # a multi-tile layout went through every path


def test_single_tile_pixel_values_and_one_image_without_a_list(scout):
    pv = _pixels(1, 5)
    torch.testing.assert_close(scout.encode_images(pv), scout.encode_images([ImageInput(pv, (1, 1))]))


# ---- failure modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("images,exc,words", [
    ([b"not an image"], ValueError, ["image 0", "cannot decode"]),
    ([_pixels(1, 0), "/nonexistent/cat.png"], ValueError, ["image 1"]),
    ([_pixels(5, 0)], ValueError, ["image 0", "5 tiles", "ImageInput(pixel_values, aspect_ratio"]),
    ([torch.rand(1, 3, 64, 64)], ValueError, ["image 0", "[tiles, 3, 56, 56]", "[1, 3, 64, 64]"]),
    ([torch.rand(3, 56, 56)], ValueError, ["image 0", "numpy array"]),
    ([ImageInput(_pixels(4, 0), (2, 2))], ValueError, ["2x2 tile grid needs 5 tiles", "got 4"]),
    ([torch.full((1, 3, 56, 56), float("nan"))], ValueError, ["NaN"]),
    ([torch.zeros(1, 3, 56, 56, dtype=torch.int64)], TypeError, ["float tensor", "int64"]),
    ([42], TypeError, ["image 0"]),
])
def test_bad_images(scout, images, exc, words):
    with pytest.raises(exc) as e:
        scout.logits([1, TOKENS.image] * len(images), images=images)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_too_many_images(scout):
    with pytest.raises(ValueError, match="at most 8 images per prompt are supported, got 9"):
        scout.logits([1] + [TOKENS.image] * 9, images=[_pixels(1, i) for i in range(9)])


def test_placeholder_count_mismatch(scout):
    with pytest.raises(ValueError, match=r"2 <\|image\|> placeholders \(id 494\) but 1 image\(s\)"):
        scout.logits([1, TOKENS.image, 3, TOKENS.image], images=[_pixels(1, 0)])
    expanded = expand_image_tokens([1, TOKENS.image], [(1, 1)], 4, TOKENS)
    with pytest.raises(ValueError, match=r"4 <\|patch\|> tokens \(id 499\) but the 1 image\(s\) give 12 feature rows"):
        scout.logits(expanded, images=[ImageInput(_pixels(3, 0), (1, 2))])


def test_text_only_checkpoint_rejects_images(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout_text")
    model = l4.load(folder, dtype="float32")
    with pytest.raises(ValueError, match="no vision tower"):
        model.logits([1, 2, 3], images=[_pixels(1, 0)])
    with pytest.raises(ValueError, match="no vision tower"):
        model.generate(input_ids=[1, 2, 3], images=[_pixels(1, 0)], max_new_tokens=2)


# ---- generate() with chat messages (real vocabulary) ------------------------------------------------


def _messages(image=None, text="Describe this."):
    item = {"type": "image"} if image is None else {"type": "image", "image": image}
    return [{"role": "user", "content": [item, {"type": "text", "text": text}]}]


def test_generate_with_image_messages(real_vocab):
    arr = np.random.default_rng(1).integers(0, 256, (400, 500, 3), dtype=np.uint8)  # 2x2 + global
    kw = dict(max_new_tokens=6, temperature=0.0, return_logits=True)
    via_items = real_vocab.generate(_messages(arr), **kw)
    via_kwarg = real_vocab.generate(_messages(), images=[arr], **kw)
    ids = real_vocab.tokenizer.apply_chat_template(_messages(), add_generation_prompt=True)
    assert ids.count(200090) == 1
    via_ids = real_vocab.generate(input_ids=ids, images=[preprocess_image(arr)], **kw)
    assert via_items.token_ids == via_kwarg.token_ids == via_ids.token_ids
    torch.testing.assert_close(via_items.logits, via_ids.logits, rtol=0, atol=0)
    expanded = expand_image_tokens(ids, [(2, 2)], 144)
    assert via_items.prompt_tokens == len(expanded)
    streamed = "".join(real_vocab.generate(_messages(arr), stream=True, max_new_tokens=6, temperature=0.0))
    assert streamed == via_items.text


def test_generate_batched_prompts_with_their_own_images(real_vocab):
    rng = np.random.default_rng(2)
    a, b = (rng.integers(0, 256, (300, 300, 3), dtype=np.uint8) for _ in range(2))
    kw = dict(max_new_tokens=4, temperature=0.0)
    both = real_vocab.generate([_messages(), _messages(text="What is it?")], images=[[a], [b]], **kw)
    alone = [real_vocab.generate(_messages(a), **kw), real_vocab.generate(_messages(b, "What is it?"), **kw)]
    assert [r.token_ids for r in both] == [r.token_ids for r in alone]


def test_plain_string_prompt_puts_its_images_after_bos(real_vocab):
    arr = np.random.default_rng(3).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    tok = real_vocab.tokenizer
    ids = [tok.bos_id, 200090] + tok.encode("A photo of")
    kw = dict(max_new_tokens=3, temperature=0.0)
    assert (real_vocab.generate("A photo of", images=[arr], **kw).token_ids
            == real_vocab.generate(input_ids=ids, images=[arr], **kw).token_ids)


def test_generate_image_argument_errors(real_vocab):
    arr = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="both in the messages and with images="):
        real_vocab.generate(_messages(arr), images=[arr], max_new_tokens=1)
    two_items = [{"role": "user", "content": [{"type": "image", "image": arr}, {"type": "image"}]}]
    with pytest.raises(ValueError, match="1 of its 2 image items carry no image"):
        real_vocab.generate(two_items, max_new_tokens=1)
    with pytest.raises(ValueError, match=r"holds? 1 image item\(s\) but no image was given"):
        real_vocab.generate(_messages(), max_new_tokens=1)
    with pytest.raises(ValueError, match="with 2 prompts, images must be a list of 2 entries"):
        real_vocab.generate([_messages(), _messages()], images=[arr], max_new_tokens=1)
