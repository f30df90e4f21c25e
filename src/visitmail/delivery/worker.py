"""The delivery worker: the roles below, wired together in one process.

One :class:`DeliveryWorker` per process, any number of processes on any number of machines
(PostgreSQL), or one inside ``visitmail serve`` (SQLite or PostgreSQL). Like Postfix, which
splits its queue manager from its delivery agents, each role is its own small module:

- :mod:`~visitmail.delivery.scheduler`: claims due messages (only what this process can
  start soon), keeps one lane per organization and staffs it with senders;
- :mod:`~visitmail.delivery.channels`: one channel per transport (SMTP, webhook) behind
  one port, ``Channel.deliver(message) -> AttemptOutcome``;
- :mod:`~visitmail.delivery.settler`: writes outcomes, releases, health and throttling in
  batches (one transaction per flush);
- :mod:`~visitmail.delivery.budget`: the shared rate budget, reserved in batches per lane;
- :mod:`~visitmail.delivery.leases`: what this worker holds, and its lease renewal;
- :mod:`~visitmail.delivery.prober`: resumes paused organizations, purges old messages.

Wake-ups: ``LISTEN/NOTIFY`` (PostgreSQL), an in-process signal (an enqueue in this
process), a flush, or the polling fallback.

Shutdown (``stop`` set, e.g. on SIGTERM): claiming stops; messages not yet started go back
to the queue at once; conversations in flight get ``WorkerOptions.grace`` seconds to finish
(:meth:`DeliveryWorker.hurry`, e.g. a second signal, ends that early); what is still on
the wire then is cut off and given back, flagged as a possible duplicate only if its final
``.`` had been written (see :mod:`~visitmail.delivery.scheduler`). Leases keep being
renewed meanwhile; when :meth:`DeliveryWorker.run` returns, this worker holds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from visitmail.delivery.bounce_poller import BouncePoller
from visitmail.delivery.budget import RateBudget
from visitmail.delivery.channels import SmtpChannel, WebhookChannel
from visitmail.delivery.leases import LeaseKeeper
from visitmail.delivery.options import WorkerOptions
from visitmail.delivery.prober import Prober
from visitmail.delivery.scheduler import Scheduler
from visitmail.delivery.settler import Settler
from visitmail.logs import get_logger
from visitmail.runtime import Runtime
from visitmail.services.outbox_ports import MessageTransport
from visitmail.services.webhook_ports import WebhookDeliverer

log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class DeliveryWorker:
    def __init__(
        self,
        runtime: Runtime,
        transport: MessageTransport,
        options: WorkerOptions | None = None,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        webhooks: WebhookDeliverer | None = None,
        bounces: BouncePoller | None = None,
    ) -> None:
        self.runtime = runtime
        self.bounces = bounces  # None: bounce mailboxes are not read by this worker
        self.transport = transport
        self.webhooks = webhooks  # None: webhook messages fail, saying so
        self.options = options or WorkerOptions()
        self.name = name or worker_name()
        self.clock = clock
        policy = self.options.policy
        self.leases = LeaseKeeper(
            runtime, self.name, policy.lease, clock, every=self.options.renew_every
        )
        self.settler = Settler(runtime, self.name, self.leases, policy, clock)
        self.smtp = SmtpChannel(runtime, transport)
        self.scheduler = Scheduler(
            runtime,
            self.name,
            self.options,
            clock,
            smtp=self.smtp,
            webhooks=WebhookChannel(runtime, webhooks),
            leases=self.leases,
            settler=self.settler,
            budget=RateBudget(runtime, self.settler, clock),
        )
        self.prober = Prober(runtime, self.smtp, policy, clock, on_resume=self.wake)
        self._quit = asyncio.Event()  # set when housekeeping loops should end
        self._hurry = asyncio.Event()  # set when shutdown should not wait any longer

    # --- public ------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was enqueued: claim now instead of at the next poll."""
        self.scheduler.wakeup.set()

    def hurry(self) -> None:
        """Shutdown should not wait for conversations in flight any longer (a second
        SIGTERM/SIGINT): cut them off now. Harmless before ``stop``; it applies then."""
        self._hurry.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then shut down gracefully."""
        log.info("worker started", worker=self.name, concurrency=self.options.concurrency)
        self.runtime.add_waker(self.wake)
        listener = asyncio.create_task(self.runtime.listen(self.wake))
        flusher = asyncio.create_task(self._flush_loop())
        prober = asyncio.create_task(self.prober.run(self._pause, self.options.probe_interval))
        renewer = asyncio.create_task(self.leases.run(self._pause))
        housekeeping = [listener, prober, renewer, flusher]
        if self.bounces is not None:
            housekeeping.append(
                asyncio.create_task(self.bounces.run(self._pause, self.options.probe_interval))
            )
        try:
            await self.scheduler.claim_loop(stop)
        finally:
            await self.scheduler.drain(self._hurry)
            # The housekeeping loops are told to stop, not cancelled: cancelling a task in
            # the middle of a database transaction could leave SQLite's write lock held.
            self._quit.set()
            listener.cancel()  # its own connection, no transaction
            self.scheduler.flushed.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*housekeeping, return_exceptions=True)
            self.settler.closing = True  # one last try, even right after a failed one
            await self._flush()  # everything settled or released is written
            await self.smtp.close()
            await self.scheduler.webhooks.close()
            self.runtime.remove_waker(self.wake)
            log.info("worker stopped", worker=self.name)

    async def run_until_idle(self, *, settle_seconds: float = 0.3, limit: float = 30) -> None:
        """Test and benchmark helper: deliver until nothing is due and nothing is held."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop))
        deadline = time.monotonic() + limit
        idle_since: float | None = None
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if len(self.leases) or self.settler.has_results:
                    idle_since = None
                    continue
                if idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= settle_seconds:
                    async with self.runtime.uow() as uow:
                        soon = self.clock() + timedelta(seconds=settle_seconds)
                        due = await uow.outbox.has_due(soon, self.options.organizations)
                    if not due:
                        break
        finally:
            stop.set()
            await task

    # --- the settler's cadence ---------------------------------------------------------

    async def _pause(self, seconds: float) -> bool:
        """Sleep, or return early when the worker stops; True means "go on"."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quit.wait(), seconds)
        return not self._quit.is_set()

    async def _flush_loop(self) -> None:
        while await self._pause(self.options.flush_interval):
            # While a failed write waits for its retry, there is nothing to flush yet.
            if self.settler.pending and self.settler.ready():
                await self._flush()
                self.scheduler.flushed.set()

    async def _flush(self) -> None:
        """Write what the settler collected (one transaction)."""
        await self.settler.flush()
