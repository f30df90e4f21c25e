"""HTTP CONNECT tunnelling for SMTP.

python-socks handles SOCKS4/5, but its HTTP connector reads the proxy's reply with one large
``recv``. SMTP is a server-speaks-first protocol: the server's 220 greeting often arrives in
the same segment as the proxy's ``200 Connection established`` and would be swallowed. This
module reads the reply header up to its blank line and not one byte further, so the greeting
stays in the socket for aiosmtplib. Errors are python-socks' own exception types, so the
error translation treats both kinds of proxy alike.
"""

from __future__ import annotations

import asyncio
import base64
import socket

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

MAX_HEADER_BYTES = 16 * 1024


async def open_tunnel(
    proxy_address: str,
    proxy_port: int,
    dest_host: str,
    dest_port: int,
    *,
    username: str | None,
    password: str | None,
    seconds: float,
) -> socket.socket:
    """A socket connected through the HTTP proxy to ``dest_host:dest_port``.

    Raises ``ProxyConnectionError`` (proxy unreachable), ``ProxyTimeoutError`` and
    ``ProxyError`` (non-2xx reply; ``error_code`` is the HTTP status).
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in proxy_address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(seconds):
            try:
                await loop.sock_connect(sock, (proxy_address, proxy_port))
            except OSError as e:
                raise ProxyConnectionError(
                    e.errno, f"Could not connect to proxy {proxy_address}:{proxy_port}"
                ) from e
            await loop.sock_sendall(sock, _request(dest_host, dest_port, username, password))
            status, reason = _status(await _read_header(loop, sock))
    except TimeoutError as e:
        sock.close()
        raise ProxyTimeoutError(f"Proxy connection timed out: {seconds}") from e
    except BaseException:
        sock.close()
        raise
    if not 200 <= status < 300:
        sock.close()
        raise _proxy_error(f"{status} {reason}".strip(), status)
    return sock


def _request(host: str, port: int, username: str | None, password: str | None) -> bytes:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_header(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    # One byte at a time: the header is short, and anything after it belongs to SMTP.
    data = bytearray()
    while not data.endswith(b"\r\n\r\n"):
        chunk = await loop.sock_recv(sock, 1)
        if not chunk:
            raise _proxy_error("The proxy closed the connection before replying")
        data += chunk
        if len(data) > MAX_HEADER_BYTES:
            raise _proxy_error("The proxy's reply header is too long")
    return bytes(data)


def _status(header: bytes) -> tuple[int, str]:
    line = header.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _proxy_error(f"Invalid proxy reply: {line[:80]!r}")
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


def _proxy_error(message: str, status: int | None = None) -> ProxyError:
    error: ProxyError = ProxyError(message, error_code=status)  # type: ignore[no-untyped-call]
    return error
