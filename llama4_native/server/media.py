"""Image URLs of chat requests -> encoded image bytes, under the operator's policy (vLLM's rules):
a client must not be able to make the server read its disk or reach its network.

  data:image/...;base64,...   always accepted (size-limited)
  http(s)://host/...          only when host is in allowed_domains; every address the host resolves
                              to must be public unless allow_private is set, and the connection goes
                              to the address that was checked (no second DNS lookup to rebind);
                              redirects are followed only within the same rules; size and time limits
  file:///path                only under allowed_local_path (after resolving symlinks)
Anything else is refused with MediaError (-> HTTP 400)."""
from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from ..data_url import decode_image_data_url, short

MAX_REDIRECTS = 3


class MediaError(ValueError):
    """An image URL the policy refuses or that could not be read; the message says which rule."""


@dataclass(frozen=True)
class MediaPolicy:
    allowed_domains: frozenset[str] = field(default_factory=frozenset)  # exact host names (lower case)
    allow_private: bool = False           # loopback, private, link-local, ... addresses allowed
    allowed_local_path: str | None = None  # file:// URLs under this folder
    max_bytes: int = 20 << 20             # per image, after decoding
    timeout_s: float = 10.0               # per http(s) image, whole download


def is_public_address(address: str) -> bool:
    """False for every address a server-side fetch must not reach by default: loopback, private
    ranges (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with cloud metadata,
    fe80::/10), carrier-grade NAT (100.64/10), multicast, reserved and unspecified; IPv4-mapped
    IPv6 addresses are judged as the IPv4 address they carry."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def decode_data_url(url: str, max_bytes: int) -> bytes:
    try:
        return decode_image_data_url(url, max_bytes, label="image_url")
    except ValueError as e:
        raise MediaError(str(e)) from None


def read_local(url: str, policy: MediaPolicy) -> bytes:
    if not policy.allowed_local_path:
        raise MediaError("image_url: file:// URLs are refused (the server has no --allowed-local-media-path)")
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise MediaError(f"image_url: file URLs must name a local path ({short(url)})")
    root = os.path.realpath(policy.allowed_local_path)
    path = os.path.realpath(unquote(parts.path))
    if os.path.commonpath([root, path]) != root:
        raise MediaError(f"image_url: {short(url)} is outside the allowed local media path")
    try:
        size = os.path.getsize(path)
        if size > policy.max_bytes:
            raise MediaError(f"image_url: {short(url)} is larger than the server's limit of {policy.max_bytes} bytes")
        with open(path, "rb") as f:
            return f.read(policy.max_bytes + 1)
    except OSError as e:
        raise MediaError(f"image_url: cannot read {short(url)} ({e.strerror})") from None


async def _resolve_checked(host: str, port: int, policy: MediaPolicy) -> str:
    """An address of `host` that the policy allows (all of them must be allowed)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise MediaError(f"image_url: cannot resolve {host!r} ({e})") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise MediaError(f"image_url: {host!r} has no address")
    if not policy.allow_private:
        bad = [a for a in addresses if not is_public_address(a)]
        if bad:
            raise MediaError(f"image_url: {host!r} resolves to a loopback or private address ({bad[0]}), "
                             f"which the server refuses")
    return addresses[0]


async def _fetch_http(url: str, policy: MediaPolicy) -> bytes:
    import httpx

    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in policy.allowed_domains:
            raise MediaError(f"image_url: the domain {host!r} is not in the server's --allowed-media-domains")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await _resolve_checked(host, port, policy)
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        pinned = parts._replace(netloc=netloc).geturl()
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
        async with httpx.AsyncClient(timeout=policy.timeout_s, follow_redirects=False, trust_env=False) as client:
            async with client.stream("GET", pinned, headers=headers,
                                     extensions={"sni_hostname": host}) as r:
                if r.is_redirect:
                    url = urljoin(url, r.headers.get("location", ""))
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise MediaError(f"image_url: a redirect to {short(url)} is refused")
                    continue
                if r.status_code != 200:
                    raise MediaError(f"image_url: {short(url)} answered HTTP {r.status_code}")
                data = bytearray()
                async for chunk in r.aiter_bytes():
                    data += chunk
                    if len(data) > policy.max_bytes:
                        raise MediaError(f"image_url: {short(url)} is larger than the server's limit of "
                                         f"{policy.max_bytes} bytes")
                return bytes(data)
    raise MediaError(f"image_url: more than {MAX_REDIRECTS} redirects")


async def fetch_image(url: str, policy: MediaPolicy) -> bytes:
    """The encoded bytes of one image URL, or MediaError."""
    if not isinstance(url, str) or not url:
        raise MediaError("image_url: the url must be a non-empty string")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return decode_data_url(url, policy.max_bytes)
    if scheme == "file":
        return read_local(url, policy)
    if scheme in ("http", "https"):
        try:
            return await asyncio.wait_for(_fetch_http(url, policy), policy.timeout_s)
        except asyncio.TimeoutError:
            raise MediaError(f"image_url: {short(url)} took longer than {policy.timeout_s} s") from None
        except MediaError:
            raise
        except Exception as e:  # httpx's connection and protocol errors
            raise MediaError(f"image_url: cannot fetch {short(url)} ({type(e).__name__})") from None
    raise MediaError(f"image_url: unsupported URL scheme {scheme[:20]!r} (data:, http(s):// or file://)")
