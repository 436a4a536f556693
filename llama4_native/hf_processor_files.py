"""The files transformers' `AutoProcessor` / `AutoTokenizer` read from a Llama 4 checkpoint folder,
written for a `make-tiny` checkpoint as the published checkpoints ship them:

    tokenizer.json            the fast tokenizer, converted from tokenizer.model with transformers'
                              TikTokenConverter (LLAMA4.md §6): Llama 4's split pattern, 2,048
                              special tokens. The conversion takes seconds, so it is cached in the
                              user cache folder, keyed by the tokenizer.model's hash and the
                              transformers version.
    tokenizer_config.json     BOS / EOS / pad tokens, left padding (Llama4Processor's default)
    preprocessor_config.json  the image processor: tile size, max_patches, mean/std
    processor_config.json     Llama4Processor's patch size and pixel-shuffle ratio
    chat_template.jinja       the chat template transformers ships for Llama 4

They need transformers (and `tokenizers`); without them nothing is written and the reason is
returned, since a user without transformers has no AutoProcessor to feed anyway.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

from . import special_tokens as st


def cache_folder() -> str:
    """Where llama4_native keeps what it builds once per machine (the demo checkpoint, converted
    tokenizers): $LLAMA4_NATIVE_CACHE, else $XDG_CACHE_HOME/llama4_native, else ~/.cache/llama4_native."""
    return os.environ.get("LLAMA4_NATIVE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "llama4_native")


def _converted_tokenizer_json(tokenizer_model: str) -> str:
    """Path of tokenizer.json converted from `tokenizer_model` (built once, then cached)."""
    import transformers
    from transformers.integrations.tiktoken import TikTokenConverter

    from .tokenizer_backends import O200K_PATTERN

    with open(tokenizer_model, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    out = os.path.join(cache_folder(), f"tokenizer-{key}-transformers-{transformers.__version__}.json")
    if not os.path.isfile(out):
        names = sorted(st.SPECIAL_TOKENS, key=st.SPECIAL_TOKENS.get)
        converted = TikTokenConverter(vocab_file=tokenizer_model, pattern=O200K_PATTERN,
                                      extra_special_tokens=names).converted()
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = f"{out}.{os.getpid()}.tmp"
        converted.save(tmp)
        os.replace(tmp, out)  # atomic: a concurrent writer never leaves half a file
    return out


def _tokenizer_config(max_len: int) -> dict:
    return {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot|>", "pad_token": "<|finetune_right_pad|>", "padding_side": "left",
            "model_max_length": max_len, "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"]}


def _preprocessor_config(vision: dict) -> dict:
    return {"image_processor_type": "Llama4ImageProcessorFast", "processor_class": "Llama4Processor",
            "size": {"height": vision["image_size"], "width": vision["image_size"]}, "max_patches": 16,
            "resize_to_max_canvas": False, "do_resize": True, "resample": 2, "do_rescale": True,
            "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": True}


def write_processor_files(out_dir: str, tokenizer_model: str, vision: dict, max_len: int) -> str | None:
    """Write the files of the module doc into out_dir; returns None, or why they were not written."""
    try:
        from transformers.integrations.tiktoken import TikTokenConverter  # noqa: F401  (probe)
        from transformers.models.llama4.processing_llama4 import chat_template
    except ImportError as e:
        return f"transformers is not importable ({e}); AutoProcessor files not written"
    shutil.copyfile(_converted_tokenizer_json(tokenizer_model), os.path.join(out_dir, "tokenizer.json"))
    processor = {"processor_class": "Llama4Processor", "patch_size": vision["patch_size"],
                 "pixel_shuffle_ratio": vision["pixel_shuffle_ratio"]}
    for name, content in (("tokenizer_config.json", _tokenizer_config(max_len)),
                          ("preprocessor_config.json", _preprocessor_config(vision)),
                          ("processor_config.json", processor)):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(content, f, indent=2)
    with open(os.path.join(out_dir, "chat_template.jinja"), "w") as f:
        f.write(chat_template)
    return None


__all__ = ["cache_folder", "write_processor_files"]
