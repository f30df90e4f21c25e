"""The dev inbox (``serve --dev-inbox``) as each organization's admin sees it.

Who sees a mail: the local SMTP sink accepts mail from anyone who can reach its port, so
nothing a received mail says about itself (From, an ``X-`` header, the envelope) proves
which organization sent it. A mail belongs to an organization when its Message-ID is the
Message-ID of one of that organization's outbox messages: visitmail fixes every
Message-ID at enqueue (random, never chosen by a user), so another organization cannot
claim a mail without having seen it first. A mail with no Message-ID, with several, or
whose Message-ID no outbox message of this organization carries (mail from another
program) is shown to nobody. The connection test's message is not in the outbox: the
web process that runs the sink notes its Message-ID for the organization that ran the
test (:func:`note_test_message`; in memory, so such mail is shown until a restart, and
a test run by ``visitmail smtp test`` in another process is not shown).

Only ``admin`` reads the dev inbox: it holds every notification and follow-up, with the
leads' addresses. Another organization's mail answers :class:`NotFound`, exactly like a
name that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol
from uuid import UUID

from visitmail.domain.diagnosis import SENT_MESSAGE_ID, DiagnosisReport, StepName, StepStatus
from visitmail.domain.errors import NotFound
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services.identity import require_role
from visitmail.services.outbox_ports import OutboxUnitOfWork

READ_ROLE = Role.ADMIN
LIST_LIMIT = 200


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One mail the sink stored. ``message_id`` is ``None`` when the mail has none or
    several (it then belongs to nobody)."""

    name: str
    received_at: datetime
    mail_from: str
    rcpt_to: list[str]
    subject: str
    message_id: str | None
    size: int


class DevMailbox(Protocol):
    """What the sink stored (``adapters/devinbox``)."""

    def received(self) -> list[ReceivedMail]:
        """Every stored mail, newest first."""
        ...

    def summary(self, name: str) -> ReceivedMail:
        """One stored mail; ``KeyError`` for a name that is not one of the mailbox's."""
        ...

    def parse(self, name: str) -> EmailMessage:
        """The whole stored message; ``KeyError`` as :meth:`summary`."""
        ...

    def note(self, message_id: str, organization_id: UUID) -> None:
        """Remember that ``organization_id`` sent ``message_id`` outside the outbox (the
        connection test); only the newest few thousand are kept."""
        ...

    def noted(self, organization_id: UUID) -> set[str]:
        """The Message-IDs :meth:`note` remembers for ``organization_id``."""
        ...


async def list_mail(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, *, limit: int = LIST_LIMIT
) -> list[ReceivedMail]:
    """The newest ``limit`` mails of the principal's organization (admin only:
    ``PermissionDenied`` otherwise)."""
    require_role(principal, READ_ROLE)
    everything = mailbox.received()
    ids = {m.message_id for m in everything if m.message_id is not None}
    owned = await uow.outbox.owned_message_ids(principal.organization_id, ids)
    owned |= mailbox.noted(principal.organization_id)
    return [m for m in everything if m.message_id in owned][:limit]


async def open_mail(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, name: str
) -> EmailMessage:
    """One mail of the principal's organization (admin only). ``NotFound`` (field
    ``name``) for an unknown name and for another organization's mail alike."""
    require_role(principal, READ_ROLE)
    try:
        summary = mailbox.summary(name)
    except KeyError:
        raise NotFound("no such message", field="name") from None
    found = summary.message_id
    if found is None or not (
        found in mailbox.noted(principal.organization_id)
        or await uow.outbox.owned_message_ids(principal.organization_id, [found])
    ):
        raise NotFound("no such message", field="name")
    try:
        return mailbox.parse(name)
    except KeyError:
        raise NotFound("no such message", field="name") from None


def note_test_message(mailbox: DevMailbox, principal: Principal, report: DiagnosisReport) -> None:
    """After a connection test the principal ran: if it sent a test message, its
    Message-ID (made by the test, never by a user) belongs to the principal's
    organization."""
    for step in report.steps:
        message_id = step.details.get(SENT_MESSAGE_ID)
        sent = step.name is StepName.SEND and step.status is StepStatus.PASSED
        if sent and isinstance(message_id, str):
            mailbox.note(message_id, principal.organization_id)
