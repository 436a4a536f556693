"""The 2,048 Llama 4 special tokens and their ids (LLAMA4.md §4.1).

The names and their order are those of Meta's `llama_models/llama4/tokenizer.py`; they follow the
200,000 BPE ranks, so `<|begin_of_text|>` is 200000 and the last reserved token is 202047. Both the
tokenizer and the chat/image code take ids from here, so the table lives in one place.
"""
from __future__ import annotations

NUM_BASE_TOKENS = 200_000
NUM_SPECIAL_TOKENS = 2_048


def _reserved(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"<|{prefix}_reserved_special_token_{i}|>" for i in range(start, start + count)]


def _special_token_names() -> list[str]:
    basic = ["<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"]
    # 200005 .. 200079
    text_post_train = [
        "<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|step|>",
        *_reserved("text_post_train", 6),
        "<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>",
        *_reserved("text_post_train", 61, 8),
    ]  # fmt: skip
    # 200080 .. 201133
    vision = [
        "<|image_start|>", "<|image_end|>", *_reserved("vision", 2),
        "<|tile_x_separator|>", "<|tile_y_separator|>", *_reserved("vision", 4, 2),
        "<|image|>", *_reserved("vision", 1, 6), "<|patch|>",
        *_reserved("vision", 1041, 7),
    ]  # fmt: skip
    # 201134 .. 201143 (HF's converter omits these names; the ids are unused by the model code)
    reasoning = [*_reserved("reasoning", 8), "<|reasoning_thinking_start|>", "<|reasoning_thinking_end|>"]
    named = basic + text_post_train + vision + reasoning
    # 201144 .. 202047
    filler = [f"<|reserved_special_token_{i}|>" for i in range(NUM_SPECIAL_TOKENS - len(named))]
    return named + filler


SPECIAL_TOKEN_NAMES: tuple[str, ...] = tuple(_special_token_names())
SPECIAL_TOKENS: dict[str, int] = {name: NUM_BASE_TOKENS + i for i, name in enumerate(SPECIAL_TOKEN_NAMES)}
assert len(SPECIAL_TOKENS) == NUM_SPECIAL_TOKENS, "special token names must be unique"

BOS_ID = SPECIAL_TOKENS["<|begin_of_text|>"]  # 200000
END_OF_TEXT_ID = SPECIAL_TOKENS["<|end_of_text|>"]  # 200001
HEADER_START_ID = SPECIAL_TOKENS["<|header_start|>"]  # 200005
HEADER_END_ID = SPECIAL_TOKENS["<|header_end|>"]  # 200006
EOM_ID = SPECIAL_TOKENS["<|eom|>"]  # 200007
EOT_ID = SPECIAL_TOKENS["<|eot|>"]  # 200008
PYTHON_START_ID = SPECIAL_TOKENS["<|python_start|>"]  # 200016
PYTHON_END_ID = SPECIAL_TOKENS["<|python_end|>"]  # 200017
PAD_ID = SPECIAL_TOKENS["<|finetune_right_pad|>"]  # 200018 (= config pad_token_id)
IMAGE_START_ID = SPECIAL_TOKENS["<|image_start|>"]  # 200080
IMAGE_END_ID = SPECIAL_TOKENS["<|image_end|>"]  # 200081
TILE_X_SEPARATOR_ID = SPECIAL_TOKENS["<|tile_x_separator|>"]  # 200084
TILE_Y_SEPARATOR_ID = SPECIAL_TOKENS["<|tile_y_separator|>"]  # 200085
IMAGE_ID = SPECIAL_TOKENS["<|image|>"]  # 200090: the placeholder the chat template writes
PATCH_ID = SPECIAL_TOKENS["<|patch|>"]  # 200092: image_token_index, the positions that get features

# Meta `Tokenizer.stop_tokens` == HF generation_config eos_token_id.
STOP_IDS = frozenset({END_OF_TEXT_ID, EOM_ID, EOT_ID})
