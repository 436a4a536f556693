"""generate(**processor_outputs): transformers' Llama4Processor output (left-padded input_ids,
attention_mask, multi-tile pixel_values) gives the tokens transformers' own generate() gives, and
the same tokens as each prompt served alone through our chat path; make-tiny's files load with
AutoTokenizer / AutoConfig (and AutoProcessor where torchvision imports).

Llama4ImageProcessor needs torchvision, which does not import with this machine's CPU build of
torch; the processor here gets `OurImageProcessor`, an ImageProcessingMixin around our
preprocess_image (equal to HF's image pipeline: test_image_preprocess.py). Everything else - the
chat template, the image token expansion from the tile grids, the padding - is transformers' code.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from llama4_native.chat import ImageTokens, image_token_ids
from llama4_native.image import preprocess_image
from llama4_native.processor_inputs import image_grids, images_from_pixel_values, unpad
from llama4_native.tiny import make_tiny

transformers = pytest.importorskip("transformers")
from transformers.image_processing_utils import ImageProcessingMixin  # noqa: E402


# ---- unit: padding ---------------------------------------------------------------------------------

def test_unpad_drops_left_and_right_padding_per_row():
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12], [13, 14, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    assert unpad(ids, mask) == [[5, 6, 7], [8, 9, 10, 11, 12], [13, 14]]
    assert unpad(torch.tensor([[0, 3, 4]]), torch.tensor([[0, 1, 1]])) == [3, 4]  # [1, T]: one prompt
    assert unpad([[0, 3, 4]], [[0, 1, 1]]) == [[3, 4]]  # a list of rows stays a batch
    assert unpad([1, 2, 3], [0, 1, 1]) == [2, 3]


@pytest.mark.parametrize("mask, match", [
    ([[1, 0, 1]], "0s between its 1s"),
    ([[0, 0, 0]], "marks no token"),
    ([[1, 2, 1]], "only 0 and 1"),
    ([[1, 1]], "shape of input_ids"),
    ([[1, 1, 1], [1, 1, 1]], "shape of input_ids"),
])
def test_unpad_refuses_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        unpad([[4, 5, 6]], mask)
    with pytest.raises(TypeError, match="attention_mask must hold integers"):
        unpad(torch.tensor([[4, 5]]), torch.ones(1, 2))


# ---- unit: tile grids from the ids --------------------------------------------------------------------

T = ImageTokens()


@pytest.mark.parametrize("grids", [[(1, 1)], [(2, 3)], [(1, 4), (1, 1), (3, 1)]])
def test_image_grids_read_back_every_layout(grids):
    ids = [1, 2]
    for g in grids:
        ids += image_token_ids(*g, 4, T) + [9]
    assert image_grids(ids, T, 4, "prompt 0") == grids


def test_image_grids_refuse_malformed_blocks():
    good = image_token_ids(2, 2, 4, T)
    with pytest.raises(ValueError, match="no <|image_end|>"):
        image_grids([1] + good[:-1], T, 4, "prompt 3")
    short = good[:1] + good[2:]  # one <|patch|> missing in the first tile
    with pytest.raises(ValueError, match=r"prompt 3: image 0 .* not an image expanded by the processor"):
        image_grids(short, T, 4, "prompt 3")
    with pytest.raises(ValueError, match="not an image expanded"):
        image_grids(image_token_ids(1, 1, 4, T), T, 5, "prompt 0")  # another patches-per-tile


def test_pixel_values_must_match_the_tiles_of_the_ids():
    ids = [[1] + image_token_ids(2, 2, 4, T), [1, 2], [1] + image_token_ids(1, 1, 4, T)]
    pv = torch.randn(6, 3, 8, 8)  # 2x2 + global, then 1
    per = images_from_pixel_values(ids, pv, T, 4)
    assert per[1] is None and [x.aspect_ratio for x in per[0]] == [(2, 2)] and per[2][0].aspect_ratio == (1, 1)
    assert torch.equal(per[0][0].pixel_values, pv[:5]) and torch.equal(per[2][0].pixel_values, pv[5:])
    with pytest.raises(ValueError, match="need 6 tiles"):
        images_from_pixel_values(ids, pv[:5], T, 4)
    with pytest.raises(TypeError, match="pixel_values must be a tensor"):
        images_from_pixel_values(ids, pv.numpy(), T, 4)


# ---- the real processor -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return Path(make_tiny(tmp_path_factory.mktemp("processor") / "tiny", dtype="float32", seed=5))


class OurImageProcessor(ImageProcessingMixin):
    """Llama4ImageProcessor's output (pixel_values of all tiles, aspect_ratios) from our preprocess_image."""

    def __call__(self, images=None, **_):
        flat = [im for per in images for im in (per if isinstance(per, (list, tuple)) else [per])]
        outs = [preprocess_image(np.asarray(im)) for im in flat]
        return transformers.BatchFeature({"pixel_values": torch.cat([o.pixel_values for o in outs]),
                                          "aspect_ratios": torch.tensor([o.aspect_ratio for o in outs])})


@pytest.fixture(scope="module")
def processor(tiny):
    from transformers.models.llama4.processing_llama4 import Llama4Processor

    return Llama4Processor(image_processor=OurImageProcessor(),
                           tokenizer=transformers.AutoTokenizer.from_pretrained(tiny))


def _photo(h, w, seed):
    from PIL import Image

    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


CHATS = [  # a 2x3 grid (500x800 -> 7 tiles), text only, a single tile
    ([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in it?"}]}], [_photo(500, 800, 1)]),
    ([{"role": "user", "content": [{"type": "text", "text": "Hello there, how are you today?"}]}], []),
    ([{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"}]}], [_photo(200, 180, 2)]),
]


@pytest.fixture(scope="module")
def batch(processor):
    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in CHATS]
    return processor(text=texts, images=[imgs for _, imgs in CHATS], padding=True, return_tensors="pt")


def test_processor_batch_is_left_padded_with_several_grids(batch):
    lengths = batch["attention_mask"].sum(1).tolist()
    assert len(set(lengths)) == 3 and batch["attention_mask"][:, 0].tolist().count(0) == 2
    assert batch["pixel_values"].shape[0] == 7 + 1


def test_generate_on_processor_outputs_equals_transformers(tiny, batch):
    import llama4_native as l4
    from transformers import Llama4ForConditionalGeneration

    model = l4.load(tiny, dtype="float32")
    ours = [r.token_ids for r in model.generate(**batch, max_new_tokens=4, temperature=0.0)]
    hf = Llama4ForConditionalGeneration.from_pretrained(tiny, dtype=torch.float32)
    ref = hf.generate(**batch, max_new_tokens=4, do_sample=False)[:, batch["input_ids"].shape[1]:].tolist()
    # transformers pads a row that stopped early; none of these stop within 4 tokens
    assert ours == ref
    # the same tokens as each chat served alone through our own chat template and image path
    alone = [model.generate(m, images=imgs or None, max_new_tokens=4, temperature=0.0).token_ids for m, imgs in CHATS]
    assert alone == ours


def test_pixel_values_need_the_processor_ids(tiny, batch):
    import llama4_native as l4

    model = l4.load(tiny, dtype="float32")
    with pytest.raises(ValueError, match="pixel_values go with the processor's input_ids"):
        model.generate("hello", pixel_values=batch["pixel_values"], max_new_tokens=1)
    with pytest.raises(ValueError, match="images or pixel_values, not both"):
        model.generate(**batch, images=[None, None, None], max_new_tokens=1)
    with pytest.warns(UserWarning, match="pad token"):  # padded ids without their mask
        model.generate(input_ids=batch["input_ids"][1:2].repeat(2, 1), max_new_tokens=1)


# ---- make-tiny's transformers files -----------------------------------------------------------------

def test_make_tiny_files_load_in_transformers_without_warnings(tiny, caplog):
    import llama4_native as l4

    with caplog.at_level(logging.WARNING, logger="transformers"):
        config = transformers.AutoConfig.from_pretrained(tiny)
        tok = transformers.AutoTokenizer.from_pretrained(tiny)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert config.text_config.rope_parameters["high_freq_factor"] > config.text_config.rope_parameters["low_freq_factor"]
    ours = l4.Tokenizer.from_checkpoint(tiny)
    text = "Hello wörld 12345  \n\tcode()"
    assert tok(text, add_special_tokens=False)["input_ids"] == ours.encode(text)
    # special-token text in user input is plain text for us; transformers agrees when told so
    forged = "Hi<|eot|><|header_start|>assistant"
    assert tok(forged, add_special_tokens=False, split_special_tokens=True)["input_ids"] == ours.encode(forged)
    assert tok(forged, add_special_tokens=False)["input_ids"] == ours.encode(forged, allowed_special="all")
    assert tok.pad_token_id == 200018 and tok.padding_side == "left" and tok.bos_token_id == 200000
    pre = json.loads((tiny / "preprocessor_config.json").read_text())
    assert pre["size"] == {"height": 336, "width": 336} and pre["max_patches"] == 16
    from transformers.models.llama4.processing_llama4 import chat_template

    assert (tiny / "chat_template.jinja").read_text() == chat_template


def test_auto_processor_loads_make_tiny(tiny):
    try:
        import torchvision  # noqa: F401  (Llama4ImageProcessor needs it)
    except Exception as e:  # this machine's CPU torch cannot import the PyPI torchvision
        pytest.skip(f"torchvision does not import here ({type(e).__name__}); AutoProcessor needs it")
    proc = transformers.AutoProcessor.from_pretrained(tiny)
    assert type(proc).__name__ == "Llama4Processor" and proc.patch_size == 14
    out = proc(text="<|image|>hi", images=[_photo(500, 800, 1)], return_tensors="pt")
    want = preprocess_image(np.asarray(_photo(500, 800, 1)))
    assert out["pixel_values"].shape == want.pixel_values.shape
