"""One outbox message as the operator reads it: the message and its attempts
(:func:`visitmail.services.outbox.get_message`), plus what it says (text, HTML,
attachments parsed from the stored MIME), the report it belongs to (``meta.report_id``)
and which of retry and cancel apply to its status (``domain.outbox.RETRYABLE`` /
``CANCELLABLE``, the rules the repository applies).

Same authority as reading the outbox (``outbox.READ_ROLE``); another organization's
message is :class:`NotFound`. A webhook's body is JSON, shown as text, never parsed as mail.
Parsing runs in a thread: a message may be 25 MB and the event loop serves everyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from visitmail.domain.errors import NotFound
from visitmail.domain.identity import Principal
from visitmail.domain.mail_view import (
    MAX_TEXT_CHARS,
    AttachmentInfo,
    MailView,
    attachment,
    view,
)
from visitmail.domain.outbox import MessageKind
from visitmail.services import outbox
from visitmail.services.identity import require_role
from visitmail.services.outbox_ports import MessageView, OutboxUnitOfWork


@dataclass(frozen=True, slots=True)
class StoredContent:
    kind: MessageKind
    mime: bytes
    meta: Mapping[str, object]


class MessageContents(Protocol):
    async def content(self, organization_id: UUID, message_id: UUID) -> StoredContent | None:
        """The stored bytes and meta of one message of the organization, or ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class MessageDetail:
    message: MessageView
    mail: MailView
    report_id: UUID | None

    @property
    def can_retry(self) -> bool:
        return self.message.status.retryable

    @property
    def can_cancel(self) -> bool:
        return self.message.status.cancellable


def _report_id(meta: Mapping[str, object]) -> UUID | None:
    value = meta.get("report_id")
    try:
        return UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


async def _content(contents: MessageContents, actor: Principal, message_id: UUID) -> StoredContent:
    require_role(actor, outbox.READ_ROLE)
    found = await contents.content(actor.organization_id, message_id)
    if found is None:
        raise NotFound("no such message")
    return found


async def message_detail(
    uow: OutboxUnitOfWork, contents: MessageContents, actor: Principal, message_id: UUID
) -> MessageDetail:
    message = await outbox.get_message(uow, actor, message_id)
    stored = await _content(contents, actor, message_id)
    if stored.kind is MessageKind.WEBHOOK:
        body = stored.mime.decode("utf-8", "replace")
        mail = MailView(
            text=body[:MAX_TEXT_CHARS],
            html=None,
            attachments=(),
            truncated=len(body) > MAX_TEXT_CHARS,
        )
    else:  # up to 25 MB of MIME: parsed off the event loop
        mail = await asyncio.to_thread(view, stored.mime)
    return MessageDetail(message=message, mail=mail, report_id=_report_id(stored.meta))


async def message_html(contents: MessageContents, actor: Principal, message_id: UUID) -> str:
    """The HTML part of a mail message; :class:`NotFound` when it has none."""
    stored = await _content(contents, actor, message_id)
    if stored.kind is MessageKind.WEBHOOK:
        raise NotFound("the message has no HTML part")
    html = (await asyncio.to_thread(view, stored.mime)).html
    if html is None:
        raise NotFound("the message has no HTML part")
    return html


async def message_attachment(
    contents: MessageContents, actor: Principal, message_id: UUID, index: int
) -> tuple[AttachmentInfo, bytes]:
    """Attachment ``index`` (as numbered in the detail) and its bytes, or :class:`NotFound`."""
    stored = await _content(contents, actor, message_id)
    found = None
    if stored.kind is not MessageKind.WEBHOOK:
        found = await asyncio.to_thread(attachment, stored.mime, index)
    if found is None:
        raise NotFound("no such attachment")
    return found
