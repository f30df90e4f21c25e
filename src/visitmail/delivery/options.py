"""How a delivery worker is sized and paced (:class:`WorkerOptions`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from visitmail.services.delivery import DeliveryPolicy

CLAIM_AHEAD = 8  # messages held per conversation slot at first (then sized by the pace)


@dataclass
class WorkerOptions:
    concurrency: int = 20  # SMTP conversations at once in this process
    batch: int = 100  # at most this many messages per claim
    poll_interval: float = 1.0  # fallback when no wake-up arrives
    flush_interval: float = 0.02
    probe_interval: float = 5.0
    grace: float = 25.0  # shutdown: seconds for conversations in flight to finish
    renew_every: float | None = None  # seconds between lease renewals; None: lease / 3
    organizations: frozenset[uuid.UUID] | None = None  # None: every organization
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    @property
    def capacity(self) -> int:
        """Messages held at once (in flight or waiting in a lane): only what this process
        can start soon, so other workers find the rest of a backlog still queued."""
        return max(1, min(self.batch, self.concurrency * CLAIM_AHEAD))
