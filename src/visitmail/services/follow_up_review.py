"""A bulk follow-up read, not sent: what it would do before, what it did after.

Before (:func:`review_bulk`): the rules of :func:`~visitmail.services.follow_ups.send_follow_up`
up to suppression, applied with reads only, so the confirmation can say "2 leads will be
mailed; 1 has no consent" by name. Rendering is not tried: a template that fails for one
lead shows up in the result, not in the review. Between review and confirmation the state
may change (an unsubscribe comes in); the send decides again, and its result says so.

After (:func:`describe_results`): the outcomes a bulk send returned (report id, status,
message), with each lead's name and company, the message queued for it and, for a
follow-up that was sent before, when and which message — read from the send records, so
the redirect after the send carries only ids and statuses.

Both need ``event_curator`` (the bulk role); a report the actor may not see has no lead
(``report`` is ``None``) and never its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from visitmail.domain.errors import InvalidInput, VisitmailError
from visitmail.domain.follow_up import FollowUpStatus, suppression_address
from visitmail.domain.identity import Principal
from visitmail.domain.reports import Report
from visitmail.services.follow_up_ports import FollowUpSend, FollowUpUnitOfWork
from visitmail.services.follow_ups import (
    BULK_ROLE,
    MAX_BULK,
    FollowUpResult,
    Outcome,
    plan_rules,
)
from visitmail.services.identity import require_role
from visitmail.services.reports import READ_ALL_ROLE


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """One chosen report: ``status`` is what will happen (review; ``queued`` = will be
    mailed) or what happened (result). ``sent_at`` / ``outbox_id``: for ``already_sent``
    the first send, for ``queued`` this one."""

    report_id: UUID
    report: Report | None
    status: FollowUpStatus
    message: str | None = None
    outbox_id: UUID | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BulkReview:
    rows: list[LeadOutcome]
    configured: bool  # the organization has outgoing mail settings

    def count(self, status: FollowUpStatus) -> int:
        return sum(1 for r in self.rows if r.status is status)


def _checked_ids(report_ids: Sequence[UUID]) -> list[UUID]:
    if not report_ids:
        raise InvalidInput("at least one report id is required", field="report_ids")
    unique = list(dict.fromkeys(report_ids))
    if len(unique) > MAX_BULK:
        raise InvalidInput(f"at most {MAX_BULK} reports at once", field="report_ids")
    return unique


def _visible(actor: Principal, found: dict[UUID, Report], report_id: UUID) -> Report | None:
    report = found.get(report_id)
    if report is None or (
        report.captured_by != actor.user.id and not actor.role.at_least(READ_ALL_ROLE)
    ):
        return None
    return report


def _by_report(sends: Sequence[FollowUpSend]) -> dict[UUID, list[FollowUpSend]]:
    by_report: dict[UUID, list[FollowUpSend]] = {}
    for send in sorted(sends, key=lambda s: s.created_at):
        by_report.setdefault(send.report_id, []).append(send)
    return by_report


async def review_bulk(
    uow: FollowUpUnitOfWork, actor: Principal, report_ids: Sequence[UUID]
) -> BulkReview:
    """What :func:`~visitmail.services.follow_ups.bulk_follow_up` would do for
    ``report_ids`` now, without writing. Raises :class:`PermissionDenied` (below
    event_curator) and :class:`InvalidInput` naming ``report_ids`` (none, too many)."""
    require_role(actor, BULK_ROLE)
    unique = _checked_ids(report_ids)
    org = actor.organization_id
    outcomes: dict[UUID, Outcome] = {}
    planned = await plan_rules(uow, actor, unique, force=False, outcomes=outcomes)
    addresses = {suppression_address(p.address) for p in planned}
    listed = await uow.suppressions.listed(org, addresses) if planned else set()
    rejected = await uow.suppressions.rejected_among(org, addresses - listed) if planned else {}
    blocked = listed | rejected.keys()
    for plan in planned:
        status = (
            FollowUpStatus.SUPPRESSED
            if suppression_address(plan.address) in blocked
            else FollowUpStatus.QUEUED
        )
        outcomes[plan.report.id] = FollowUpResult(plan.report.id, status)
    found = await uow.follow_up_sources.reports(org, unique)
    earlier = _by_report(await uow.follow_up_sends.queued_for(org, unique))
    configured = await uow.smtp_settings.get(org) is not None
    rows: list[LeadOutcome] = []
    for report_id in unique:
        outcome = outcomes[report_id]
        report = _visible(actor, found, report_id)
        if isinstance(outcome, VisitmailError):
            rows.append(LeadOutcome(report_id, report, FollowUpStatus.ERROR, outcome.message))
            continue
        first = earlier.get(report_id, [None])[0]
        if outcome.status is FollowUpStatus.ALREADY_SENT and first is not None:
            rows.append(
                LeadOutcome(
                    report_id, report, outcome.status, None, first.outbox_id, first.created_at
                )
            )
        else:
            rows.append(LeadOutcome(report_id, report, outcome.status, outcome.message))
    return BulkReview(rows, configured)


async def describe_results(
    uow: FollowUpUnitOfWork,
    actor: Principal,
    results: Sequence[tuple[UUID, FollowUpStatus, str | None]],
) -> list[LeadOutcome]:
    """The outcomes of a bulk send (report id, status, message), in order, with the lead
    and the send records: ``queued`` gets the latest message queued for the report,
    ``already_sent`` the first. At most :data:`MAX_BULK`; needs event_curator."""
    require_role(actor, BULK_ROLE)
    chosen = list(results)[:MAX_BULK]
    ids = list(dict.fromkeys(r[0] for r in chosen))
    if not ids:
        return []
    org = actor.organization_id
    found = await uow.follow_up_sources.reports(org, ids)
    sends = _by_report(await uow.follow_up_sends.queued_for(org, ids))
    rows: list[LeadOutcome] = []
    for report_id, status, message in chosen:
        report = _visible(actor, found, report_id)
        mine = sends.get(report_id, []) if report is not None else []
        send = None
        if status is FollowUpStatus.QUEUED and mine:
            send = mine[-1]
        elif status is FollowUpStatus.ALREADY_SENT and mine:
            send = mine[0]
        rows.append(
            LeadOutcome(
                report_id,
                report,
                status,
                message,
                send.outbox_id if send else None,
                send.created_at if send else None,
            )
        )
    return rows
