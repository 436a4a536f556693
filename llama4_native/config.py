"""Model configuration: `config.json` -> `ModelConfig` (text decoder, vision tower, special ids).

The parsing lives in C++ (csrc/model/checkpoint/: transformers 5.23's Llama4Config parsing, its
defaults, derivations and both RoPE spellings, and every check for configs the engine cannot run);
these are the bound structs. Configs the engine cannot run raise `ConfigError` (a ValueError) whose
`field` names the offending key (e.g. "text_config.head_dim"). Two layouts (LLAMA4.md §1, §9):

  * `Llama4ForConditionalGeneration`: model_type "llama4", with `text_config` and `vision_config`.
  * `Llama4ForCausalLM`: model_type "llama4_text", the text fields at top level, no vision.

`TextConfig.to_engine_dict()` is the plain-dict spelling `_C.Engine` also accepts.
"""
from __future__ import annotations

import json
import os

from . import _C

ConfigError = _C.ConfigError
TextConfig = _C.TextConfig
VisionConfig = _C.VisionConfig
ModelConfig = _C.ModelConfig
GenerationConfig = _C.GenerationConfig


def load_config(path_or_dict: str | os.PathLike | dict) -> ModelConfig:
    """Read a checkpoint folder, a config.json path, or an already-parsed dict."""
    if isinstance(path_or_dict, dict):
        return _C.parse_model_config(json.dumps(path_or_dict))
    return _C.load_model_config(os.fspath(path_or_dict))


def load_generation_config(path: str | os.PathLike) -> GenerationConfig:
    """generation_config.json of a checkpoint folder (empty when it has none)."""
    return _C.load_generation_config(os.fspath(path))
