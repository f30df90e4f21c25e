"""A real aiosmtpd server on its own event loop in a background thread, for synchronous
tests (Playwright's sync API owns the main thread's loop).

It is the same server as :func:`tests.support.smtp_servers.start_smtp_server` (STARTTLS or
implicit TLS with a trustme certificate, AUTH with one user, recording what it saw), only
started and stopped from plain synchronous code::

    certs = Certificates.create()
    with ThreadedSmtpServer(security="starttls", cert=certs.trusted_leaf,
                            credentials=("user@example.com", "right")) as smtp:
        ...  # smtp.host, smtp.port; trust certs.trusted_ca_pem
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

import trustme

from tests.support.smtp_servers import Recorder, ServerSecurity, SmtpServer, start_smtp_server


class ThreadedSmtpServer:
    """Start on ``__enter__`` (or :meth:`start`), stop on ``__exit__`` (or :meth:`stop`)."""

    def __init__(
        self,
        *,
        security: ServerSecurity = "starttls",
        cert: trustme.LeafCert | None = None,
        credentials: tuple[str, str] | None = None,
        **options: Any,
    ) -> None:
        self._kwargs: dict[str, Any] = dict(
            security=security, cert=cert, credentials=credentials, **options
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="threaded-smtp", daemon=True
        )
        self._server: SmtpServer | None = None

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def start(self) -> ThreadedSmtpServer:
        self._thread.start()
        self._server = self._run(start_smtp_server(**self._kwargs))
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._run(self._server.close())
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    @property
    def server(self) -> SmtpServer:
        assert self._server is not None, "the server is not running"
        return self._server

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def recorder(self) -> Recorder:
        return self.server.recorder

    def __enter__(self) -> ThreadedSmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
