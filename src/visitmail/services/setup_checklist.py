"""The dashboard's setup checklist and live health of an organization.

The checklist follows the first-ten-minutes path: the mail server is connected *and*
tested, an event exists, a follow-up template exists, a notification mapping with at
least one enabled rule is active, and a first export fired a notification. Each step is
ticked from real state read through :class:`SetupState` (one cheap, index-served query
per step whose cost does not grow with the organization's history).

"Tested" means a connection test passed since the settings last changed: the test
records a pass in the audit log (``ACTION_TEST_PASSED`` of
:mod:`visitmail.services.smtp_config`) and the step compares its time with the settings'
``updated_at``.

Who sees what: each step names the role that can act on it; a viewer sees the steps at or
below their role. Reporters and users get no checklist. Health (paused or failing server,
mail deferred or failed in the last day) is shown to whoever may read the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from visitmail.domain.identity import Principal
from visitmail.domain.outbox import MessageStatus
from visitmail.domain.roles import Role
from visitmail.services import events, outbox
from visitmail.services.outbox_ports import ServerHealth

HEALTH_WINDOW = timedelta(days=1)
CHECKLIST_ROLE = Role.EVENT_CURATOR


@dataclass(frozen=True, slots=True)
class SmtpState:
    """Whether settings are stored, and whether a test passed since they last changed."""

    configured: bool
    tested: bool


class SetupState(Protocol):
    """Read-only probes of an organization's state; each one query, index-served."""

    async def smtp(self, organization_id: UUID) -> SmtpState: ...

    async def first_event(self, organization_id: UUID) -> UUID | None:
        """Any one event of the organization (its page is where templates are edited)."""
        ...

    async def has_template(self, organization_id: UUID) -> bool: ...

    async def active_rules(self, organization_id: UUID) -> int:
        """Enabled rules of the active mapping revision (0 when there is none)."""
        ...

    async def has_notification(self, organization_id: UUID) -> bool:
        """An export or check queued a notification (email or webhook) in the outbox."""
        ...

    async def health(self, organization_id: UUID) -> ServerHealth | None: ...

    async def recent_problems(
        self, organization_id: UUID, since: datetime
    ) -> Mapping[MessageStatus, int]:
        """Messages deferred or failed whose last change is at or after ``since``."""
        ...


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    title: str
    hint: str
    href: str
    done: bool
    role: Role  # the lowest role that can act on it


@dataclass(frozen=True, slots=True)
class Checklist:
    steps: tuple[Step, ...]  # the ones the viewer can act on
    others_pending: int  # steps still open that only a higher role can do

    @property
    def done(self) -> bool:
        return all(s.done for s in self.steps)

    @property
    def done_count(self) -> int:
        return sum(1 for s in self.steps if s.done)


@dataclass(frozen=True, slots=True)
class Health:
    """``state``: ``not_configured`` (nothing to send with), ``paused``, ``failing``
    (failures in a row, not paused yet) or ``ok``."""

    state: str
    server: ServerHealth | None
    deferred: int
    failed: int


@dataclass(frozen=True, slots=True)
class Dashboard:
    checklist: Checklist | None
    health: Health | None


async def dashboard(state: SetupState, actor: Principal, now: datetime) -> Dashboard:
    """The viewer's checklist (``None`` below :data:`CHECKLIST_ROLE`) and health (``None``
    for those who may not read the outbox)."""
    org = actor.organization_id
    role = actor.role
    smtp = await state.smtp(org)
    checklist = None
    if role.at_least(CHECKLIST_ROLE):
        checklist = await _checklist(state, org, role, smtp)
    health = None
    if role.at_least(outbox.READ_ROLE):
        server = await state.health(org)
        problems = await state.recent_problems(org, now - HEALTH_WINDOW)
        health = Health(
            state=_health_state(smtp, server),
            server=server,
            deferred=problems.get(MessageStatus.DEFERRED, 0),
            failed=problems.get(MessageStatus.FAILED, 0),
        )
    return Dashboard(checklist=checklist, health=health)


def _health_state(smtp: SmtpState, server: ServerHealth | None) -> str:
    if server is not None and server.paused:
        return "paused"
    if not smtp.configured:
        return "not_configured"
    if server is not None and server.consecutive_failures > 0:
        return "failing"
    return "ok"


async def _checklist(state: SetupState, org: UUID, role: Role, smtp: SmtpState) -> Checklist:
    event_id = await state.first_event(org)
    template = await state.has_template(org)
    rules = await state.active_rules(org)
    exported = await state.has_notification(org)
    smtp_hint = (
        "Enter your outgoing mail server's settings, save them, then run the connection test."
        if not smtp.configured
        else "Saved, but no connection test passed since the settings last changed: run it."
    )
    steps = (
        Step(
            "smtp",
            "Mail server connected and tested",
            "A connection test passed with the saved settings." if smtp.tested else smtp_hint,
            "/settings/smtp",
            smtp.tested,
            Role.ADMIN,
        ),
        Step(
            "event",
            "An event",
            "Reports are captured for your events."
            if event_id is not None
            else "Create the trade fair or visit campaign your reports belong to.",
            "/events/new" if event_id is None else "/events",
            event_id is not None,
            events.MANAGE_ROLE,
        ),
        Step(
            "template",
            "A follow-up template",
            "Leads can get a follow-up email."
            if template
            else "Write the email leads receive after the visit, on the event's page.",
            f"/events/{event_id}" if event_id is not None else "/events",
            template,
            events.MANAGE_ROLE,
        ),
        Step(
            "mapping",
            "A notification mapping",
            "Decide which colleagues get which report: at least one active rule."
            if rules == 0
            else f"{rules} active rule{'' if rules == 1 else 's'}.",
            "/mapping",
            rules > 0,
            Role.ADMIN,
        ),
        Step(
            "export",
            "A first export",
            "An export notified colleagues: see the outbox."
            if exported
            else "Export a report: the mapping's notification lands in the outbox.",
            "/reports",
            exported,
            CHECKLIST_ROLE,
        ),
    )
    mine = tuple(s for s in steps if role.at_least(s.role))
    others = sum(1 for s in steps if not role.at_least(s.role) and not s.done)
    return Checklist(steps=mine, others_pending=others)
