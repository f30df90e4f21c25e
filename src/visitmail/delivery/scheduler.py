"""The claimer and scheduler (Postfix's qmgr): claims due messages, queues them in one
lane per organization, and staffs each lane with senders that hand messages to the
channels.

Contract:

- it claims only what this process can start soon (``WorkerOptions.capacity``, sized by
  its conversation slots and its recent pace), so other workers find the rest of a
  backlog still queued; it claims again when room frees up, on a wake-up (an enqueue
  here, ``LISTEN/NOTIFY``), after a flush, or at the polling interval;
- a lane has at most the server's ``max_connections`` senders in this process; each
  email takes a token from the shared rate budget first; webhooks do not use the SMTP
  server, so its settings, failures and budget hold back email only;
- a sender that already holds the lane's next email names it as ``following``, so the
  SMTP channel can send its envelope behind the current body (one round trip per message);
  it delivers that message next, or gives it back;
- a server that cannot be reached defers the lane's whole backlog at once (one
  connection attempt per round), so a broken organization never holds the others up;
- shutdown (:meth:`drain`): nothing new starts, and what waits in the lanes goes back to
  the queue at once (no lease, attempt not counted), so another worker can take it while
  this one finishes; conversations in flight get ``grace`` seconds (or until ``hurry``).
  What is still in flight then is cut off (``Channel.abort``) and goes back to the queue
  too, due at once: unflagged if its final ``.`` had not been written (the server cannot
  have it), as the unknown outcome (flagged as a possible duplicate, retried once with
  the same Message-ID) if it had. Nothing stays leased by a stopped worker.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime

from visitmail.delivery.budget import RESERVE_MAX, LaneBudget, RateBudget
from visitmail.delivery.channels import Channel, SmtpChannel
from visitmail.delivery.leases import LeaseKeeper
from visitmail.delivery.options import WorkerOptions
from visitmail.delivery.settler import Settler
from visitmail.domain.outbox import AttemptOutcome, FailureStage, MessageKind
from visitmail.domain.smtp_settings import Limits
from visitmail.logs import get_logger
from visitmail.metrics import ATTEMPT_SECONDS
from visitmail.runtime import Runtime
from visitmail.services.delivery import settle_message
from visitmail.services.outbox_ports import ClaimedMessage, SettledMessage

log = get_logger(__name__)

ABORT_WAIT = 2.0  # seconds cut-off conversations get to end before their tasks are cancelled
PACE_WINDOW = 1.0  # seconds over which the delivery pace is measured
PACE_HORIZON = 0.5  # hold about this many seconds of work at the current pace, plus
# twice what a claim takes lately, so the lanes do not run dry while the next claim runs


@dataclass
class Lane:
    organization_id: uuid.UUID
    queue: deque[ClaimedMessage] = field(default_factory=deque)
    senders: int = 0
    budget: LaneBudget = field(default_factory=LaneBudget)


class Scheduler:
    def __init__(
        self,
        runtime: Runtime,
        name: str,
        options: WorkerOptions,
        clock: Callable[[], datetime],
        *,
        smtp: SmtpChannel,
        webhooks: Channel,
        leases: LeaseKeeper,
        settler: Settler,
        budget: RateBudget,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.options = options
        self.clock = clock
        self.smtp = smtp
        self.webhooks = webhooks
        self.leases = leases
        self.settler = settler
        self.budget = budget
        self.lanes: dict[uuid.UUID, Lane] = {}
        self.inflight: set[uuid.UUID] = set()
        self.stopping = False
        self.cutting = False  # shutdown's grace ran out: conversations are being cut off
        self._carried: set[uuid.UUID] = set()  # taken as ``following``, not yet delivered
        self._given_back: set[uuid.UUID] = set()  # carried ones shutdown released early
        self.shutdown_counts: Counter[str] = Counter()  # what shutdown did, for its log line
        self.wakeup = asyncio.Event()
        self.flushed = asyncio.Event()
        self._slots = asyncio.Semaphore(options.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._done = 0  # attempts finished, for the pace
        self._pace = 0.0  # attempts per second, recently
        self._pace_at = (time.monotonic(), 0)
        self._claim_seconds = 0.0  # a claim's duration lately (moving average)

    # --- claiming ----------------------------------------------------------------------

    def capacity(self) -> int:
        """How many messages to hold: the configured capacity, or more when the recent
        pace would finish that in less than ``PACE_HORIZON`` (never above ``batch``)."""
        now = time.monotonic()
        since, done = self._pace_at
        if now - since >= PACE_WINDOW:
            self._pace = (self._done - done) / (now - since)
            self._pace_at = (now, self._done)
        paced = int(self._pace * (PACE_HORIZON + 2 * self._claim_seconds))
        return max(self.options.capacity, min(paced, self.options.batch))

    async def claim_loop(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                capacity = self.capacity()
                # held and still to send; what is done waits only for its write
                free = capacity - (len(self.leases) - self.settler.unwritten())
                claimed: list[ClaimedMessage] = []
                if free >= max(1, capacity // 4):
                    claimed = await self._claim(free)
                    self._dispatch(claimed)
                if claimed and len(claimed) >= free:
                    continue  # more may be due: claim again while there is room
                self.wakeup.clear()
                waker = asyncio.create_task(self.wakeup.wait())
                flushed = asyncio.create_task(self.flushed.wait())
                await asyncio.wait(
                    {stopper, waker, flushed},
                    timeout=self.options.poll_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waker.cancel()
                flushed.cancel()
                self.flushed.clear()
        finally:
            stopper.cancel()

    async def _claim(self, limit: int) -> list[ClaimedMessage]:
        started = time.monotonic()
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
        took = time.monotonic() - started
        self._claim_seconds = (
            took if not self._claim_seconds else 0.8 * self._claim_seconds + 0.2 * took
        )
        return claimed

    def _dispatch(self, messages: list[ClaimedMessage]) -> None:
        self.leases.hold(m.id for m in messages)
        for message in messages:
            lane = self.lanes.get(message.organization_id)
            if lane is None:
                lane = self.lanes[message.organization_id] = Lane(message.organization_id)
            lane.queue.append(message)
        for lane in list(self.lanes.values()):
            self._staff(lane)

    def _staff(self, lane: Lane) -> None:
        """Start senders for a lane, up to its server's connection limit."""
        settings = self.smtp.cached(lane.organization_id)
        limit = settings.limits.max_connections if settings else 1
        while lane.queue and lane.senders < min(limit, len(lane.queue)):
            lane.senders += 1
            self._spawn(self._sender(lane))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending -----------------------------------------------------------------------

    async def _sender(self, lane: Lane) -> None:
        carry: ClaimedMessage | None = None  # taken as ``following``: delivered next
        limits: Limits | None = None
        try:
            while not self.stopping:
                if carry is not None:
                    message, carry = carry, None
                else:
                    taken = await self._take(lane)
                    if taken is None:
                        if lane.queue:
                            continue  # settings loaded or budget refused: look again
                        break
                    message, limits = taken
                following = self._following(lane, message, limits)
                settled = await self._deliver(message, following)
                carry = following
                if settled is None:  # shutdown: given back, not attempted
                    if limits is not None and message.kind is not MessageKind.WEBHOOK:
                        self.budget.refund(lane.budget, limits, _recipients(message))
                    break
                if settled.settlement.server_failure and message.kind is not MessageKind.WEBHOOK:
                    retry_at = settled.settlement.not_before
                    if carry is not None:
                        self._give_back(lane, carry, retry_at, limits)
                        carry = None
                    self._release_email(lane, retry_at)
        finally:
            if carry is not None:
                self._give_back(lane, carry, None, limits)
            lane.senders -= 1
            if not lane.queue and lane.senders == 0:
                self.budget.give_back(lane.organization_id, lane.budget)
                self.lanes.pop(lane.organization_id, None)

    async def _take(self, lane: Lane) -> tuple[ClaimedMessage, Limits | None] | None:
        """The lane's next message, with a rate token if it is an email; ``None`` when the
        lane is empty, or when the lane changed meanwhile (the caller looks again)."""
        if not lane.queue:
            return None
        if lane.queue[0].kind is MessageKind.WEBHOOK:
            return self._pop(lane, None)
        try:
            loaded = await self.smtp.settings(lane.organization_id)
        except Exception as exc:
            await self._database_away("settings", exc)
            return None
        if isinstance(loaded, str):
            self._no_settings(lane, loaded)
            return None
        limits = loaded[0].limits
        if lane.senders < limits.max_connections:
            self._staff(lane)  # the real connection limit is known now
        waiting = len(lane.queue)
        head = lane.queue[0]
        upcoming = itertools.islice(lane.queue, RESERVE_MAX)
        waiting_recipients = sum(_recipients(m) for m in upcoming)
        try:
            retry_at = await self.budget.take(
                lane.organization_id,
                lane.budget,
                limits,
                waiting,
                _recipients(head),
                waiting_recipients,
            )
        except Exception as exc:
            await self._database_away("rate budget", exc)
            return None
        if retry_at is not None:
            self._release_email(lane, retry_at)  # the SMTP budget does not apply to webhooks
            return None
        if not lane.queue or lane.queue[0] is not head:
            # The lane changed while waiting: what was taken was sized for ``head``.
            self.budget.refund(lane.budget, limits, _recipients(head))
            return None
        return self._pop(lane, limits)

    async def _database_away(self, what: str, exc: Exception) -> None:
        """A read this sender needs failed with the database (a restart, a failover): the
        lane keeps its messages (still leased, renewed) and the sender looks again after
        a poll interval. Letting the exception end the sender would leave the lane's
        messages held with nobody to send them."""
        log.warning(
            "database unavailable", worker=self.name, reading=what, error=type(exc).__name__
        )
        await asyncio.sleep(self.options.poll_interval)

    def _pop(
        self, lane: Lane, limits: Limits | None
    ) -> tuple[ClaimedMessage, Limits | None] | None:
        message = lane.queue.popleft()
        if not self.leases.valid(message.id):
            # Our lease ran out (renewal failed): another worker may own it now.
            self.leases.let_go([message.id])
            if limits is not None:
                self.budget.refund(lane.budget, limits, _recipients(message))
            return None
        return message, limits

    def _following(
        self, lane: Lane, message: ClaimedMessage, limits: Limits | None
    ) -> ClaimedMessage | None:
        """The lane's next email, taken now if it needs no wait (a token at hand), so its
        envelope can ride behind ``message``'s body."""
        if message.kind is MessageKind.WEBHOOK or limits is None or self.stopping:
            return None
        if not _email_first(lane):
            return None
        head = lane.queue[0]
        if not head.open_recipients or not self.leases.valid(head.id):
            return None
        if not self.budget.take_local(lane.budget, limits, _recipients(head)):
            return None
        self._carried.add(head.id)
        return lane.queue.popleft()

    def _give_back(
        self,
        lane: Lane,
        message: ClaimedMessage,
        retry_at: datetime | None,
        limits: Limits | None,
    ) -> None:
        """A message taken as ``following`` is not delivered: drop what was prepared for
        it, return its token, and release it."""
        self.smtp.forget(message.id)
        self._carried.discard(message.id)
        if limits is not None:
            self.budget.refund(lane.budget, limits, _recipients(message))
        if message.id not in self._given_back:
            self.settler.release(message.id, retry_at)

    async def _deliver(
        self, message: ClaimedMessage, following: ClaimedMessage | None
    ) -> SettledMessage | None:
        """One attempt, recorded for the settler; ``None`` when shutdown gave the message
        back instead (it had not started, or it was cut off before its final ``.``)."""
        channel = self.webhooks if message.kind is MessageKind.WEBHOOK else self.smtp
        self._carried.discard(message.id)
        self.inflight.add(message.id)
        try:
            async with self._slots:
                if self.stopping:  # waited for a slot while shutdown began: never started
                    self.settler.release(message.id, None)
                    self.shutdown_counts["released"] += 1
                    return None
                started = time.monotonic()
                outcome = await channel.deliver(message, following=following)
                ATTEMPT_SECONDS.observe(time.monotonic() - started)
        except asyncio.CancelledError:
            # Still running after ``Channel.abort`` ended every SMTP conversation that had
            # a connection, so no final dot was written (it was connecting, or posting a
            # webhook, which carries its id): back to the queue, due at once, uncounted.
            self.settler.release(message.id, None)
            self.shutdown_counts["cut_before_data"] += 1
            raise
        finally:
            self.inflight.discard(message.id)
            self._done += 1
        if self.cutting:
            if outcome.server_failure is not None:
                # Our own abort broke the conversation before the final dot: the server
                # has nothing, so this is no attempt and no server failure.
                self.settler.release(message.id, None)
                self.shutdown_counts["cut_before_data"] += 1
                return None
            self.shutdown_counts["cut_after_data" if outcome.unknown else "finished"] += 1
        elif self.stopping:
            self.shutdown_counts["finished"] += 1
        settled = settle_message(message, outcome, now=self.clock(), policy=self.options.policy)
        self.settler.record(settled, outcome)
        return settled

    def _no_settings(self, lane: Lane, reason: str) -> None:
        """No usable settings: one email records why (and counts against the server's
        health); the lane's other emails wait for the same retry time."""
        message = next((m for m in lane.queue if m.kind is not MessageKind.WEBHOOK), None)
        if message is None:
            return
        lane.queue.remove(message)
        outcome = AttemptOutcome(server_failure=FailureStage.CONNECT, failure_text=reason)
        settled = settle_message(message, outcome, now=self.clock(), policy=self.options.policy)
        self.settler.record(settled, outcome)
        self._release_email(lane, settled.settlement.not_before)

    def _release_email(self, lane: Lane, retry_at: datetime | None) -> None:
        """The lane's emails go back to the queue until ``retry_at`` without counting an
        attempt (server unreachable, budget spent); webhooks stay: they do not go through
        that server. The lane's unused rate tokens go back too."""
        kept: deque[ClaimedMessage] = deque()
        while lane.queue:
            message = lane.queue.popleft()
            if message.kind is MessageKind.WEBHOOK:
                kept.append(message)
            else:
                self.settler.release(message.id, retry_at)
        lane.queue.extend(kept)
        self.budget.give_back(lane.organization_id, lane.budget)

    # --- shutdown ----------------------------------------------------------------------

    def stop_starting(self) -> None:
        """Nothing new starts; what waits in the lanes goes back to the queue (written by
        the next flush, so another worker can take it while this one finishes)."""
        self.stopping = True
        for lane in list(self.lanes.values()):
            while lane.queue:
                self.settler.release(lane.queue.popleft().id, None)
                self.shutdown_counts["released"] += 1
            self.budget.give_back(lane.organization_id, lane.budget)
        # Messages a sender holds as its next one: never started after this (the sender
        # stops), so they go back now too, not after the conversation in front of them.
        for message_id in self._carried:
            self.settler.release(message_id, None)
            self._given_back.add(message_id)
            self.shutdown_counts["released"] += 1

    async def drain(self, hurry: asyncio.Event) -> None:
        """Stop starting, give conversations in flight ``grace`` seconds (less if
        ``hurry`` is set), then cut off the rest (see the module's contract)."""
        self.stop_starting()
        log.info(
            "shutdown: no new conversations",
            worker=self.name,
            in_flight=len(self.inflight),
            released=self.shutdown_counts["released"],
            grace_seconds=self.options.grace,
        )
        if self._tasks and not hurry.is_set():
            everything = asyncio.create_task(asyncio.wait(set(self._tasks)))
            hurried = asyncio.create_task(hurry.wait())
            await asyncio.wait(
                {everything, hurried},
                timeout=self.options.grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
            everything.cancel()  # stops waiting only; the senders go on
            hurried.cancel()
        if self._tasks:
            self.cutting = True
            log.warning(
                "shutdown: cutting conversations short",
                worker=self.name,
                in_flight=len(self.inflight),
            )
            self.smtp.abort()
            self.webhooks.abort()
            _done, pending = await asyncio.wait(set(self._tasks), timeout=ABORT_WAIT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        leftover = self.leases.held() - self.settler.settled_or_released()
        for message_id in leftover:  # e.g. a following message whose sender was cancelled
            self.settler.release(message_id, None)
        counts = self.shutdown_counts
        log.info(
            "shutdown: conversations ended",
            worker=self.name,
            finished=counts["finished"],
            released=counts["released"] + counts["cut_before_data"],
            cut_before_data=counts["cut_before_data"],
            cut_after_data_flagged=counts["cut_after_data"],
        )


def _email_first(lane: Lane) -> bool:
    """The lane's next message is an email."""
    return bool(lane.queue) and lane.queue[0].kind is not MessageKind.WEBHOOK


def _recipients(message: ClaimedMessage) -> int:
    """The recipients an attempt at ``message`` addresses (its cost under
    ``recipients_per_day``)."""
    return len(message.open_recipients)
