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
name that does not exist, so ids cannot be probed. There is no operator role in the web
UI: mail no organization sent (another program's, a forgery) is shown to no one; the
operator reads it as ``.eml`` files in ``var/dev-inbox/``. Admins delete their own
organization's mail, one or all of it; "all" never touches another organization's mail
nor mail shown to nobody.

Which Message-IDs an organization sent is one indexed query per listing
(``outbox_messages (organization_id, message_id)``, migration 0016), whatever the size of
its outbox.

Search (:func:`checked_search`): at most :data:`SEARCH_MAX` characters, no control
characters; words (split on spaces) must all occur, case-insensitively, in the subject,
From/To/Cc, the envelope or the body text.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol
from uuid import UUID

from visitmail.domain.diagnosis import SENT_MESSAGE_ID, DiagnosisReport, StepName, StepStatus
from visitmail.domain.errors import InvalidInput, NotFound
from visitmail.domain.header_text import header_safe
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services import dev_inbox_content as content_of
from visitmail.services.identity import require_role
from visitmail.services.outbox_ports import OutboxUnitOfWork

READ_ROLE = Role.ADMIN
LIST_LIMIT = 25
SEARCH_MAX = 200


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
    sender: str = ""  # the From header, decoded
    attachments: int = 0
    search_text: str = ""  # lower-cased, bounded (services.dev_inbox_content.search_text)


@dataclass(frozen=True, slots=True)
class MailPage:
    """One page of an organization's mail; ``total`` counts every match."""

    mails: list[ReceivedMail]
    total: int


def summarize(
    name: str, received_at: datetime, mail_from: str, rcpt_to: list[str], raw: bytes
) -> ReceivedMail:
    """The listing's facts about one received mail (``raw`` as received, without the
    sink's envelope). ``message_id`` is ``None`` unless there is exactly one, and for a
    mail the ``email`` package cannot take apart (shown to nobody, never an error page)."""
    try:
        return _summarize(name, received_at, mail_from, rcpt_to, raw)
    except Exception:  # anyone can write to the sink: one odd mail must not break the list
        return ReceivedMail(name, received_at, mail_from, rcpt_to, "(unreadable)", None, len(raw))


def _summarize(
    name: str, received_at: datetime, mail_from: str, rcpt_to: list[str], raw: bytes
) -> ReceivedMail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    ids = message.get_all("Message-ID") or []
    message_id = "".join(_raw_header(message, "Message-ID").split()) if len(ids) == 1 else ""
    envelope = f"{mail_from} {' '.join(rcpt_to)}"
    return ReceivedMail(
        name=name,
        received_at=received_at,
        mail_from=mail_from,
        rcpt_to=rcpt_to,
        subject=_header(message, "Subject") or "(no subject)",
        message_id=message_id or None,
        size=len(raw),
        sender=_header(message, "From"),
        attachments=len(content_of.attachments(message)),
        search_text=content_of.search_text(message, envelope),
    )


def _raw_header(message: EmailMessage, key: str) -> str:
    """A header's undecoded text (a Message-ID is compared as sent)."""
    for k, v in message.raw_items():
        if k.lower() == key.lower():
            return str(v)
    return ""


def _header(message: EmailMessage, key: str) -> str:
    try:
        return str(message.get(key, ""))
    except Exception:  # a malformed header: shown raw, never an error
        return _raw_header(message, key)


def checked_search(search: str) -> list[str]:
    """The words of a search; ``InvalidInput`` (field ``q``) if it is too long or holds
    control characters."""
    if len(search) > SEARCH_MAX:
        raise InvalidInput(f"must be at most {SEARCH_MAX} characters", field="q")
    header_safe(search, field="q")
    return search.lower().split()


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

    def raw(self, name: str) -> bytes:
        """The message's bytes as the sink received them (without the envelope it
        noted); ``KeyError`` as :meth:`summary`."""
        ...

    def delete(self, name: str) -> None:
        """Forget one stored mail (nothing happens for a name that is not stored)."""
        ...

    def note(self, message_id: str, organization_id: UUID) -> None:
        """Remember that ``organization_id`` sent ``message_id`` outside the outbox (the
        connection test); only the newest few thousand are kept."""
        ...

    def noted(self, organization_id: UUID) -> set[str]:
        """The Message-IDs :meth:`note` remembers for ``organization_id``."""
        ...


async def _owned(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, mails: list[ReceivedMail]
) -> list[ReceivedMail]:
    ids = {m.message_id for m in mails if m.message_id is not None}
    owned = await uow.outbox.owned_message_ids(principal.organization_id, ids)
    owned |= mailbox.noted(principal.organization_id)
    return [m for m in mails if m.message_id in owned]


async def list_mail(
    uow: OutboxUnitOfWork,
    mailbox: DevMailbox,
    principal: Principal,
    *,
    search: str = "",
    limit: int = LIST_LIMIT,
    offset: int = 0,
) -> MailPage:
    """The principal's organization's mail, newest first, that matches ``search``; one
    page of ``limit`` from ``offset`` (admin only: ``PermissionDenied`` otherwise;
    ``InvalidInput`` for a bad search, see :func:`checked_search`)."""
    require_role(principal, READ_ROLE)
    words = checked_search(search)
    mine = await _owned(uow, mailbox, principal, mailbox.received())
    found = [m for m in mine if all(w in m.search_text for w in words)]
    return MailPage(found[offset : offset + limit], len(found))


async def _one(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, name: str
) -> ReceivedMail:
    require_role(principal, READ_ROLE)
    try:
        summary = mailbox.summary(name)
    except KeyError:
        raise NotFound("no such message", field="name") from None
    if not await _owned(uow, mailbox, principal, [summary]):
        raise NotFound("no such message", field="name")
    return summary


async def open_mail(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, name: str
) -> EmailMessage:
    """One mail of the principal's organization (admin only). ``NotFound`` (field
    ``name``) for an unknown name and for another organization's mail alike."""
    await _one(uow, mailbox, principal, name)
    try:
        return mailbox.parse(name)
    except KeyError:
        raise NotFound("no such message", field="name") from None


async def raw_mail(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, name: str
) -> bytes:
    """The bytes of one mail as received (the ``.eml`` download); errors as
    :func:`open_mail`."""
    await _one(uow, mailbox, principal, name)
    try:
        return mailbox.raw(name)
    except KeyError:
        raise NotFound("no such message", field="name") from None


async def open_attachment(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, name: str, index: int
) -> tuple[content_of.Attachment, bytes]:
    """Attachment ``index`` of one mail; ``NotFound`` (field ``attachment``) if the mail
    has none with that number, else errors as :func:`open_mail`."""
    found = content_of.attachment(await open_mail(uow, mailbox, principal, name), index)
    if found is None:
        raise NotFound("no such attachment", field="attachment")
    return found


async def delete_mail(
    uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal, name: str
) -> None:
    """Delete one mail of the principal's organization; errors as :func:`open_mail`."""
    await _one(uow, mailbox, principal, name)
    mailbox.delete(name)


async def delete_all(uow: OutboxUnitOfWork, mailbox: DevMailbox, principal: Principal) -> int:
    """Delete every mail of the principal's organization (admin only), and only those;
    how many were deleted."""
    require_role(principal, READ_ROLE)
    mine = await _owned(uow, mailbox, principal, mailbox.received())
    for mail in mine:
        mailbox.delete(mail.name)
    return len(mine)


def note_test_message(mailbox: DevMailbox, principal: Principal, report: DiagnosisReport) -> None:
    """After a connection test the principal ran: if it sent a test message, its
    Message-ID (made by the test, never by a user) belongs to the principal's
    organization."""
    for step in report.steps:
        message_id = step.details.get(SENT_MESSAGE_ID)
        sent = step.name is StepName.SEND and step.status is StepStatus.PASSED
        if sent and isinstance(message_id, str):
            mailbox.note(message_id, principal.organization_id)
