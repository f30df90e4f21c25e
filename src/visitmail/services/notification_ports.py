"""Ports of the notification mapping and the notifications it sends.

``adapters/db/mapping_repo.py`` implements :class:`MappingRepository`; the web layer passes
in a :class:`MailRenderer` (``adapters/render/mime.py``) and a :class:`ReportPdf`
(``adapters/render/report_pdf.py``), so that services never import adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from visitmail.domain.mail import BuiltMessage, MailSpec
from visitmail.domain.reports import Report
from visitmail.services.dkim_ports import DkimKeyRepository
from visitmail.services.outbox_ports import OutboxUnitOfWork
from visitmail.services.ports import SmtpSettingsRepository
from visitmail.services.report_ports import ReportsUnitOfWork


@dataclass(frozen=True, slots=True)
class StoredMapping:
    """One revision of an organization's mapping: the document exactly as the admin sent it
    (decoded JSON), numbered 1, 2, 3, … per organization; at most one is ``active``."""

    id: UUID
    organization_id: UUID
    number: int
    document: Mapping[str, Any]
    active: bool
    created_at: datetime
    created_by: UUID | None
    activated_at: datetime | None


class MappingRepository(Protocol):
    async def active(
        self, organization_id: UUID, *, for_update: bool = False
    ) -> StoredMapping | None:
        """The active revision, or ``None`` if the organization never saved one.
        ``for_update``: first lock the organization's mapping against concurrent saves and
        activations until the transaction ends."""
        ...

    async def get(self, organization_id: UUID, revision_id: UUID) -> StoredMapping | None: ...

    async def list(
        self, organization_id: UUID, *, limit: int = 100, offset: int = 0
    ) -> Sequence[StoredMapping]:
        """Newest (highest number) first."""
        ...

    async def add(
        self,
        organization_id: UUID,
        document: Mapping[str, Any],
        *,
        actor_id: UUID | None,
        now: datetime,
    ) -> StoredMapping:
        """Store ``document`` as the next revision and make it the active one (the previous
        active revision is deactivated in the same transaction)."""
        ...

    async def activate(
        self, organization_id: UUID, revision_id: UUID, *, now: datetime
    ) -> StoredMapping | None:
        """Make the revision the active one; ``None`` if the organization has no such
        revision."""
        ...


class MailRenderer(Protocol):
    def build(self, spec: MailSpec) -> BuiltMessage:
        """The MIME bytes of ``spec`` (with a fresh Message-ID under the sender's domain
        when ``spec.message_id`` is ``None``)."""
        ...


class PdfUnavailable(Exception):
    """The report PDF cannot be rendered on this installation (e.g. a font is missing);
    the message says what to install. Raised by :meth:`ReportPdf.render`."""


class ReportPdf(Protocol):
    async def render(
        self,
        report: Report,
        event_name: str,
        questions: Sequence[tuple[str, str]],
        language: str,
    ) -> bytes:
        """The report as a PDF; ``questions`` are ``(label, formatted answer)`` pairs in
        questionnaire order. Raises :class:`PdfUnavailable`."""
        ...


class MappingUnitOfWork(ReportsUnitOfWork, Protocol):
    """What the mapping's use cases need: its revisions, events and reports (dry runs),
    the SMTP settings (the sender a dry run shows), the audit log, the DKIM key (signing
    what is queued)."""

    mappings: MappingRepository
    smtp_settings: SmtpSettingsRepository
    dkim_keys: DkimKeyRepository


class NotificationsUnitOfWork(MappingUnitOfWork, OutboxUnitOfWork, Protocol):
    """What firing the mapping needs: the above and the outbox (the SQL unit of work has
    every repository)."""
