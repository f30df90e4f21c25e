"""The long-running processes behind ``visitmail serve`` and ``visitmail worker``: the web
server, the delivery worker, or both in one event loop, with clean signal handling.

Contract (both commands): the first SIGTERM or SIGINT stops claiming and, for ``serve``,
stops taking HTTP requests; messages not yet started go back to the queue at once;
SMTP conversations in flight get ``VISITMAIL_SHUTDOWN_GRACE_SECONDS`` to finish (HTTP
requests in flight get as long); then what is still in flight is cut off and given back
(see :mod:`visitmail.delivery.scheduler`), and the process exits 0. A second signal ends
the grace period at once. The signal is never re-raised: uvicorn would do that after the
server stopped, killing the process before the in-process worker had stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta

import uvicorn
from fastapi import FastAPI

from visitmail.adapters.smtp.sender import SmtpSender
from visitmail.adapters.webhooks.sender import WebhookTransport
from visitmail.config import Settings
from visitmail.delivery.bounce_poller import BouncePoller
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.retry_policy import RetryPolicy
from visitmail.logs import get_logger
from visitmail.runtime import Runtime
from visitmail.services.clock import utcnow
from visitmail.services.delivery import DeliveryPolicy
from visitmail.worker import DeliveryWorker, WorkerOptions

log = get_logger(__name__)


def worker_options(settings: Settings, *, concurrency: int | None = None) -> WorkerOptions:
    return WorkerOptions(
        concurrency=concurrency or settings.worker_concurrency,
        batch=settings.worker_batch,
        poll_interval=settings.worker_poll_seconds,
        grace=settings.shutdown_grace_seconds,
        policy=DeliveryPolicy(
            retry=RetryPolicy(max_age=timedelta(hours=settings.retry_max_age_hours)),
            lease=timedelta(seconds=settings.worker_lease_seconds),
            pause_after=settings.pause_after_failures,
            retention=timedelta(days=settings.retention_days),
        ),
    )


def build_worker(
    runtime: Runtime, *, concurrency: int | None = None, allow_loopback: bool = False
) -> DeliveryWorker:
    settings = runtime.settings
    policy = NetworkPolicy.of(
        settings.smtp_allowed_networks,
        dev_inbox_port=settings.dev_inbox_port if allow_loopback else None,
    )
    from visitmail.oauth_wiring import build_token_service

    tokens = build_token_service(runtime)
    transport = SmtpSender(
        policy, allow_plaintext_auth=settings.allow_plaintext_auth, tokens=tokens
    )
    return DeliveryWorker(
        runtime,
        transport,
        worker_options(settings, concurrency=concurrency),
        webhooks=WebhookTransport(policy),  # the same SSRF guard as SMTP
        # Bounce mailboxes are read under the same guard and with the same OAuth tokens.
        bounces=BouncePoller(runtime, policy, utcnow, tokens=tokens),
    )


def _on_signals(first: Callable[[], None], again: Callable[[], None]) -> None:
    """SIGTERM/SIGINT: ``first`` on the first one, ``again`` on every later one."""
    loop = asyncio.get_running_loop()
    seen: list[signal.Signals] = []

    def handle(sig: signal.Signals) -> None:
        seen.append(sig)
        if len(seen) == 1:
            log.info("shutdown requested", signal=sig.name)
            first()
        else:
            log.warning("shutdown: second signal, not waiting any longer", signal=sig.name)
            again()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)


async def run_worker(worker: DeliveryWorker) -> None:
    """Deliver until SIGTERM/SIGINT, then finish or release what is held."""
    stop = asyncio.Event()
    _on_signals(stop.set, worker.hurry)
    await worker.run(stop)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (see the module's contract)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def delivering(worker: DeliveryWorker, stop: asyncio.Event) -> AsyncIterator[None]:
    """Run ``worker`` while the context is open; on exit stop it and wait until it has
    finished or released everything (the web app holds this for its lifetime, so its
    runtime and dev inbox outlive the worker's last conversation)."""
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def run_server(
    make_app: Callable[[contextlib.AbstractAsyncContextManager[None] | None], FastAPI],
    host: str,
    port: int,
    worker: DeliveryWorker | None,
    *,
    grace: float,
) -> None:
    """uvicorn and, when given, the worker in the same loop. ``make_app`` builds the app
    around a context that runs for the app's lifetime (the worker's, or ``None``).
    A signal stops both at once: HTTP stops accepting while the worker drains."""
    stop = asyncio.Event()
    app = make_app(delivering(worker, stop) if worker is not None else None)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=math.ceil(grace),
    )
    server = _Server(config)

    def first() -> None:
        server.should_exit = True
        stop.set()

    def again() -> None:
        server.force_exit = True
        if worker is not None:
            worker.hurry()

    _on_signals(first, again)
    await server.serve()
