"""A report with the event it belongs to, for reading it (the report page, its PDF).

Whoever may see the report (:func:`visitmail.services.reports.get_report`: their own, or
every report from ``event_curator`` up) also sees its event's name and question labels,
whatever their role: those are what the report's answers mean. ``NotFound`` as for the
report; the event is ``None`` only if it is gone.
"""

from __future__ import annotations

from uuid import UUID

from visitmail.domain.events import Event
from visitmail.domain.identity import Principal
from visitmail.domain.reports import Report
from visitmail.services import reports
from visitmail.services.report_ports import ReportsUnitOfWork


async def report_with_event(
    uow: ReportsUnitOfWork, actor: Principal, report_id: UUID
) -> tuple[Report, Event | None]:
    report = await reports.get_report(uow, actor, report_id)
    event = await uow.events.get(actor.organization_id, report.event_id)
    return report, event
