"""Fixtures shared by test_tokenizer.py and test_chat.py: our tokenizer, Meta's, and an offline HF one.

A plain module that both import (`from tokenizer_refs import ...`) rather than a conftest.py, which
other branches also add to tests/ for their own fixtures.

Meta's reference classes come from the installed `llama-models` wheel (imported by the tests only).
The HF fast tokenizer is converted from the same tokenizer.model with transformers'
TikTokenConverter (LLAMA4.md §6); the conversion takes seconds, so its tokenizer.json is cached in
pytest's cache folder, keyed by the model file's hash and the transformers version.
"""
from __future__ import annotations

import hashlib
import importlib
import sys
import types

import pytest

from llama4_native.tokenizer import bundled_tokenizer_path, get_tokenizer


@pytest.fixture(scope="session")
def tok():
    return get_tokenizer()


@pytest.fixture(scope="session")
def meta_tok():
    from llama_models.llama4.tokenizer import Tokenizer as MetaTokenizer

    return MetaTokenizer.get_instance()


@pytest.fixture(scope="session")
def meta_chat_format():
    """Meta's llama4 `chat_format` module.

    It imports torchvision at module level for image preprocessing, which these tests never run; when
    torchvision is missing (it is on the project's CPU machines) a bare stand-in is put in
    sys.modules for the duration of the import only.
    """
    try:
        importlib.import_module("torchvision.transforms")
        return importlib.import_module("llama_models.llama4.chat_format")
    except ImportError:
        pass
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
    stand_ins = {m.__name__: m for m in (tv, tv.transforms, tv.transforms.functional)}
    with pytest.MonkeyPatch.context() as mp:
        for name, module in stand_ins.items():
            mp.setitem(sys.modules, name, module)
        return importlib.import_module("llama_models.llama4.chat_format")


@pytest.fixture(scope="session")
def hf_tokenizer_json(request, tmp_path_factory, meta_tok):
    """Path of a tokenizer.json converted offline from the bundled tokenizer.model (skips if the API moved)."""
    try:
        import transformers
        from transformers.integrations.tiktoken import TikTokenConverter
    except ImportError as e:
        pytest.skip(f"transformers' TikTokenConverter is not importable: {e}")
    model_path = bundled_tokenizer_path()
    key = hashlib.sha256(model_path.read_bytes()).hexdigest()[:16] + "-" + transformers.__version__
    cache = getattr(request.config, "cache", None)  # absent under `-p no:cacheprovider`: use a temp folder
    folder = cache.mkdir("llama4_hf_tokenizer") if cache is not None else tmp_path_factory.mktemp("hf_tok")
    out = folder / f"tokenizer-{key}.json"
    if not out.is_file():
        names = sorted(meta_tok.special_tokens, key=meta_tok.special_tokens.get)
        try:
            converted = TikTokenConverter(
                vocab_file=str(model_path), pattern=meta_tok.O200K_PATTERN, extra_special_tokens=names
            ).converted()
        except TypeError as e:  # the converter's signature changed
            pytest.skip(f"TikTokenConverter API differs: {e}")
        tmp = out.with_suffix(".tmp")
        converted.save(str(tmp))
        tmp.replace(out)
    return out


@pytest.fixture(scope="session")
def hf_raw(hf_tokenizer_json):
    """The converted tokenizer as a bare `tokenizers.Tokenizer` (no BOS post-processor)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(hf_tokenizer_json))


@pytest.fixture(scope="session")
def hf_chat(hf_tokenizer_json):
    """A transformers fast tokenizer with the Llama 4 chat template of processing_llama4.py."""
    from transformers import PreTrainedTokenizerFast

    try:
        from transformers.models.llama4.processing_llama4 import chat_template
    except ImportError as e:
        pytest.skip(f"transformers' Llama 4 chat template is not importable: {e}")
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(hf_tokenizer_json), bos_token="<|begin_of_text|>", eos_token="<|eot|>"
    )
    fast.chat_template = chat_template
    return fast
