"""The settler: writes what happened, in batches.

Contract: the scheduler hands it settled messages (:meth:`record`), messages to give back
to the queue unchanged (:meth:`release`), and unused rate budget (:meth:`give_back`); a
:meth:`flush` writes everything collected so far in ONE transaction: outcomes and attempts
(only for messages this worker still leases), releases, the server's health (success
clears the failure count, connection/TLS/auth failures count towards a pause), throttling
(halves the shared rate), returned budget. It never raises.

A write that fails (the database restarts, fails over) is kept and tried again after
``FLUSH_RETRY_SECONDS``, together with whatever was collected meanwhile: its messages stay
held (the lease keeper renews them), so a message the server accepted is recorded as sent
once the database is back instead of going out a second time after lease expiry. The
write is safe to repeat: outcomes and releases apply only to messages this worker still
leases. Only the last flush at shutdown (once ``closing`` is set) gives up after one
try: its messages are left to lease expiry and a retry flagged as a possible duplicate,
which beats losing them. (A commit that went through but whose acknowledgement was lost
is repeated too: it then changes no message, but its attempt lines and failure counts
are written twice.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime

from visitmail.delivery.leases import LeaseKeeper
from visitmail.domain.outbox import AttemptOutcome, MessageKind
from visitmail.domain.smtp_settings import Limits
from visitmail.logs import get_logger
from visitmail.metrics import ATTEMPTS, MESSAGES_SETTLED
from visitmail.runtime import Runtime
from visitmail.services.delivery import DeliveryPolicy
from visitmail.services.outbox_ports import SettledMessage

log = get_logger(__name__)

HEALTHY_TTL = 5.0  # seconds a recorded success stands for later ones
FLUSH_RETRY_SECONDS = 0.5  # after a failed write, the wait before the next try


class Settler:
    def __init__(
        self,
        runtime: Runtime,
        worker: str,
        leases: LeaseKeeper,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self.runtime = runtime
        self.worker = worker
        self.leases = leases
        self.policy = policy
        self.clock = clock
        self._results: list[SettledMessage] = []
        self._releases: list[tuple[uuid.UUID, datetime | None]] = []
        # organization, reason, and whether only a person can repair it (pause at once)
        self._failures: list[tuple[uuid.UUID, str, bool]] = []
        self._throttled: set[uuid.UUID] = set()
        # organization -> (limits, unused message tokens, unused recipient units)
        self._unused: dict[uuid.UUID, tuple[Limits, int, int]] = {}
        self._known_healthy: dict[uuid.UUID, float] = {}  # org -> when recorded (monotonic)
        self._writing: set[uuid.UUID] = set()  # messages in the flush under way
        self._retry_at = 0.0  # monotonic time before which a failed write is not retried
        self.closing = False  # the worker stops: the next flush is the last one

    @property
    def pending(self) -> bool:
        return bool(
            self._results or self._releases or self._failures or self._throttled or self._unused
        )

    @property
    def has_results(self) -> bool:
        return bool(self._results)

    def unwritten(self) -> int:
        """Messages done with (settled or released) whose write is still to come."""
        return len(self._results) + len(self._releases) + len(self._writing)

    def settled_or_released(self) -> set[uuid.UUID]:
        """Messages done with whose write is still to come or under way."""
        return (
            {r.message.id for r in self._results} | {m for m, _ in self._releases} | self._writing
        )

    def record(self, settled: SettledMessage, outcome: AttemptOutcome) -> None:
        for line in settled.attempts:
            ATTEMPTS.labels(outcome=line.outcome).inc()
        self._results.append(settled)
        if outcome.server_failure is not None:
            org = settled.message.organization_id
            self._failures.append((org, settled.settlement.last_error or "", outcome.pause_queue))
        if settled.message.kind is MessageKind.WEBHOOK:
            return  # a receiver's 429 does not slow the organization's SMTP server down
        if settled.settlement.throttled:
            self._throttled.add(settled.message.organization_id)

    def release(self, message_id: uuid.UUID, not_before: datetime | None) -> None:
        """Back to the queue unchanged (its attempt not counted), due at ``not_before``."""
        self._releases.append((message_id, not_before))

    def give_back(
        self, organization_id: uuid.UUID, limits: Limits, unused: int, recipients: int = 0
    ) -> None:
        """Unused message tokens and recipient units, returned at the next flush."""
        if unused > 0 or recipients > 0:
            _, before, before_r = self._unused.get(organization_id, (limits, 0, 0))
            self._unused[organization_id] = (
                limits,
                before + max(0, unused),
                before_r + max(0, recipients),
            )

    def ready(self) -> bool:
        """Not waiting to retry a failed write (a flush now would try to write)."""
        return self.closing or time.monotonic() >= self._retry_at

    async def flush(self) -> bool:
        """Write what was collected; True if something was written. After a failed write,
        nothing is tried before ``FLUSH_RETRY_SECONDS`` (unless ``closing``)."""
        final = self.closing
        if not self.ready():
            return False
        results, self._results = self._results, []
        releases, self._releases = self._releases, []
        failures, self._failures = self._failures, []
        throttled, self._throttled = self._throttled, set()
        unused, self._unused = self._unused, {}
        if not (results or releases or failures or throttled or unused):
            return False
        now = self.clock()
        policy = self.policy
        fresh: list[uuid.UUID] = []
        self._writing = {r.message.id for r in results} | {m for m, _ in releases}
        try:
            async with self.runtime.uow() as uow:
                if results:
                    await uow.outbox.settle(self.worker, results, now)
                by_time: dict[datetime | None, list[uuid.UUID]] = {}
                for message_id, when in releases:
                    by_time.setdefault(when, []).append(message_id)
                for when, ids in by_time.items():
                    await uow.outbox.release(self.worker, ids, now, not_before=when)
                healthy = sorted(
                    {
                        r.message.organization_id
                        for r in results
                        # a delivered webhook says nothing about the SMTP server's health
                        if not r.settlement.server_failure
                        and r.message.kind is not MessageKind.WEBHOOK
                    }
                    - {org for org, _, _ in failures}
                )
                # A server this worker recorded as healthy in the last few seconds needs no
                # new write (a round trip per flush saved); other workers' failures may have
                # counted since, so the record is refreshed every HEALTHY_TTL seconds.
                stale = time.monotonic() - HEALTHY_TTL
                fresh = [org for org in healthy if self._known_healthy.get(org, 0) < stale]
                await uow.health.record_successes(fresh, now)
                for org, reason, at_once in failures:
                    pause_after = 1 if at_once else policy.pause_after
                    health = await uow.health.record_failure(
                        org, reason, now, pause_after=pause_after, probe_in=policy.first_probe
                    )
                    if health.paused_at == now:  # paused by this failure
                        log.warning("queue paused", organization=str(org), reason=reason)
                for org in throttled:
                    await uow.rates.slow_down(org, now)
                for org, (limits, count, recipients) in unused.items():
                    await uow.rates.give_back(org, limits, count, recipients=recipients)
                await uow.commit()
        except Exception as exc:
            log.error(
                "flush failed",
                worker=self.worker,
                error=type(exc).__name__,
                detail=str(exc)[:300],
                retry=not final,
            )
            self._writing = set()
            if not final:  # kept, still held: written on a later flush
                self._keep(results, releases, failures, throttled, unused)
                self._retry_at = time.monotonic() + FLUSH_RETRY_SECONDS
                return False
            # Shutting down: the leases will expire and another attempt will follow
            # (flagged as a possible duplicate). Sending twice, flagged, beats losing it.
        else:
            self._known_healthy.update(dict.fromkeys(fresh, time.monotonic()))
            for org, _, _ in failures:
                self._known_healthy.pop(org, None)
            for r in results:
                MESSAGES_SETTLED.labels(status=r.settlement.status.value).inc()
        self.leases.let_go(r.message.id for r in results)
        self.leases.let_go(message_id for message_id, _ in releases)
        self._writing = set()
        return True

    def _keep(
        self,
        results: list[SettledMessage],
        releases: list[tuple[uuid.UUID, datetime | None]],
        failures: list[tuple[uuid.UUID, str, bool]],
        throttled: set[uuid.UUID],
        unused: dict[uuid.UUID, tuple[Limits, int, int]],
    ) -> None:
        """Put a batch that could not be written back in front of what came since."""
        self._results[:0] = results
        self._releases[:0] = releases
        self._failures[:0] = failures
        self._throttled |= throttled
        for org, (limits, count, recipients) in unused.items():
            self.give_back(org, limits, count, recipients)
