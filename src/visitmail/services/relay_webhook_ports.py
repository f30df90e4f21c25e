"""What relay webhook endpoints need from storage and from the network (SNS)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from visitmail.domain.relay_events import RelayProvider


@dataclass(frozen=True, slots=True)
class RelayEndpoint:
    """One organization's endpoint for one relay; ``secret_sealed`` is a secret-box token."""

    id: UUID
    organization_id: UUID
    provider: RelayProvider
    username: str | None
    public_key: str | None
    topic_arn: str | None
    secret_sealed: str | None
    created_at: datetime
    last_event_at: datetime | None
    applied: int
    duplicates: int
    unmatched: int


class RelayWebhookRepository(Protocol):
    async def list(self, organization_id: UUID) -> Sequence[RelayEndpoint]: ...

    async def get(self, organization_id: UUID, provider: RelayProvider) -> RelayEndpoint | None: ...

    async def by_token_hash(self, provider: RelayProvider, token_hash: str) -> RelayEndpoint | None:
        """The endpoint whose URL token hashes to ``token_hash`` (any organization)."""
        ...

    async def create(
        self, organization_id: UUID, provider: RelayProvider, token_hash: str, now: datetime
    ) -> bool:
        """``False`` if the organization already has an endpoint for ``provider``."""
        ...

    async def set_verification(
        self,
        organization_id: UUID,
        provider: RelayProvider,
        *,
        username: str | None,
        public_key: str | None,
        topic_arn: str | None,
        secret_sealed: str | None,
        now: datetime,
    ) -> None: ...

    async def delete(self, organization_id: UUID, provider: RelayProvider) -> bool: ...

    async def count(
        self, endpoint_id: UUID, *, applied: int, duplicates: int, unmatched: int, now: datetime
    ) -> None:
        """Add to the endpoint's counters and set its last event time."""
        ...

    async def organizations_with_secrets(self) -> Sequence[UUID]: ...

    async def sealed_all(self, organization_id: UUID) -> Sequence[tuple[RelayProvider, str]]: ...

    async def replace_sealed(
        self, organization_id: UUID, provider: RelayProvider, *, old: str, new: str
    ) -> bool: ...


class SnsClient(Protocol):
    """The two requests SNS needs of visitmail; URLs are checked before they get here."""

    async def certificate(self, url: str) -> bytes:
        """The PEM signing certificate at ``url`` (cached by the implementation)."""
        ...

    async def confirm_subscription(self, url: str) -> None:
        """GET the SubscribeURL; raises on failure."""
        ...
