"""The suppression list: the addresses follow-ups are never queued to, why each is there,
adding one by hand and lifting one. The rules are in ``services/suppressions.py``.

Roles: `event_curator` and up read the list and its audit trail; `event_manager` and up
(admins included) add and lift. Lower roles get 403. Another organization's entries are
invisible: they are not listed, and lifting one answers 404.

Decisions of this shell:

* Adding an address that is already listed answers **409** `already_suppressed` (field
  `address`, the message says why and since when) and changes nothing: the first reason
  and its evidence stay. A client that only wants the address listed may treat 409 as
  success.
* The address in `DELETE /api/v1/suppressions/{address}` is matched case-insensitively;
  percent-encode it (an address may hold `/`, `%`, `+`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from visitmail.services import suppressions
from visitmail.web.api.schemas import MAX_INPUT_INT, ErrorResponse
from visitmail.web.api.suppression_schemas import (
    SuppressionChangeOut,
    SuppressionIn,
    SuppressionList,
    SuppressionOut,
)
from visitmail.web.deps import PrincipalDep, ReadUowDep, UowDep

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse, "description": "the role is too low"},
    422: {"model": ErrorResponse, "description": "invalid input; `field` names it"},
}

router = APIRouter(prefix="/api/v1/suppressions", tags=["suppressions"], responses=ERRORS)


@router.get("", summary="The suppression list, newest first (event_curator and up)")
async def list_suppressions(
    principal: PrincipalDep,
    uow: ReadUowDep,
    search: Annotated[
        str | None,
        Query(max_length=suppressions.MAX_ADDRESS, description="part of the address, any case"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=suppressions.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INPUT_INT)] = 0,
) -> SuppressionList:
    """Each entry with its reason (`unsubscribed`, `rejected`, `manual`), when, who added
    it by hand and their note, and for `rejected` the server's reply that caused it (code,
    enhanced status, text, the follow-up's outbox id and Message-ID). `total` counts every
    entry that matches `search`."""
    page = await suppressions.list_suppressions(
        uow, principal, search=search, limit=limit, offset=offset
    )
    return SuppressionList.of(page, limit=limit, offset=offset)


@router.post(
    "",
    status_code=201,
    summary="Put an address on the list by hand (event_manager and up)",
    responses={
        409: {
            "model": ErrorResponse,
            "description": "`already_suppressed`: the address is on the list already "
            "(the message says why); nothing changed",
        }
    },
)
async def add_suppression(
    body: SuppressionIn, principal: PrincipalDep, uow: UowDep
) -> SuppressionOut:
    """The address is checked like every address (422 naming `address`) and kept
    lower-cased; reason `manual`, with who added it and the optional `note`. Audited."""
    added = await suppressions.add_suppression(uow, principal, body.address, note=body.note)
    return SuppressionOut.of(added)


@router.get("/audit", summary="Who added or lifted which address, newest first (event_curator+)")
async def list_changes(
    principal: PrincipalDep,
    uow: ReadUowDep,
    limit: Annotated[int, Query(ge=1, le=suppressions.MAX_PAGE)] = 50,
) -> list[SuppressionChangeOut]:
    changes = await suppressions.list_changes(uow, principal, limit=limit)
    return [SuppressionChangeOut.of(c) for c in changes]


@router.delete(
    "/{address:path}",
    status_code=204,
    summary="Lift an address's suppression (event_manager and up)",
    responses={404: {"model": ErrorResponse, "description": "the address is not on the list"}},
)
async def lift_suppression(address: str, principal: PrincipalDep, uow: UowDep) -> Response:
    """Follow-ups to the address are queued again from now on: refusals by a server from
    before the lift no longer suppress it (a new permanent refusal does). Audited."""
    await suppressions.lift_suppression(uow, principal, address)
    return Response(status_code=204)
