"""The weak cases of issue 12 that the hostile-file sweeps (test_checkpoint_cpp.py) and the
generate tests did not pin down yet, each with its error type and message (or, where accepting is
right, a test that says so): deep nesting and encoding errors in a safetensors header or index,
duplicate tensor names, non-integral and out-of-bound sizes in config.json, <|patch|> tokens in
raw prompt ids without images (accepted: they embed as text), and an empty stop string."""
from __future__ import annotations

import json
import struct

import pytest

import llama4_native as l4
import tiny_checkpoints as tc
from llama4_native import _C
from llama4_native.tiny import TEXT


def safetensors(path, header: bytes, data: bytes = b"") -> str:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return str(path)


def test_deeply_nested_header_is_a_checkpoint_error(tmp_path):
    f = safetensors(tmp_path / "deep.safetensors", b"[" * 100_000)  # the RecursionError
    with pytest.raises(l4.CheckpointError, match=rf"^{f}: header is not valid JSON \(nesting deeper than 128 levels\)$"):
        _C.SafetensorsFile(f)


def test_duplicate_tensor_names_are_refused(tmp_path):
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [%d, %d]}'
    header = ('{"w": %s, "w": %s}' % (entry % (0, 4), entry % (4, 8))).encode()
    f = safetensors(tmp_path / "dup.safetensors", header, bytes(8))
    with pytest.raises(l4.CheckpointError, match=rf"^{f}: header is not valid JSON \(duplicate key 'w'\)$"):
        _C.SafetensorsFile(f)


@pytest.mark.parametrize("index, reason", [
    (b'{"weight_map": {"w": "model\xff.safetensors"}}', "invalid JSON (parse error at line 1, column 28: syntax "
                                                         "error while parsing value - invalid string: ill-formed UTF-8 byte"),
    (b"[" * 100_000, "invalid JSON (nesting deeper than 128 levels)"),
    (b'{"weight_map": {"w": "a.safetensors", "w": "b.safetensors"}}', "invalid JSON (duplicate key 'w')"),
])
def test_index_encoding_nesting_and_duplicates_are_checkpoint_errors(tmp_path, index, reason):
    (tmp_path / "model.safetensors.index.json").write_bytes(index)
    with pytest.raises(l4.CheckpointError) as e:
        _C.Checkpoint(str(tmp_path))
    assert str(e.value).startswith(f"{tmp_path}/model.safetensors.index.json: {reason}"), str(e.value)


def text_config(**changes) -> str:
    return json.dumps({**TEXT, "model_type": "llama4_text", **changes})


def test_integral_float_sizes_are_accepted_fractions_are_not():
    # json writers emit 128.0 for an integer-valued float; HF's config classes take it as 128 too
    assert _C.parse_model_config(text_config(hidden_size=128.0)).text.hidden_size == 128
    with pytest.raises(l4.ConfigError, match=r"^c.json: config field 'hidden_size': expected an integer, got 128.5$"):
        _C.parse_model_config(text_config(hidden_size=128.5), "c.json")


@pytest.mark.parametrize("field, value, bound", [
    ("num_hidden_layers", 2**40, 4096), ("vocab_size", 2**21, 2**20), ("num_local_experts", 5000, 4096),
    ("max_position_embeddings", 2**31, 2**31 - 1),
])
def test_sizes_past_the_engine_bound_are_config_errors(field, value, bound):
    # num_hidden_layers 2**40 made the parser allocate per-layer tables until memory ran out (fuzz_config)
    with pytest.raises(l4.ConfigError, match=rf"^c.json: config field '{field}': must be <= {bound}, got {value} "):
        _C.parse_model_config(text_config(**{field: value}), "c.json")


@pytest.fixture(scope="module")
def scout(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scout")
    tc.save_tiny("scout", folder)
    return l4.load(folder, dtype="float32", max_sequences=2)


def test_patch_tokens_without_images(scout):
    """Model.logits (a prompt's logits, the parity tool) refuses <|patch|> ids without images. In
    generate() raw ids are the caller's and <|patch|> embeds as its text token, exactly as when the
    model samples it (decode, or the recompute of a preempted sequence): refusing it there broke
    tests that draw random ids over a tiny vocabulary holding the image id. Chat messages and string
    prompts cannot produce it (special-token text in them is plain text)."""
    patch = scout.image_tokens.patch
    with pytest.raises(ValueError, match=r"^input_ids hold 1 image placeholder tokens \(<\|patch\|>, id \d+\) but "
                                         r"no images were given$"):
        scout.logits([1, 5, patch, 6])
    out = scout.generate(input_ids=[1, 5, patch, 6], max_new_tokens=2, temperature=0.0, stop_token_ids=[])
    assert len(out.token_ids) == 2


def test_an_empty_stop_string_is_refused(scout):
    for stop in ("", [""], ["ok", ""]):
        with pytest.raises(ValueError, match="stop_strings"):
            scout.generate(input_ids=[1, 2, 3], max_new_tokens=1, stop_strings=stop)


def test_image_token_count_is_bounded():
    """A tile grid from the caller sizes the token list: past MAX_IMAGE_TOKENS it is refused
    before anything is built (C++: fuzz_chat found the unbounded allocation; same bound here)."""
    from llama4_native.chat import MAX_IMAGE_TOKENS, image_token_count, image_token_ids

    for h, w, p in [(1, 1, 144), (2, 3, 144), (4, 4, 144), (1, 5, 1)]:
        assert image_token_count(h, w, p) == len(image_token_ids(h, w, p))
    assert image_token_count(4, 4, 144) == 2467  # 16 tiles + the global tile of a Llama 4 image
    with pytest.raises(ValueError, match=rf"^an image of 3000x3000 tiles with 144 patches per tile is more than "
                                         rf"{MAX_IMAGE_TOKENS} tokens, the most allowed$"):
        image_token_ids(3000, 3000, 144)
