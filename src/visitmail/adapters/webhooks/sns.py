"""The SNS client of the SES webhook: fetches signing certificates (cached) and confirms
subscriptions. URLs arrive checked (``domain.relay_signatures.check_sns_url``: https on
``sns.<region>.amazonaws.com``); redirects are not followed, bodies are bounded."""

from __future__ import annotations

import httpx

MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED = 32
TIMEOUT = 10.0


class HttpSnsClient:
    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._certificates: dict[str, bytes] = {}

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=TIMEOUT, follow_redirects=False)

    async def certificate(self, url: str) -> bytes:
        cached = self._certificates.get(url)
        if cached is not None:
            return cached
        async with self._client() as client:
            response = await client.get(url)
        response.raise_for_status()
        pem = response.content
        if len(pem) > MAX_CERTIFICATE_BYTES or b"-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError("not a PEM certificate")
        if len(self._certificates) >= MAX_CACHED:
            self._certificates.pop(next(iter(self._certificates)))
        self._certificates[url] = pem
        return pem

    async def confirm_subscription(self, url: str) -> None:
        async with self._client() as client:
            response = await client.get(url)
        response.raise_for_status()
