"""The server's image URL policy (llama4_native/server/media.py). The address check is tested on
the function itself, opening no connection; the end-to-end cases send traffic to 127.0.0.1 only
(the test server and a local file server on loopback)."""
from __future__ import annotations

import asyncio
import http.server
import os
import threading

import httpx
import pytest

import llama4_native as l4
from llama4_native.server.media import MediaError, MediaPolicy, decode_data_url, fetch_image, is_public_address
from server_harness import ServerThread
from test_server import png_data_url


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254",
    "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::", "fe80::1", "fe80::1%eth0", "fc00::1",
    "fd12:3456::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
    "198.18.0.1", "192.0.2.1",
])
def test_loopback_private_and_special_addresses_are_refused(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.4.4"])
def test_public_addresses_pass(address):
    assert is_public_address(address)


def test_data_urls():
    url, data = png_data_url()
    assert decode_data_url(url, 1 << 20) == data
    with pytest.raises(MediaError, match="limit"):
        decode_data_url(url, 10)
    with pytest.raises(MediaError, match="image/"):
        decode_data_url("data:text/plain;base64,aGk=", 1 << 20)
    with pytest.raises(MediaError, match="base64"):
        decode_data_url("data:image/png,rawbytes", 1 << 20)
    huge = "data:image/png;base64," + "A" * 60_000 + "!!!"
    with pytest.raises(MediaError) as e:
        decode_data_url(huge, 1 << 30)
    assert len(str(e.value)) < 300  # never echoes the URL


def run(coro):
    return asyncio.run(coro)


def test_urls_refused_by_default():
    policy = MediaPolicy()
    for url, match in [("file:///etc/passwd", "allowed-local-media-path"), ("http://127.0.0.1:1/x.png", "allowed-media"),
                       ("https://example.com/x.png", "allowed-media"), ("ftp://x/y", "scheme"), ("/etc/passwd", "scheme")]:
        with pytest.raises(MediaError, match=match):
            run(fetch_image(url, policy))


def test_local_files_only_under_the_allowed_folder(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    _, data = png_data_url()
    (root / "a.png").write_bytes(data)
    outside = tmp_path / "secret.png"
    outside.write_bytes(data)
    os.symlink(outside, root / "link.png")
    policy = MediaPolicy(allowed_local_path=str(root))
    assert run(fetch_image((root / "a.png").as_uri(), policy)) == data
    for url in ["file:///etc/passwd", outside.as_uri(), (root / "link.png").as_uri(), (root / ".." / "secret.png").as_uri(),
                f"file://{root}/../secret.png"]:
        with pytest.raises(MediaError, match="outside"):
            run(fetch_image(url, policy))
    with pytest.raises(MediaError, match="limit"):
        run(fetch_image((root / "a.png").as_uri(), MediaPolicy(allowed_local_path=str(root), max_bytes=10)))


class _Images(http.server.BaseHTTPRequestHandler):
    data = b""

    def do_GET(self):
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://localhost:%d/img.png" % self.server.server_address[1])
            self.end_headers()
            return
        self.send_response(200 if self.path == "/img.png" else 404)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data)

    def log_message(self, *args):
        pass


@pytest.fixture
def image_host():
    """An HTTP server on 127.0.0.1 serving one PNG at /img.png."""
    _, data = png_data_url(3)
    handler = type("H", (_Images,), {"data": data})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", data
    httpd.shutdown()
    httpd.server_close()


def test_http_fetch_policy_on_loopback(image_host):
    base, data = image_host
    with pytest.raises(MediaError, match="allowed-media-domains"):
        run(fetch_image(base + "/img.png", MediaPolicy()))
    with pytest.raises(MediaError, match="loopback or private"):
        run(fetch_image(base + "/img.png", MediaPolicy(allowed_domains=frozenset({"127.0.0.1"}))))
    allowed = MediaPolicy(allowed_domains=frozenset({"127.0.0.1"}), allow_private=True)
    assert run(fetch_image(base + "/img.png", allowed)) == data
    with pytest.raises(MediaError, match="HTTP 404"):
        run(fetch_image(base + "/missing.png", allowed))
    with pytest.raises(MediaError, match="limit"):
        run(fetch_image(base + "/img.png", MediaPolicy(allowed_domains=frozenset({"127.0.0.1"}), allow_private=True,
                                                       max_bytes=100)))
    # A redirect to a host outside the allowed domains is refused, even on loopback.
    with pytest.raises(MediaError, match="'localhost' is not in"):
        run(fetch_image(base + "/redirect", allowed))


def test_server_refuses_loopback_and_local_files_unless_allowed(real_vocab_checkpoint, image_host, tmp_path):
    base, data = image_host

    def chat(s, url):
        msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": "?"}]}]
        return httpx.post(s.url + "/v1/chat/completions", json={"model": "tiny", "messages": msgs, "max_tokens": 1},
                          timeout=60)

    (tmp_path / "img.png").write_bytes(data)
    with ServerThread(l4.load(real_vocab_checkpoint, dtype="bfloat16")) as s:
        for url in (base + "/img.png", "file:///etc/passwd", (tmp_path / "img.png").as_uri()):
            r = chat(s, url)
            assert r.status_code == 400 and r.json()["error"]["param"] == "messages", r.text
        assert chat(s, png_data_url()[0]).status_code == 200
    policy = MediaPolicy(allowed_domains=frozenset({"127.0.0.1"}), allow_private=True, allowed_local_path=str(tmp_path))
    with ServerThread(l4.load(real_vocab_checkpoint, dtype="bfloat16"), media=policy) as s:
        a, b = chat(s, base + "/img.png"), chat(s, (tmp_path / "img.png").as_uri())
        assert a.status_code == b.status_code == 200
        assert a.json()["usage"] == b.json()["usage"]  # the same image either way
        assert chat(s, "file:///etc/passwd").status_code == 400
