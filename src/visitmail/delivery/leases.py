"""The lease keeper: which messages this worker holds, and until when.

Contract: every claimed message is *held* from its claim until its outcome or its release
has been written (or, cut off at shutdown, given up to lease expiry). While held, its lease
is extended every third of a lease (or every ``every`` seconds), so a slow server never
lets another worker take over a message this one is still sending. A message whose lease
ran out here (renewal failed) is not sent: another worker may own it now. Lease times come
from the injected ``clock`` (the database compares them with the claimers' clocks); only
the renewal cadence is wall time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

from visitmail.logs import get_logger
from visitmail.runtime import Runtime

log = get_logger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        runtime: Runtime,
        worker: str,
        lease: timedelta,
        clock: Callable[[], datetime],
        *,
        every: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.worker = worker
        self.lease = lease
        self.clock = clock
        self.every = every if every is not None else lease.total_seconds() / 3
        self._until: dict[uuid.UUID, datetime] = {}

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._until

    def held(self) -> set[uuid.UUID]:
        return set(self._until)

    def hold(self, ids: Iterable[uuid.UUID]) -> None:
        """Just claimed (the claim wrote a full lease)."""
        until = self.clock() + self.lease
        for message_id in ids:
            self._until[message_id] = until

    def let_go(self, ids: Iterable[uuid.UUID]) -> None:
        """Settled or released (written), or given up to lease expiry."""
        for message_id in ids:
            self._until.pop(message_id, None)

    def valid(self, message_id: uuid.UUID) -> bool:
        """Still ours to send: held, and the lease has not run out."""
        until = self._until.get(message_id)
        return until is not None and until >= self.clock()

    async def run(self, pause: Callable[[float], Awaitable[bool]]) -> None:
        """Renew every ``every`` seconds until ``pause`` says stop."""
        while await pause(self.every):
            await self.renew()

    async def renew(self) -> None:
        held = list(self._until)
        if not held:
            return
        until = self.clock() + self.lease
        try:
            async with self.runtime.uow() as uow:
                renewed = await uow.outbox.extend_leases(self.worker, held, until)
                await uow.commit()
        except Exception as exc:
            log.warning("lease renewal failed", worker=self.worker, error=type(exc).__name__)
            return
        # Only what the database extended: a message skipped (its settlement was being
        # written) keeps the expiry it had, which is still a full two thirds of a lease.
        for message_id in renewed:
            if message_id in self._until:
                self._until[message_id] = until
