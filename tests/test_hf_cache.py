"""Hugging Face model ids resolved offline from the local cache layout (llama4_native/hf_cache.py):
HF_HUB_CACHE, HF_HOME, refs/main, several snapshots, and clear errors; nothing is downloaded."""
from __future__ import annotations

import os
import shutil

import pytest

import llama4_native as l4
from llama4_native.cli import main
from llama4_native.hf_cache import hub_dir, resolve_model

MODEL_ID = "meta-llama/Llama-4-Tiny-Test"


def _cache(root, source, revs=("abc123",), main_rev="abc123"):
    repo = root / ("models--" + MODEL_ID.replace("/", "--"))
    for rev in revs:
        shutil.copytree(source, repo / "snapshots" / rev)
    if main_rev:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(main_rev + "\n")
    return repo


def test_hub_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_dir() == str(tmp_path / "home" / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_dir() == str(tmp_path / "hub")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_dir() == str(tmp_path / "xdg" / "huggingface" / "hub")


def test_load_by_model_id_from_the_cache(real_vocab_checkpoint, tmp_path, monkeypatch):
    repo = _cache(tmp_path / "hub", real_vocab_checkpoint, revs=("old", "abc123", "newer"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model(MODEL_ID) == str(repo / "snapshots" / "abc123")  # refs/main wins over newer
    model = l4.load(MODEL_ID, dtype="bfloat16")
    assert model.path == str(repo / "snapshots" / "abc123")
    ref = l4.load(real_vocab_checkpoint, dtype="bfloat16")
    ids = [200000, 1000, 2000]
    assert model.generate(input_ids=ids, max_new_tokens=3, temperature=0.0).token_ids == \
        ref.generate(input_ids=ids, max_new_tokens=3, temperature=0.0).token_ids


def test_snapshot_choice_without_refs(real_vocab_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    repo = _cache(tmp_path / "home" / "hub", real_vocab_checkpoint, revs=("r1", "r2"), main_rev=None)
    os.utime(repo / "snapshots" / "r1", (1_000_000, 1_000_000))  # copytree keeps the source's times
    assert resolve_model(MODEL_ID) == str(repo / "snapshots" / "r2")  # the newest with a config.json


def test_missing_ids_and_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="Hugging Face cache") as e:
        l4.load("meta-llama/Not-There")
    assert str(tmp_path / "empty") in str(e.value)
    assert resolve_model(str(tmp_path)) == str(tmp_path)  # a folder is a folder
    assert resolve_model("./relative/x") == "./relative/x"  # not an id: the loader reports it
    assert main(["serve", "--model", "meta-llama/Not-There"]) == 2
    assert "Hugging Face cache" in capsys.readouterr().err


def test_serve_accepts_a_model_id(real_vocab_checkpoint, tmp_path, monkeypatch):
    from llama4_native.server import serve

    _cache(tmp_path / "hub", real_vocab_checkpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import argparse

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    serve.add_parser(sub)
    a = ap.parse_args(["serve", "--model", MODEL_ID])
    serve.check_args(a)
    assert os.path.isfile(os.path.join(a.model_dir, "config.json"))


@pytest.mark.parametrize("flags, name", [(["--temperature", "-1"], "temperature"), (["--top-p", "0"], "top_p"),
                                         (["--top-k", "-3"], "top_k"), (["--max-new-tokens", "-1"], "max_new_tokens")])
def test_cli_checks_sampling_arguments_before_loading(real_vocab_checkpoint, monkeypatch, capsys, flags, name):
    import llama4_native

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(llama4_native, "load", no_load)
    for cmd in (["generate", "--prompt", "hi"], ["chat"]):
        assert main([cmd[0], "--model", str(real_vocab_checkpoint), *cmd[1:], *flags]) == 2
        assert name in capsys.readouterr().err
