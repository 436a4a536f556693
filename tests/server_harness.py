"""A server for the tests (not a test file): the app of llama4_native.server on uvicorn in a
thread, on 127.0.0.1 and a free port. Loopback only: nothing here opens a connection elsewhere."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import uvicorn

from llama4_native.server.app import ServerConfig, create_app


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(model_dir, *args: str, cwd, start_timeout_s: float = 120.0):
    """`llama4-native serve --model model_dir --port P ARGS` as a real process on 127.0.0.1, yielding
    (process, url) once /health answers; terminated on exit. cwd: a neutral folder, so that `-m`
    does not import the source tree's (unbuilt) package. OMP_WAIT_POLICY is left unset, so the
    server restarts itself with passive OpenMP threads (same pid)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.Popen([sys.executable, "-m", "llama4_native.cli", "serve", "--model", str(model_dir),
                             "--port", str(port), "--log-level", "warning", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, f"the server did not start in {start_timeout_s:.0f} s"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class ServerThread:
    def __init__(self, model, **config):
        config.setdefault("served_model_name", "tiny")
        config.setdefault("max_model_len", 512)
        self.config = ServerConfig(**config)
        self.app = create_app(model, self.config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the test server did not come up in 30 s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def engine(self):
        return self.app.state.engine
