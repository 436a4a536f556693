"""Images end to end against transformers' Llama4ForConditionalGeneration on the tiny "scout" and
"maverick" checkpoints (tests/tiny_checkpoints.py; fp32; 56-pixel tiles of 4x4 patches, 4 <|patch|>
tokens per tile), with the SAME pixel_values given to both (HF's processor needs torchvision, which
does not import here): the prompt ids are expanded with chat.expand_image_tokens and HF gets them
with pixel_values directly.

  * the vision tower alone (features after the projector) vs HF's get_image_features + projector;
    the same on a head_dim-88 tower (the real model's head size) with a 6x6 patch grid; bf16 within
    twice HF's own bf16 error;
  * prompt logits (max |dlogit| <= 1e-4) and 16 greedy steps (identical tokens; HF runs its own loop
    with its cache, pixel_values on the first forward only) for a 1-tile image, a 2x2 + global image
    and two images in one prompt. The prompts are longer than the tiny chunk (8), so the engine
    splits them into passes and the image rows are consumed across passes.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import llama4_native as l4
import tiny_checkpoints as tc
from llama4_native.chat import ImageTokens, expand_image_tokens
from llama4_native.image import ImageInput, preprocess_image

NAMES = ["scout", "maverick"]
# The tiny vocabulary (512) has no Llama 4 special tokens: <|patch|>, <|image_start|> and
# <|image_end|> come from the config (499, 497, 498); the placeholder and separators are picked here.
TOKENS = ImageTokens(patch=499, image=494, start=497, end=498, tile_x=495, tile_y=496)
TPT = 4  # <|patch|> tokens per 56-pixel tile
DECODE_STEPS = 16


def _pixels(tiles: int, seed: int) -> torch.Tensor:
    """Pixel values in the range preprocessing produces ([-1, 1])."""
    return torch.rand(tiles, 3, 56, 56, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _images(case: str) -> list:
    """(the images as handed to our model, their pixel_values for HF)."""
    if case == "one_tile":
        return [_pixels(1, 1)]  # bare pixel_values: one tile, 1x1
    if case == "multi_tile":
        return [ImageInput(_pixels(5, 2), (2, 2))]  # 2x2 local tiles + the global tile
    # two images: a preprocessed photo-like array (1x2 grid + global) and a 1-tile image
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (50, 100, 3), dtype=np.uint8), _pixels(1, 4)]


def _hf_pixels(images) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    pv, grids = [], []
    for im in images:
        if isinstance(im, np.ndarray):
            im = preprocess_image(im, tile_size=56)
        if isinstance(im, ImageInput):
            pv.append(im.pixel_values)
            grids.append(im.aspect_ratio)
        else:
            pv.append(im)
            grids.append((1, 1))
    return torch.cat(pv).float(), grids


def _prompt(n_images: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(3, 490, (9 + 3 * n_images,), generator=g).tolist()
    ids = [1] + text[:5]
    for i in range(n_images):
        ids += [TOKENS.image] + text[5 + 3 * i:8 + 3 * i]
    return ids + text[5 + 3 * n_images:]


def _model(folder, dtype="float32"):
    model = l4.load(folder, dtype=dtype)
    model.image_tokens = TOKENS
    return model


def _hf_features(hf, pixel_values):
    with torch.inference_mode():
        feats = hf.get_image_features(pixel_values=pixel_values).last_hidden_state
        return hf.multi_modal_projector(feats.reshape(-1, feats.shape[-1])).float()


def _hf_greedy(hf, ids: list[int], pixel_values, steps: int):
    from transformers import DynamicCache

    cache = DynamicCache(config=hf.config.get_text_config())
    inp, pv, tokens, rows = torch.tensor([ids]), pixel_values, [], []
    with torch.inference_mode():
        for _ in range(steps):
            logits = hf(input_ids=inp, pixel_values=pv, past_key_values=cache, use_cache=True).logits[0, -1].float()
            rows.append(logits)
            tokens.append(int(logits.argmax()))
            inp, pv = torch.tensor([[tokens[-1]]]), None  # the vision tower runs on the prefill only
    return tokens, torch.stack(rows)


@pytest.mark.parametrize("case", ["one_tile", "multi_tile", "two_images"])
@pytest.mark.parametrize("name", NAMES)
def test_vision_tower_matches_transformers(tiny_checkpoint, name, case):
    folder, hf = tiny_checkpoint(name)
    model = _model(folder)
    images = _images(case)
    pv, _ = _hf_pixels(images)
    ours = model.encode_images(images)
    ref = _hf_features(hf, pv)
    assert ours.shape == ref.shape == (pv.shape[0] * TPT, hf.config.text_config.hidden_size)
    err = (ours - ref).abs().max().item()
    print(f"{name}/{case}: vision features max|d| = {err:.2e} (scale {ref.abs().max().item():.1f})")
    assert err <= 1e-5


@pytest.mark.parametrize("case", ["one_tile", "multi_tile", "two_images"])
@pytest.mark.parametrize("name", NAMES)
def test_prompt_logits_and_greedy_match_transformers(tiny_checkpoint, name, case):
    folder, hf = tiny_checkpoint(name)
    model = _model(folder)
    images = _images(case)
    pv, grids = _hf_pixels(images)
    ids = _prompt(len(images), seed=len(case))
    expanded = expand_image_tokens(ids, grids, TPT, TOKENS)
    assert expanded.count(TOKENS.patch) == pv.shape[0] * TPT and len(expanded) > 2 * 8

    ours = model.logits(ids, images=images)
    with torch.inference_mode():
        ref = hf(input_ids=torch.tensor([expanded]), pixel_values=pv).logits[0].float()
    assert ours.shape == ref.shape == (len(expanded), model.vocab_size)
    err = (ours - ref).abs().max().item()
    # Without the image rows the logits would differ: the features really reach the decoder.
    # (model.logits refuses <|patch|> tokens without images; the engine step embeds them as text.)
    with pytest.raises(ValueError, match="no images were given"):
        model.logits(expanded)
    seq = model._new_sequence()
    text_only = model._step([(seq, expanded, True, None)])
    model._free_sequence(seq)
    assert (text_only - ref).abs().max().item() > 1e-2

    res = model.generate(input_ids=ids, images=images, max_new_tokens=DECODE_STEPS, temperature=0.0,
                         return_logits=True, stop_token_ids=[])
    ref_tokens, ref_rows = _hf_greedy(hf, expanded, pv, DECODE_STEPS)
    derr = (res.logits - ref_rows).abs().max().item()
    print(f"{name}/{case}: {len(expanded)} prompt tokens, max|dlogit| prompt {err:.2e}, "
          f"{DECODE_STEPS} greedy steps {derr:.2e}")
    assert err <= 1e-4
    assert res.token_ids == ref_tokens
    assert derr <= 1e-4


def test_already_expanded_ids_give_the_same_logits(tiny_checkpoint):
    folder, _ = tiny_checkpoint("scout")
    model = _model(folder)
    images = _images("multi_tile")
    ids = _prompt(1, seed=7)
    expanded = expand_image_tokens(ids, [(2, 2)], TPT, TOKENS)
    torch.testing.assert_close(model.logits(expanded, images=images), model.logits(ids, images=images),
                               rtol=0, atol=0)


# ---- a tower with the real head size ------------------------------------------------------------


def _head88_model(tmp_path):
    """ConditionalGeneration whose vision tower has head_dim 88 (hidden 176, 2 heads) and a 6x6 patch
    grid (84-pixel tiles), so 2D RoPE uses 22 frequency pairs per axis and the shuffle a 3x3 output."""
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    vision = dict(tc.VISION_TINY, hidden_size=176, num_attention_heads=2, intermediate_size=704,
                  image_size=84, vision_output_dim=40, projector_input_dim=40, projector_output_dim=40)
    text = dict(tc.TINY_CONFIGS["maverick"]["text"], num_hidden_layers=2)
    torch.manual_seed(0)
    hf = Llama4ForConditionalGeneration(Llama4Config(text_config=text, vision_config=vision, **tc.IMAGE_IDS))
    hf = hf.float().eval()
    tc._randomize(hf, 0)
    hf.save_pretrained(tmp_path)
    return hf


def test_vision_tower_head_dim_88_matches_transformers(tmp_path):
    hf = _head88_model(tmp_path)
    model = l4.load(tmp_path, dtype="float32")
    assert model.config.vision.head_dim == 88 and model.config.vision.tokens_per_tile == 9
    pv = torch.rand(3, 3, 84, 84, generator=torch.Generator().manual_seed(5)) * 2 - 1
    ours = model.encode_images([ImageInput(pv, (1, 2))])
    ref = _hf_features(hf, pv)
    err = (ours - ref).abs().max().item()
    print(f"head_dim 88: vision features max|d| = {err:.2e} (scale {ref.abs().max().item():.1f})")
    assert err <= 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_vision_tower_bf16_within_twice_transformers_bf16_error(tiny_checkpoint, name):
    from transformers import Llama4ForConditionalGeneration

    folder, hf32 = tiny_checkpoint(name)
    hf16 = Llama4ForConditionalGeneration.from_pretrained(folder, dtype=torch.bfloat16).eval()  # keeps freqs_ci complex
    ours16 = _model(folder, "bfloat16")
    pv = torch.cat([_pixels(5, 11), _pixels(3, 12)])  # 8 tiles
    ref = _hf_features(hf32, pv)
    theirs = _hf_features(hf16, pv.bfloat16())
    ours = ours16.encode_images([ImageInput(pv[:5], (2, 2)), ImageInput(pv[5:], (1, 2))]).float()
    e_ours, e_hf = (ours - ref).abs().max().item(), (theirs - ref).abs().max().item()
    print(f"{name}: bf16 vision features |d| vs fp32: llama4_native {e_ours:.3e}, transformers {e_hf:.3e}")
    assert e_ours <= 2 * e_hf


def test_tower_output_rows_follow_tile_order(tiny_checkpoint):
    """Each tile's rows are its own: encoding tiles one by one gives the same rows (no cross-tile
    attention), and tiles split across passes (max_tiles_per_pass) do too."""
    folder, _ = tiny_checkpoint("scout")
    model = _model(folder)
    pv = _pixels(5, 21)
    together = model.encode_images([ImageInput(pv, (2, 2))])
    alone = torch.cat([model.encode_images([pv[i:i + 1]]) for i in range(5)])
    model.vision.max_tiles_per_pass = 2
    split = model.encode_images([ImageInput(pv, (2, 2))])
    # Only fp32 summation order may differ (BLAS blocks rows differently for other row counts).
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-6)
    torch.testing.assert_close(split, together, rtol=0, atol=1e-6)
