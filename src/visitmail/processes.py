"""The long-running processes behind ``visitmail serve`` and ``visitmail worker``: the web
server, the delivery worker, or both in one event loop, with clean signal handling.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from fastapi import FastAPI

from visitmail.adapters.smtp.sender import SmtpSender
from visitmail.adapters.webhooks.sender import WebhookTransport
from visitmail.config import Settings
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.retry_policy import RetryPolicy
from visitmail.runtime import Runtime
from visitmail.services.delivery import DeliveryPolicy
from visitmail.worker import DeliveryWorker, WorkerOptions


def worker_options(settings: Settings, *, concurrency: int | None = None) -> WorkerOptions:
    return WorkerOptions(
        concurrency=concurrency or settings.worker_concurrency,
        batch=settings.worker_batch,
        poll_interval=settings.worker_poll_seconds,
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
    transport = SmtpSender(policy, allow_plaintext_auth=settings.allow_plaintext_auth)
    return DeliveryWorker(
        runtime,
        transport,
        worker_options(settings, concurrency=concurrency),
        webhooks=WebhookTransport(policy),  # the same SSRF guard as SMTP
    )


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_worker(worker: DeliveryWorker) -> None:
    """Deliver until SIGTERM/SIGINT, then finish or release what is held."""
    stop = asyncio.Event()
    _on_signals(stop)
    await worker.run(stop)


async def run_server(app: FastAPI, host: str, port: int, worker: DeliveryWorker | None) -> None:
    """uvicorn (which handles the signals) and, when given, the worker in the same loop;
    the worker stops after the server has stopped taking requests."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_config=None, proxy_headers=True)
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    worker_task = asyncio.create_task(worker.run(stop)) if worker else None
    try:
        await server.serve()
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task
