"""The bounce mailbox: where the organization's bounces and complaints are read from (IMAP).

Admin only. ``GET`` answers 404 ``not_found`` before the first ``PUT``. The password is
write-only (``password_set``); a ``PUT`` without one keeps it. ``POST …/test`` signs in with
the stored settings and counts the reports of the last days, changing nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from visitmail.adapters.imap.mailbox import poll_mailbox
from visitmail.oauth_wiring import build_token_service, token_policy
from visitmail.services import bounce_mailbox
from visitmail.services.clock import utcnow
from visitmail.web.api.bounce_mailbox_schemas import (
    BounceMailboxIn,
    BounceMailboxOut,
    MailboxTestOut,
)
from visitmail.web.api.schemas import ErrorResponse
from visitmail.web.deps import AdminDep, ReadUowDep, RuntimeDep, UowDep
from visitmail.web.smtp_wiring import SecretBoxDep

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse, "description": "no bounce mailbox is set up"},
    422: {"model": ErrorResponse},
}

router = APIRouter(prefix="/api/v1/bounce-mailbox", tags=["bounces"], responses=ERRORS)


@router.get("", summary="The bounce mailbox and how its reading goes (admin)")
async def get_mailbox(principal: AdminDep, uow: ReadUowDep) -> BounceMailboxOut:
    return BounceMailboxOut.of(await bounce_mailbox.get_mailbox(uow, principal))


@router.put("", summary="Set the bounce mailbox (admin; an omitted password is kept)")
async def put_mailbox(
    body: BounceMailboxIn, principal: AdminDep, uow: UowDep, box: SecretBoxDep
) -> BounceMailboxOut:
    view = await bounce_mailbox.put_mailbox(
        uow,
        box,
        principal,
        body.to_domain(),
        password=body.password if body.password else bounce_mailbox.KEEP,
        now=utcnow(),
    )
    return BounceMailboxOut.of(view)


@router.delete("", status_code=204, summary="Stop reading bounces (admin)")
async def delete_mailbox(principal: AdminDep, uow: UowDep) -> Response:
    await bounce_mailbox.delete_mailbox(uow, principal, now=utcnow())
    return Response(status_code=204)


@router.post("/test", summary="Sign in and look at the folder now (admin; changes nothing)")
async def test_mailbox(
    principal: AdminDep, uow: ReadUowDep, box: SecretBoxDep, runtime: RuntimeDep
) -> MailboxTestOut:
    result = await bounce_mailbox.test_mailbox(
        uow,
        box,
        principal,
        reader=poll_mailbox,
        policy=token_policy(runtime),
        tokens=build_token_service(runtime),
        now=utcnow(),
    )
    return MailboxTestOut.of(result)
