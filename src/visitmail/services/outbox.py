"""Outbox use cases: enqueue (inside the caller's transaction), and the operator's views
and actions on messages.

Who may do what: every use case that causes mail enqueues on its own authority; reading
the outbox needs ``event_curator`` (bulk senders follow their progress) and retrying or
cancelling needs ``admin``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from uuid import UUID

from visitmail.domain.addresses import normalize_email, refuse_line_breaks
from visitmail.domain.errors import Conflict, InvalidInput, NotFound
from visitmail.domain.identity import Principal
from visitmail.domain.outbox import MessageKind, MessageStatus
from visitmail.domain.roles import Role
from visitmail.services import webhooks
from visitmail.services.clock import Clock, utcnow
from visitmail.services.identity import require_role
from visitmail.services.outbox_ports import (
    Enqueued,
    MessageView,
    NewMessage,
    NewRecipient,
    OutboxUnitOfWork,
)

MAX_RECIPIENTS = 100
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
_MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
READ_ROLE = Role.EVENT_CURATOR
ACT_ROLE = Role.ADMIN


def checked(message: NewMessage) -> NewMessage:
    """Refuse what must never reach the wire: no recipients, bad addresses, header
    injection, an oversize body, a malformed Message-ID."""
    if not message.recipients:
        raise InvalidInput("at least one recipient is required", field="recipients")
    if len(message.recipients) > MAX_RECIPIENTS:
        raise InvalidInput(f"at most {MAX_RECIPIENTS} recipients", field="recipients")
    if message.kind is MessageKind.WEBHOOK:
        recipients = _webhook_recipients(message)
    else:
        recipients = [
            NewRecipient(normalize_email(r.address, field=f"recipients[{i}]"), r.role)
            for i, r in enumerate(message.recipients)
        ]
    for i, r in enumerate(recipients):
        if r.role not in ("to", "cc", "bcc"):
            raise InvalidInput("must be to, cc or bcc", field=f"recipients[{i}].role")
    refuse_line_breaks(message.subject, field="subject")
    refuse_line_breaks(message.idempotency_key, field="idempotency_key")
    if not message.idempotency_key or len(message.idempotency_key) > 200:
        raise InvalidInput("must be 1 to 200 characters", field="idempotency_key")
    if not _MESSAGE_ID.match(message.message_id):
        raise InvalidInput("must look like <local@domain>", field="message_id")
    if len(message.mime) > MAX_MESSAGE_BYTES:
        raise InvalidInput("the message is larger than 25 MB", field="mime")
    return NewMessage(
        organization_id=message.organization_id,
        kind=message.kind,
        idempotency_key=message.idempotency_key,
        message_id=message.message_id,
        mail_from=normalize_email(message.mail_from, field="mail_from"),
        subject=message.subject,
        mime=message.mime,
        recipients=recipients,
        priority=message.priority,
        not_before=message.not_before,
        expires_at=message.expires_at,
        meta=message.meta,
    )


def _webhook_recipients(message: NewMessage) -> list[NewRecipient]:
    """A webhook has one recipient, its URL (https, or http to localhost only); the
    ``meta`` it is sent with may not smuggle line breaks into the request's headers."""
    if len(message.recipients) != 1:
        raise InvalidInput("a webhook has exactly one recipient: its URL", field="recipients")
    (recipient,) = message.recipients
    if recipient.role != "to":
        raise InvalidInput("must be to", field="recipients[0].role")
    url = webhooks.check_url(recipient.address, field="recipients[0]")
    for key, value in message.meta.items():
        refuse_line_breaks(value, field=f"meta.{key}")
    if "secret_ref" in message.meta:
        webhooks.check_name(message.meta["secret_ref"], field="meta.secret_ref")
    return [NewRecipient(url, "to")]


async def enqueue(uow: OutboxUnitOfWork, message: NewMessage, *, clock: Clock = utcnow) -> Enqueued:
    """Add ``message`` to the outbox in the caller's transaction (the caller commits, so the
    message exists exactly when the event that caused it does). A repeated idempotency key
    returns the first message."""
    return await uow.outbox.enqueue(checked(message), clock())


async def enqueue_many(
    uow: OutboxUnitOfWork, messages: Sequence[NewMessage], *, clock: Clock = utcnow
) -> list[Enqueued]:
    """:func:`enqueue` for many messages at once (one result each, in order), in the
    caller's transaction. Every message is checked before the first write: an invalid one
    raises and nothing is added."""
    valid = [checked(m) for m in messages]
    return await uow.outbox.enqueue_many(valid, clock()) if valid else []


async def list_messages(
    uow: OutboxUnitOfWork,
    actor: Principal,
    *,
    status: MessageStatus | None = None,
    kind: MessageKind | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[MessageView]:
    require_role(actor, READ_ROLE)
    return await uow.outbox.list(
        actor.organization_id, status=status, kind=kind, limit=limit, offset=offset
    )


async def get_message(uow: OutboxUnitOfWork, actor: Principal, message_id: UUID) -> MessageView:
    require_role(actor, READ_ROLE)
    found = await uow.outbox.get(actor.organization_id, message_id)
    if found is None:
        raise NotFound("no such message")
    return found


async def counts(uow: OutboxUnitOfWork, actor: Principal) -> dict[MessageStatus, int]:
    require_role(actor, READ_ROLE)
    return await uow.outbox.counts(actor.organization_id)


async def retry_message(
    uow: OutboxUnitOfWork, actor: Principal, message_id: UUID, *, clock: Clock = utcnow
) -> MessageView:
    """Send again now: failed, expired, cancelled or waiting messages; its unaccepted
    recipients are tried again. A message being sent or already sent is a conflict."""
    require_role(actor, ACT_ROLE)
    current = await get_message(uow, actor, message_id)
    if not await uow.outbox.retry(actor.organization_id, message_id, clock()):
        raise Conflict(f"a {current.status.value} message cannot be retried", field="status")
    await uow.commit()
    return await get_message(uow, actor, message_id)


async def cancel_message(
    uow: OutboxUnitOfWork, actor: Principal, message_id: UUID, *, clock: Clock = utcnow
) -> MessageView:
    """Stop a queued or deferred message; one being sent right now cannot be stopped."""
    require_role(actor, ACT_ROLE)
    current = await get_message(uow, actor, message_id)
    if not await uow.outbox.cancel(actor.organization_id, message_id, clock()):
        raise Conflict(f"a {current.status.value} message cannot be cancelled", field="status")
    await uow.commit()
    return await get_message(uow, actor, message_id)
