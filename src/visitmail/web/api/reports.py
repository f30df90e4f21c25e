"""Visit reports: capture and update from the app, export (fires ``exported``) and check
(dashboard; fires ``checked``).

Every role captures. Reporters and users see, change and export their own reports;
``event_curator`` and up see, change, export and check every report of the organization.
A report the caller may not see answers 404.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, status

from visitmail.adapters.db.uow import SqlUnitOfWork
from visitmail.domain.reports import ReportStatus
from visitmail.services import reports
from visitmail.services.report_ports import ReportTriggers
from visitmail.web.api.mapping import notification_triggers
from visitmail.web.api.report_schemas import ReportIn, ReportOut, ReportUpdate, TriggeredOut
from visitmail.web.api.schemas import MAX_INPUT_INT, ErrorResponse
from visitmail.web.deps import PrincipalDep, ReadUowDep, RuntimeDep, UowDep
from visitmail.web.smtp_wiring import dkim_signing

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse, "description": "the role is too low"},
    404: {"model": ErrorResponse, "description": "no such report for this caller"},
    422: {"model": ErrorResponse, "description": "invalid input; `field` names it"},
}
CONFLICT: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorResponse, "description": "`revision` is not the current one"}
}

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], responses=ERRORS)


def report_triggers(runtime: RuntimeDep) -> ReportTriggers[SqlUnitOfWork]:
    """The hook export and check fire: the organization's notification mapping
    (``services/notifications.py``), queuing its emails (DKIM-signed when the
    organization signs) and webhooks in the same transaction. Tests may override this
    dependency."""
    return notification_triggers().with_dkim(dkim_signing(runtime.keyring))


TriggersDep = Annotated[ReportTriggers[SqlUnitOfWork], Depends(report_triggers)]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Capture a visit report (any role)")
async def create_report(body: ReportIn, principal: PrincipalDep, uow: UowDep) -> ReportOut:
    """A `draft` report on an event of the organization, captured by the token's user.
    Answers are checked against the event's questions (422 naming `answers.<key>`), the
    lead's fields as well (`lead.email`, `lead.country`, line breaks anywhere); an unknown
    event answers 422 naming `event_id`. Nothing is stored unless everything is valid."""
    report = await reports.capture_report(uow, principal, body.event_id, body.to_input())
    return ReportOut.of(report)


@router.get("", summary="Reports, newest first (event_curator+: all; others: their own)")
async def list_reports(
    principal: PrincipalDep,
    uow: ReadUowDep,
    event_id: Annotated[UUID | None, Query(description="only this event's")] = None,
    status: Annotated[ReportStatus | None, Query(description="only this status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INPUT_INT)] = 0,
) -> list[ReportOut]:
    found = await reports.list_reports(
        uow, principal, event_id=event_id, status=status, limit=limit, offset=offset
    )
    return [ReportOut.of(r) for r in found]


@router.get("/{report_id}", summary="One report (yours, or any as event_curator+)")
async def get_report(report_id: UUID, principal: PrincipalDep, uow: ReadUowDep) -> ReportOut:
    return ReportOut.of(await reports.get_report(uow, principal, report_id))


@router.put(
    "/{report_id}", summary="Change a report (yours, or any as event_curator+)", responses=CONFLICT
)
async def update_report(
    report_id: UUID, body: ReportUpdate, principal: PrincipalDep, uow: UowDep
) -> ReportOut:
    """Parts left out keep their value. `revision` grows by one when anything changed;
    pass the revision you read as `revision` to refuse overwriting someone else's change."""
    report = await reports.update_report(
        uow,
        principal,
        report_id,
        body.to_changes(),
        event_id=body.event_id,
        expected_revision=body.revision,
    )
    return ReportOut.of(report)


@router.post(
    "/{report_id}/export", summary="Export a report: fires the `exported` trigger (its capturer)"
)
async def export_report(
    report_id: UUID,
    principal: PrincipalDep,
    uow: UowDep,
    read: ReadUowDep,
    triggers: TriggersDep,
) -> TriggeredOut:
    """Status `exported` (a checked report stays `checked`), and the notifications the
    organization's mapping fired, queued in the same transaction. Exporting again fires
    again; the mapping decides whether that notifies again."""
    done = await reports.export_report(uow, principal, report_id, triggers=triggers, read_uow=read)
    return TriggeredOut.of_triggered(done)


@router.post("/{report_id}/check", summary="Check a report: fires the `checked` trigger (curator+)")
async def check_report(
    report_id: UUID,
    principal: PrincipalDep,
    uow: UowDep,
    read: ReadUowDep,
    triggers: TriggersDep,
) -> TriggeredOut:
    """Status `checked`, and the notifications the mapping's `checked` rules fired."""
    done = await reports.check_report(uow, principal, report_id, triggers=triggers, read_uow=read)
    return TriggeredOut.of_triggered(done)
