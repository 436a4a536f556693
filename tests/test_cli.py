"""The llama4-native command line, end to end in subprocesses (the same llama4_native package the
tests import, run from a temporary folder)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import llama4_native

_ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(llama4_native.__file__)))


def _cli(*args, cwd, input=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "llama4_native.cli", *args], cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=timeout, env=_ENV)


def test_info_prints_build_information(tmp_path):
    r = _cli("info", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "cpu" in info["backends"] and info["cuda_available"] in (True, False)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "tiny"
    r = _cli("make-tiny", str(d), cwd=d.parent)
    assert r.returncode == 0, r.stderr
    assert "random weights" in r.stdout
    return d


def test_make_tiny_writes_the_real_layout(tiny_dir):
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.model"} <= names
    # what AutoProcessor / AutoTokenizer read (their loading: test_processor_inputs.py)
    assert {"tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
            "chat_template.jinja"} <= names
    cfg = json.loads((tiny_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Llama4ForConditionalGeneration"]
    assert cfg["text_config"]["vocab_size"] == 202048


def test_generate_greedy_is_repeatable_and_reports_speed(tiny_dir):
    args = ("generate", "--model", str(tiny_dir), "--prompt", "Hello", "--max-new-tokens", "8",
            "--temperature", "0", "--dtype", "float32")
    a = _cli(*args, cwd=tiny_dir.parent)
    b = _cli(*args, cwd=tiny_dir.parent)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert "tokens/s" in a.stderr


def test_generate_stream(tiny_dir):
    r = _cli("generate", "--model", str(tiny_dir), "--prompt", "Hi", "--max-new-tokens", "6",
             "--temperature", "0", "--stream", cwd=tiny_dir.parent)
    assert r.returncode == 0, r.stderr


def test_chat_two_turns(tiny_dir):
    r = _cli("chat", "--model", str(tiny_dir), "--max-new-tokens", "5", "--temperature", "0",
             cwd=tiny_dir.parent, input="Hello\nAnd again\n\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("assistant> ") == 2


def test_bad_arguments_give_a_clear_error(tiny_dir):
    r = _cli("generate", "--model", str(tiny_dir), "--prompt", "x", "--top-p", "3", cwd=tiny_dir.parent)
    assert r.returncode == 2 and "top_p" in r.stderr
    r = _cli("generate", "--model", str(tiny_dir / "missing"), "--prompt", "x", cwd=tiny_dir.parent)
    assert r.returncode == 2 and "error" in r.stderr


def test_demo_builds_its_checkpoint_and_generates_from_an_image_prompt(tmp_path):
    env = dict(_ENV, LLAMA4_NATIVE_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "llama4_native.cli", "demo", "--max-new-tokens", "6"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert "RANDOM weights" in r.stderr and "dog.jpg" in r.stderr
    assert "6 tokens" in r.stderr and "tokens/s" in r.stderr
    assert len(list((tmp_path / "cache").glob("tiny-random-v*/model.safetensors"))) == 1


def test_generate_with_fp8_experts(tiny_dir):
    r = _cli("generate", "--model", str(tiny_dir), "--prompt", "Hello", "--max-new-tokens", "4",
             "--temperature", "0", "--quantization", "fp8", cwd=tiny_dir.parent)
    assert r.returncode == 0, r.stderr
    assert "4 tokens" in r.stderr
