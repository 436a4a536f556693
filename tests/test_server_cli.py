"""`llama4-native serve` on the command line: arguments are checked before the model loads, and a
real process serves on 127.0.0.1 (a free port) until it is terminated."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from llama4_native.cli import main
from server_harness import serve_process


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port"),
    (["--max-model-len", "0"], "--max-model-len"),
    (["--max-num-seqs", "0"], "--max-num-seqs"),
    (["--gpu-memory-utilization", "0.9"], "gpu_memory_utilization sizes the KV cache on a GPU"),
    (["--device", "cuda", "--gpu-memory-utilization", "1.5"], "gpu_memory_utilization must be a number in (0, 1]"),
    (["--device", "cuda", "--gpu-memory-utilization", "0.5", "--kv-cache-bytes", "1000000"],
     "kv_cache_bytes or gpu_memory_utilization, not both"),
    (["--allowed-local-media-path", "/nonexistent/folder"], "--allowed-local-media-path"),
    (["--media-timeout", "0"], "--media-timeout"),
    (["--max-request-bytes", "0"], "--max-request-bytes must be >= 1, got 0"),
])
def test_bad_arguments_fail_before_loading(real_vocab_checkpoint, args, message, capsys, monkeypatch):
    import llama4_native

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(llama4_native, "load", no_load)
    assert main(["serve", "--model", str(real_vocab_checkpoint), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_model_folder(capsys):
    assert main(["serve", "--model", "/nonexistent/checkpoint"]) == 2
    assert "--model" in capsys.readouterr().err


def test_serve_process_answers_on_loopback(real_vocab_checkpoint, tmp_path):
    with serve_process(real_vocab_checkpoint, "--served-model-name", "tiny", "--max-model-len", "256",
                       cwd=tmp_path) as (proc, url):
        models = httpx.get(url + "/v1/models").json()["data"]
        assert models[0]["id"] == "tiny" and models[0]["max_model_len"] == 256
        r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 3,
                                                      "ignore_eos": True}, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
        # without OMP_WAIT_POLICY the server restarted itself with passive OpenMP threads (same pid)
        environ = (Path("/proc") / str(proc.pid) / "environ").read_bytes().split(b"\0")
        assert b"OMP_WAIT_POLICY=PASSIVE" in environ
