"""A server for the tests (not a test file): the app of llama4_native.server on uvicorn in a
thread, on 127.0.0.1 and a free port. Loopback only: nothing here opens a connection elsewhere."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from llama4_native.server.app import ServerConfig, create_app


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
