"""The delivery loop.

One :class:`DeliveryWorker` per process, any number of processes on any number of machines
(PostgreSQL), or one inside ``visitmail serve`` (SQLite or PostgreSQL):

- a **claimer** leases due messages in batches (``FOR UPDATE SKIP LOCKED``) while the
  worker holds fewer than its capacity, and wakes on ``LISTEN/NOTIFY`` (PostgreSQL), on an
  in-process signal (an enqueue in this process), or on a polling fallback;
- **lanes**, one per organization, send over that organization's connection pool with at
  most ``max_connections`` conversations at once, within the shared rate budget; a server
  that cannot be reached defers the lane's whole backlog at once, so a broken organization
  costs one connection attempt per round and never holds the others up;
- a **flusher** writes outcomes in batches (one transaction for many messages);
- a **prober** resumes paused organizations once their server answers again;
- shutdown stops claiming, lets conversations in flight finish within a grace period, and
  gives everything else back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.domain.errors import VisitmailError
from visitmail.domain.outbox import (
    AttemptOutcome,
    FailureStage,
    MessageKind,
    RecipientResult,
)
from visitmail.domain.smtp_replies import SmtpReply
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings
from visitmail.logs import get_logger
from visitmail.metrics import ATTEMPT_SECONDS, ATTEMPTS, MESSAGES_SETTLED
from visitmail.runtime import Runtime
from visitmail.services import smtp_config, webhooks
from visitmail.services.delivery import DeliveryPolicy, next_probe_interval, settle_message
from visitmail.services.outbox_ports import ClaimedMessage, MessageTransport, SettledMessage
from visitmail.services.webhook_ports import WebhookDeliverer

log = get_logger(__name__)

SETTINGS_TTL = 5.0  # seconds a decrypted settings copy is reused before re-reading
HEALTHY_TTL = 5.0  # seconds a recorded success stands for later ones


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Lane:
    organization_id: uuid.UUID
    queue: deque[ClaimedMessage] = field(default_factory=deque)
    senders: int = 0


@dataclass
class WorkerOptions:
    concurrency: int = 20  # SMTP conversations at once in this process
    batch: int = 100  # messages per claim
    poll_interval: float = 1.0  # fallback when no wake-up arrives
    flush_interval: float = 0.02
    probe_interval: float = 5.0
    grace: float = 10.0  # shutdown: time for conversations in flight
    organizations: frozenset[uuid.UUID] | None = None  # None: every organization
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    @property
    def capacity(self) -> int:
        """Messages held at once (in flight or waiting in a lane)."""
        return max(self.batch, self.concurrency * 4)


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
    ) -> None:
        self.runtime = runtime
        self.transport = transport
        self.webhooks = webhooks  # None: webhook messages fail, saying so
        self.options = options or WorkerOptions()
        self.name = name or worker_name()
        self.clock = clock
        self.box = SecretBox(runtime.keyring)
        self._lanes: dict[uuid.UUID, _Lane] = {}
        self._held: set[uuid.UUID] = set()
        self._inflight: set[uuid.UUID] = set()
        self._lease_until: dict[uuid.UUID, datetime] = {}
        self._known_healthy: dict[uuid.UUID, float] = {}  # org -> when recorded (monotonic)
        self._results: list[SettledMessage] = []
        self._releases: list[tuple[uuid.UUID, datetime | None]] = []
        self._failures: list[tuple[uuid.UUID, str]] = []
        self._throttled: set[uuid.UUID] = set()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._stopping = False
        self._quit = asyncio.Event()  # set when housekeeping loops should end
        self._tasks: set[asyncio.Task[None]] = set()
        self._settings: dict[uuid.UUID, tuple[float, SmtpSettings, SmtpSecrets] | None] = {}
        self._blocked_until: dict[uuid.UUID, datetime] = {}

    # --- public ------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was enqueued: claim now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then shut down gracefully."""
        log.info("worker started", worker=self.name, concurrency=self.options.concurrency)
        self.runtime.add_waker(self.wake)
        listener = asyncio.create_task(self.runtime.listen(self.wake))
        flusher = asyncio.create_task(self._flush_loop())
        prober = asyncio.create_task(self._probe_loop())
        renewer = asyncio.create_task(self._renew_loop())
        try:
            await self._claim_loop(stop)
        finally:
            self._stopping = True
            await self._drain()
            # The housekeeping loops are told to stop, not cancelled: cancelling a task in
            # the middle of a database transaction could leave SQLite's write lock held.
            self._quit.set()
            listener.cancel()  # its own connection, no transaction
            self._flushed.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(listener, prober, renewer, flusher, return_exceptions=True)
            await self._flush()  # everything settled or released is written
            await self.transport.close()
            if self.webhooks is not None:
                await self.webhooks.close()
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
                if self._held or self._results:
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

    # --- claiming ----------------------------------------------------------------------

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self.options.capacity - len(self._held)
                claimed: list[ClaimedMessage] = []
                if free >= min(self.options.batch, self.options.capacity // 4 or 1):
                    claimed = await self._claim(min(free, self.options.batch))
                    self._dispatch(claimed)
                if claimed and len(claimed) >= min(free, self.options.batch):
                    continue  # more may be due: claim again while there is room
                self._wake.clear()
                waker = asyncio.create_task(self._wake.wait())
                flushed = asyncio.create_task(self._flushed.wait())
                await asyncio.wait(
                    {stopper, waker, flushed},
                    timeout=self.options.poll_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waker.cancel()
                flushed.cancel()
                self._flushed.clear()
        finally:
            stopper.cancel()

    async def _claim(self, limit: int) -> list[ClaimedMessage]:
        try:
            async with self.runtime.uow() as uow:
                claimed = await uow.outbox.claim(
                    self.name,
                    limit,
                    self.options.policy.lease,
                    self.clock(),
                    self.options.organizations,
                )
                await uow.commit()
        except Exception as exc:  # the database may be briefly away: try again later
            log.warning("claim failed", worker=self.name, error=type(exc).__name__)
            await asyncio.sleep(self.options.poll_interval)
            return []
        return claimed

    def _dispatch(self, messages: list[ClaimedMessage]) -> None:
        until = self.clock() + self.options.policy.lease
        for message in messages:
            self._held.add(message.id)
            self._lease_until[message.id] = until
            lane = self._lanes.get(message.organization_id)
            if lane is None:
                lane = self._lanes[message.organization_id] = _Lane(message.organization_id)
            lane.queue.append(message)
        for lane in list(self._lanes.values()):
            self._staff(lane)

    def _staff(self, lane: _Lane) -> None:
        """Start senders for a lane, up to its server's connection limit."""
        cached = self._settings.get(lane.organization_id)
        limit = cached[1].limits.max_connections if cached else 1
        while lane.queue and lane.senders < min(limit, len(lane.queue)):
            lane.senders += 1
            self._spawn(self._sender(lane))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending -----------------------------------------------------------------------

    async def _load_settings(
        self, organization_id: uuid.UUID
    ) -> tuple[SmtpSettings, SmtpSecrets] | str:
        cached = self._settings.get(organization_id)
        if cached and time.monotonic() - cached[0] < SETTINGS_TTL:
            return cached[1], cached[2]
        try:
            async with self.runtime.uow() as uow:
                settings, secrets = await smtp_config.load_for_sending(
                    uow, self.box, organization_id
                )
        except VisitmailError as exc:
            return exc.message
        self._settings[organization_id] = (time.monotonic(), settings, secrets)
        return settings, secrets

    async def _sender(self, lane: _Lane) -> None:
        # Webhooks go out without the SMTP server: its settings are loaded only when the
        # lane's next message is an email, and its failures and rate budget hold back
        # email only (``_defer_lane`` and ``_within_rate`` leave webhooks in the lane).
        smtp: tuple[SmtpSettings, SmtpSecrets] | None = None
        try:
            while lane.queue and not self._stopping:
                if lane.queue[0].kind is MessageKind.WEBHOOK:
                    await self._send_next(lane, smtp)
                    continue
                if smtp is None:
                    loaded = await self._load_settings(lane.organization_id)
                    if isinstance(loaded, str):
                        self._no_settings(lane, loaded)
                        continue
                    smtp = loaded
                    self._staff(lane)  # the real connection limit is known now
                    continue  # the lane may have changed while loading
                if not await self._within_rate(lane, smtp[0]):
                    continue
                settled = await self._send_next(lane, smtp)
                if settled is not None and settled.settlement.server_failure:
                    self._defer_lane(lane, settled.settlement.not_before)
        finally:
            lane.senders -= 1
            if not lane.queue and lane.senders == 0:
                self._lanes.pop(lane.organization_id, None)

    def _no_settings(self, lane: _Lane, reason: str) -> None:
        """No usable settings: one email records why (and counts against the server's
        health); the lane's other emails wait for the same retry time."""
        message = next((m for m in lane.queue if m.kind is not MessageKind.WEBHOOK), None)
        if message is None:
            return
        lane.queue.remove(message)
        outcome = AttemptOutcome(server_failure=FailureStage.CONNECT, failure_text=reason)
        settled = settle_message(message, outcome, now=self.clock(), policy=self.options.policy)
        self._record(settled, outcome)
        self._defer_lane(lane, settled.settlement.not_before)

    async def _send_next(
        self, lane: _Lane, smtp: tuple[SmtpSettings, SmtpSecrets] | None
    ) -> SettledMessage | None:
        """Send the lane's next message (an email only with ``smtp`` loaded)."""
        if not lane.queue:
            return None  # other senders emptied the lane meanwhile
        message = lane.queue[0]
        if message.kind is not MessageKind.WEBHOOK and smtp is None:
            return None  # the caller loads the settings first
        lane.queue.popleft()
        if self._lease_until.get(message.id, self.clock()) < self.clock():
            # Our lease ran out (renewal failed): another worker may own it now.
            self._held.discard(message.id)
            self._lease_until.pop(message.id, None)
            return None
        self._inflight.add(message.id)
        try:
            async with self._slots:
                if message.kind is MessageKind.WEBHOOK:
                    return await self._attempt_webhook(message)
                assert smtp is not None
                return await self._attempt(smtp[0], smtp[1], message)
        finally:
            self._inflight.discard(message.id)

    async def _attempt_webhook(self, message: ClaimedMessage) -> SettledMessage:
        started = time.monotonic()
        outcome = await self._webhook_outcome(message)
        ATTEMPT_SECONDS.observe(time.monotonic() - started)
        settled = settle_message(message, outcome, now=self.clock(), policy=self.options.policy)
        self._record(settled, outcome)
        return settled

    async def _webhook_outcome(self, message: ClaimedMessage) -> AttemptOutcome:
        """Sign with the secret named by ``meta["secret_ref"]`` and post; what cannot be
        sent is a per-recipient reply (550 for good, 451 to retry), never a server failure."""

        def refused(code: int, text: str) -> AttemptOutcome:
            return AttemptOutcome(
                results=[
                    RecipientResult(address, SmtpReply(code, text))
                    for address in message.open_recipients
                ]
            )

        name = message.meta.get("secret_ref", "")
        if self.webhooks is None:
            return refused(451, "webhook delivery is not configured in this worker")
        if not name:
            return refused(550, "the webhook names no secret (meta.secret_ref)")
        try:
            async with self.runtime.uow() as uow:
                secret = await webhooks.secret_for_delivery(
                    uow, self.box, message.organization_id, name
                )
        except VisitmailError as exc:  # no master key opens it: retry once it is restored
            return refused(451, exc.message)
        except Exception as exc:  # the database may be briefly away
            log.warning("webhook secret lookup failed", error=type(exc).__name__)
            return refused(451, "the webhook secret could not be read; retrying")
        if secret is None:
            return refused(550, f"webhook secret {name} is not defined")
        try:
            return await self.webhooks.deliver(message, secret)
        except Exception as exc:  # a transport bug must not lose the message
            log.error("webhook error", message=str(message.id), error=type(exc).__name__)
            return refused(451, f"webhook delivery error: {type(exc).__name__}")

    async def _attempt(
        self, settings: SmtpSettings, secrets: SmtpSecrets, message: ClaimedMessage
    ) -> SettledMessage:
        started = time.monotonic()
        try:
            outcome = await self.transport.send(message.organization_id, settings, secrets, message)
        except Exception as exc:  # a transport bug must not lose the message
            log.error("transport error", message=str(message.id), error=type(exc).__name__)
            outcome = AttemptOutcome(
                server_failure=FailureStage.PROTOCOL, failure_text=type(exc).__name__
            )
        ATTEMPT_SECONDS.observe(time.monotonic() - started)
        settled = settle_message(message, outcome, now=self.clock(), policy=self.options.policy)
        self._record(settled, outcome)
        return settled

    def _record(self, settled: SettledMessage, outcome: AttemptOutcome) -> None:
        for record in settled.attempts:
            ATTEMPTS.labels(outcome=record.outcome).inc()
        self._results.append(settled)
        if outcome.server_failure is not None:
            org = settled.message.organization_id
            self._failures.append((org, settled.settlement.last_error or ""))
        if settled.message.kind is MessageKind.WEBHOOK:
            return  # a receiver's 429 does not slow the organization's SMTP server down
        if settled.settlement.throttled:
            self._throttled.add(settled.message.organization_id)

    def _defer_lane(self, lane: _Lane, retry_at: datetime | None) -> None:
        """The server is unreachable: the lane's backlog goes back to the queue until the
        failed message's retry time, without counting an attempt for each. Webhooks stay:
        they do not go through that server."""
        self._release_email(lane, retry_at)

    def _release_email(self, lane: _Lane, retry_at: datetime | None) -> None:
        kept: deque[ClaimedMessage] = deque()
        while lane.queue:
            message = lane.queue.popleft()
            if message.kind is MessageKind.WEBHOOK:
                kept.append(message)
            else:
                self._releases.append((message.id, retry_at))
        lane.queue.extend(kept)

    async def _within_rate(self, lane: _Lane, settings: SmtpSettings) -> bool:
        limits = settings.limits
        if not (limits.per_minute or limits.per_hour or limits.per_day):
            return True
        now = self.clock()
        blocked = self._blocked_until.get(lane.organization_id)
        if blocked is None or blocked <= now:
            async with self.runtime.uow() as uow:
                granted = await uow.rates.take(lane.organization_id, limits, 1, now)
                await uow.commit()
            if granted:
                return True
            wait = 60.0 / limits.per_minute if limits.per_minute else 60.0
            self._blocked_until[lane.organization_id] = now + timedelta(seconds=wait)
        retry_at = self._blocked_until[lane.organization_id]
        self._release_email(lane, retry_at)  # the SMTP budget does not apply to webhooks
        return False

    # --- writing results ---------------------------------------------------------------

    async def _pause(self, seconds: float) -> bool:
        """Sleep, or return early when the worker stops; True means "go on"."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quit.wait(), seconds)
        return not self._quit.is_set()

    async def _flush_loop(self) -> None:
        while await self._pause(self.options.flush_interval):
            if self._results or self._releases or self._failures:
                await self._flush()
                self._flushed.set()

    async def _flush(self) -> None:
        results, self._results = self._results, []
        releases, self._releases = self._releases, []
        failures, self._failures = self._failures, []
        throttled, self._throttled = self._throttled, set()
        if not (results or releases or failures or throttled):
            return
        now = self.clock()
        policy = self.options.policy
        try:
            async with self.runtime.uow() as uow:
                if results:
                    await uow.outbox.settle(self.name, results, now)
                by_time: dict[datetime | None, list[uuid.UUID]] = {}
                for message_id, when in releases:
                    by_time.setdefault(when, []).append(message_id)
                for when, ids in by_time.items():
                    await uow.outbox.release(self.name, ids, now, not_before=when)
                healthy = sorted(
                    {
                        r.message.organization_id
                        for r in results
                        # a delivered webhook says nothing about the SMTP server's health
                        if not r.settlement.server_failure
                        and r.message.kind is not MessageKind.WEBHOOK
                    }
                    - {org for org, _ in failures}
                )
                # A server this worker recorded as healthy in the last few seconds needs no
                # new write (a round trip per flush saved); other workers' failures may have
                # counted since, so the record is refreshed every HEALTHY_TTL seconds.
                stale = time.monotonic() - HEALTHY_TTL
                fresh = [org for org in healthy if self._known_healthy.get(org, 0) < stale]
                await uow.health.record_successes(fresh, now)
                for org, reason in failures:
                    health = await uow.health.record_failure(
                        org,
                        reason,
                        now,
                        pause_after=policy.pause_after,
                        probe_in=policy.first_probe,
                    )
                    if health.paused and health.consecutive_failures == policy.pause_after:
                        log.warning("queue paused", organization=str(org), reason=reason)
                for org in throttled:
                    await uow.rates.slow_down(org, now)
                await uow.commit()
        except Exception as exc:
            # Not written: the leases will expire and another attempt will follow (flagged
            # as a possible duplicate). Sending twice, flagged, beats losing a message.
            log.error(
                "flush failed", worker=self.name, error=type(exc).__name__, detail=str(exc)[:300]
            )
        else:
            self._known_healthy.update(dict.fromkeys(fresh, time.monotonic()))
            for org, _ in failures:
                self._known_healthy.pop(org, None)
            for r in results:
                MESSAGES_SETTLED.labels(status=r.settlement.status.value).inc()
        for r in results:
            self._held.discard(r.message.id)
            self._lease_until.pop(r.message.id, None)
        for message_id, _ in releases:
            self._held.discard(message_id)
            self._lease_until.pop(message_id, None)

    # --- probing and housekeeping ------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Extend the leases of everything held, every third of a lease, so a slow server
        never lets another worker take over messages this one is still sending."""
        lease = self.options.policy.lease
        while await self._pause(lease.total_seconds() / 3):
            held = list(self._held)
            if not held:
                continue
            until = self.clock() + lease
            try:
                async with self.runtime.uow() as uow:
                    await uow.outbox.extend_leases(self.name, held, until)
                    await uow.commit()
                for message_id in held:
                    if message_id in self._lease_until:
                        self._lease_until[message_id] = until
            except Exception as exc:
                log.warning("lease renewal failed", worker=self.name, error=type(exc).__name__)

    async def _probe_loop(self) -> None:
        last_purge = 0.0
        while await self._pause(self.options.probe_interval):
            try:
                await self._probe_once()
                if time.monotonic() - last_purge > 3600:
                    last_purge = time.monotonic()
                    async with self.runtime.uow() as uow:
                        purged = await uow.outbox.purge(
                            self.clock() - self.options.policy.retention
                        )
                        await uow.commit()
                    if purged:
                        log.info("retention cleanup", purged=purged)
            except Exception as exc:
                log.warning("probe loop error", error=type(exc).__name__)

    async def _probe_once(self) -> None:
        now = self.clock()
        async with self.runtime.uow() as uow:
            due = await uow.health.due_probes(now)
        for org in due:
            self._settings.pop(org, None)
            loaded = await self._load_settings(org)
            reason = loaded if isinstance(loaded, str) else await self.transport.probe(org, *loaded)
            async with self.runtime.uow() as uow:
                health = await uow.health.get(org)
                if reason is None:
                    await uow.health.resume(org, self.clock())
                    log.info("queue resumed", organization=str(org))
                else:
                    previous = (
                        health.next_probe_at - health.paused_at
                        if health and health.next_probe_at and health.paused_at
                        else None
                    )
                    interval = next_probe_interval(previous, self.options.policy)
                    await uow.health.probe_failed(org, reason, self.clock() + interval)
                await uow.commit()
            if reason is None:
                self.wake()

    async def _drain(self) -> None:
        """Shutdown: nothing new starts; conversations in flight get ``grace`` seconds."""
        for lane in list(self._lanes.values()):
            while lane.queue:
                self._releases.append((lane.queue.popleft().id, None))
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=self.options.grace)
            cut = set(self._inflight)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if cut:
                # Cut off mid-conversation: they may have reached the server. They stay
                # leased; when the lease expires they are retried, flagged as possible
                # duplicates, rather than silently resent now.
                log.warning("shutdown cut conversations short", count=len(cut))
                self._held -= cut
        settled = {r.message.id for r in self._results}
        released = {m for m, _ in self._releases}
        leftover = self._held - settled - released
        self._releases.extend((m, None) for m in leftover)
