"""The outbox: every message of the organization, per recipient, with every attempt; and
the operator's actions on it.

Reading needs ``event_curator`` or higher; retry and cancel need ``admin`` (others get
403). Another organization's message answers 404. A state that forbids the action answers
409 with ``field: "status"``. The rendered MIME bytes are never exposed.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from visitmail.domain.outbox import MessageKind, MessageStatus
from visitmail.services import outbox
from visitmail.web.api.message_schemas import (
    MessageCounts,
    MessageDetailOut,
    MessageList,
    MessageOut,
)
from visitmail.web.api.schemas import MAX_INPUT_INT, ErrorResponse
from visitmail.web.deps import PrincipalDep, ReadUowDep, UowDep

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse, "description": "no such message in this organization"},
    422: {"model": ErrorResponse},
}
CONFLICT: dict[int | str, dict[str, object]] = {
    409: {
        "model": ErrorResponse,
        "description": "the message's status forbids the action (`field`: `status`)",
    }
}

router = APIRouter(prefix="/api/v1/messages", tags=["outbox"], responses=ERRORS)


@router.get("", summary="The outbox, newest first (event_curator and up)")
async def list_messages(
    principal: PrincipalDep,
    uow: ReadUowDep,
    status: Annotated[MessageStatus | None, Query(description="only this status")] = None,
    kind: Annotated[MessageKind | None, Query(description="only this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INPUT_INT)] = 0,
) -> MessageList:
    """A page of the organization's messages with their recipients, and the number of
    messages per status across the whole outbox (unaffected by the filters)."""
    items = await outbox.list_messages(
        uow, principal, status=status, kind=kind, limit=limit, offset=offset
    )
    counts = await outbox.counts(uow, principal)
    return MessageList(items=[MessageOut.of(m) for m in items], counts=MessageCounts.of(counts))


@router.get("/{message_id}", summary="One message with recipients and attempts (event_curator+)")
async def get_message(
    message_id: UUID, principal: PrincipalDep, uow: ReadUowDep
) -> MessageDetailOut:
    """The message, each recipient's state with the server's last reply, and every
    delivery attempt (time, recipient, outcome, code, enhanced status, text, duration)."""
    return MessageDetailOut.of(await outbox.get_message(uow, principal, message_id))


@router.post("/{message_id}/retry", summary="Send a message again now (admin)", responses=CONFLICT)
async def retry_message(message_id: UUID, principal: PrincipalDep, uow: UowDep) -> MessageDetailOut:
    """Queue a failed, expired, cancelled or waiting message for delivery now; its
    recipients that were not accepted are tried again (with the same Message-ID). A
    message being sent or already sent answers 409."""
    return MessageDetailOut.of(await outbox.retry_message(uow, principal, message_id))


@router.post(
    "/{message_id}/cancel", summary="Stop a queued or deferred message (admin)", responses=CONFLICT
)
async def cancel_message(
    message_id: UUID, principal: PrincipalDep, uow: UowDep
) -> MessageDetailOut:
    """Cancel a message that is waiting (queued or deferred); a worker will not send it.
    A message being sent right now, or already finished, answers 409."""
    return MessageDetailOut.of(await outbox.cancel_message(uow, principal, message_id))
