"""Ports of webhook delivery and of the organization's webhook secrets; ``adapters/webhooks``
and ``adapters/db`` implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from visitmail.domain.outbox import AttemptOutcome
from visitmail.services.outbox_ports import ClaimedMessage
from visitmail.services.ports import AuditLog


@dataclass(frozen=True, slots=True)
class WebhookSecretInfo:
    """What may be shown about a stored secret: its name and dates, never its value."""

    name: str
    created_at: datetime
    updated_at: datetime


class WebhookSecretRepository(Protocol):
    """Named, sealed webhook secrets of one organization (every query is scoped by it)."""

    async def list(self, organization_id: UUID) -> Sequence[WebhookSecretInfo]: ...

    async def get_sealed(self, organization_id: UUID, name: str) -> str | None:
        """The secret-box token stored under ``name``, or ``None``."""
        ...

    async def put(self, organization_id: UUID, name: str, sealed: str, now: datetime) -> bool:
        """Create or replace; ``True`` if it was created."""
        ...

    async def delete(self, organization_id: UUID, name: str) -> bool: ...

    async def organizations_with_secrets(self) -> Sequence[UUID]:
        """Every organization holding at least one secret (key rotation)."""
        ...

    async def sealed_all(self, organization_id: UUID) -> Sequence[tuple[str, str]]:
        """``(name, token)`` of every secret of the organization (key rotation)."""
        ...

    async def replace_sealed(self, organization_id: UUID, name: str, *, old: str, new: str) -> bool:
        """Compare-and-swap one token; ``False`` if it changed meanwhile."""
        ...


class WebhookUnitOfWork(Protocol):
    """One transaction with the webhook secrets (the SQL unit of work has them)."""

    webhook_secrets: WebhookSecretRepository
    audit: AuditLog

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class WebhookDeliverer(Protocol):
    """Delivers one outbox message of kind ``webhook``: an HTTP POST of its payload."""

    async def deliver(self, message: ClaimedMessage, secret: str) -> AttemptOutcome:
        """One attempt, signed with ``secret``. Never raises for the receiver's behaviour:
        every HTTP answer, refusal or network failure is a per-recipient result (the URL is
        the recipient), so a failing receiver never counts against the SMTP server."""
        ...

    async def close(self) -> None: ...
