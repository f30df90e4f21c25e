"""Deliver outbox messages of kind ``webhook``: one signed HTTP POST per attempt (httpx).

The request: the message's pre-rendered payload as the body, and the headers
``Content-Type`` (from the message's ``meta``), ``User-Agent: visitmail``,
``X-Visitmail-Id`` (the message's fixed id, the same on every retry),
``X-Visitmail-Attempt``, ``X-Visitmail-Timestamp`` and ``X-Visitmail-Signature`` (see
:mod:`visitmail.adapters.webhooks.signature`).

Safety: the host is resolved here and every address it resolves to must pass the
operator's :class:`NetworkPolicy` (the SMTP SSRF guard, the same refusal text); the
connection then goes to the vetted address, so a DNS answer cannot change between check
and connect. Redirects are not followed, environment proxies are ignored, certificates
are verified with TLS 1.2 at least, and the whole attempt is bounded in time.

The answer is mapped onto the outbox's SMTP-shaped classification, as a reply for the one
recipient (the URL), so retries, backoff and the attempt ledger work as for email:

=================================  ====================================  ================
receiver                           synthetic reply                       outbox
=================================  ====================================  ================
2xx                                ``250 HTTP 200 OK``                   accepted
408, 425, 429, 5xx                 ``451 HTTP 503 …`` (429: "rate …")    deferred, retried
other 3xx/4xx                      ``550 HTTP 404 …``                    rejected
refused by the network policy      ``550 refused: …``                    rejected
DNS, connect, TLS, timeout         ``451 connection failed: …``          deferred, retried
=================================  ====================================  ================

A receiver that cannot be reached is a temporary failure *of that message*, never a
server failure: it must not count against, or pause, the organization's SMTP queue.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from visitmail.adapters.smtp.connect import system_resolver
from visitmail.adapters.webhooks.signature import signature_header
from visitmail.domain.network_policy import REFUSED, NetworkPolicy
from visitmail.domain.outbox import AttemptOutcome, RecipientResult
from visitmail.domain.smtp_replies import SmtpReply
from visitmail.services.outbox_ports import ClaimedMessage

Resolver = Callable[[str, int], Awaitable[list[str]]]

USER_AGENT = "visitmail"
DEFAULT_CONTENT_TYPE = "application/json"
TEXT_LIMIT = 200  # characters of the receiver's answer kept in the ledger
READ_LIMIT = 2048  # bytes of the receiver's body read at most
TEMPORARY_STATUSES = frozenset({408, 425, 429})
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0, pool=5.0)
OVERALL_SECONDS = 30.0  # the read timeout is per chunk: this bounds a trickling receiver


class WebhookAddressRefused(Exception):
    """The host resolves to an address the network policy refuses."""


class WebhookDnsFailed(Exception):
    """The host name does not resolve."""


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the SSRF guard: resolve, check every address,
    connect to a vetted address (TLS still verifies the original host name)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver or system_resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int, seconds: float | None) -> list[str]:
        literal = _ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                async with asyncio.timeout(seconds):
                    addresses = await self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise WebhookDnsFailed(host) from exc
            if not addresses:
                raise WebhookDnsFailed(host)
        for address in addresses:
            ip = _ip(address)
            if ip is None or not self._policy.permits(ip):
                raise WebhookAddressRefused(host)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # _addresses never returns an empty list
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise WebhookAddressRefused(path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _reply_for(status: int, reason: str, body: str) -> SmtpReply:
    head = f"HTTP {status} {reason}".strip()
    if status == 429:
        head += " (rate limited)"  # "rate" makes the outbox see a throttling reply
    elif 300 <= status < 400:
        head += " (redirects are not followed)"
    text = f"{head}: {body}" if body else head
    text = text[:TEXT_LIMIT]
    if 200 <= status < 300:
        return SmtpReply(250, text)
    if status in TEMPORARY_STATUSES or 500 <= status < 600:
        return SmtpReply(451, text)
    return SmtpReply(550, text)


def _tls_context() -> ssl.SSLContext:
    context = httpx.create_ssl_context(verify=True)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class WebhookTransport:
    """:class:`~visitmail.services.webhook_ports.WebhookDeliverer` over httpx, with one
    connection pool shared by every organization (each new connection is vetted)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        resolver: Resolver | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        overall_seconds: float = OVERALL_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._timeout = timeout
        self._overall = overall_seconds
        self._ssl_context = ssl_context
        self._clock = clock
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = httpx.AsyncHTTPTransport(retries=0)
            # httpx exposes no network backend of its own: swap in a pool whose backend
            # applies the network policy at every connect (the pool is httpcore's public
            # API; httpx only holds it). Proxies from the environment are never used.
            transport._pool = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context or _tls_context(),
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=30.0,
                http1=True,
                http2=False,
                retries=0,
                network_backend=GuardedBackend(self._policy, self._resolver),
            )
            self._client = httpx.AsyncClient(
                transport=transport,
                timeout=self._timeout,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def deliver(self, message: ClaimedMessage, secret: str) -> AttemptOutcome:
        if not message.open_recipients:
            return AttemptOutcome()
        url = message.open_recipients[0]
        started = time.monotonic()
        reply = await self._post(url, message, secret)
        return AttemptOutcome(
            results=[RecipientResult(url, reply)],
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    async def _post(self, url: str, message: ClaimedMessage, secret: str) -> SmtpReply:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": message.meta.get("content_type") or DEFAULT_CONTENT_TYPE,
            "User-Agent": USER_AGENT,
            "X-Visitmail-Id": message.message_id,
            "X-Visitmail-Attempt": str(message.attempt),
            "X-Visitmail-Timestamp": str(timestamp),
            "X-Visitmail-Signature": signature_header(secret, timestamp, message.mime),
        }
        try:
            async with (
                asyncio.timeout(self._overall),
                self._http().stream("POST", url, content=message.mime, headers=headers) as resp,
            ):
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) >= READ_LIMIT:
                        break
                text = _clean(bytes(body[:READ_LIMIT]).decode("utf-8", "replace"))
                return _reply_for(resp.status_code, resp.reason_phrase, text)
        except WebhookAddressRefused:
            return SmtpReply(550, f"refused: the webhook host {REFUSED}"[:TEXT_LIMIT])
        except WebhookDnsFailed:
            return SmtpReply(451, "connection failed: the host name could not be resolved")
        except (TimeoutError, httpx.TimeoutException):
            return SmtpReply(451, "connection failed: timed out")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return SmtpReply(550, "refused: not a valid webhook URL")
        except (httpx.TransportError, ssl.SSLError, OSError) as exc:
            detail = _clean(str(exc)) or type(exc).__name__
            return SmtpReply(451, f"connection failed: {detail}"[:TEXT_LIMIT])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
