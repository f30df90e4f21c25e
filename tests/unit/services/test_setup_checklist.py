"""The checklist and health rules, on a fake :class:`SetupState`: which steps each role
sees, when the list folds, and which health state wins."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from visitmail.domain.identity import Principal, User
from visitmail.domain.outbox import MessageStatus
from visitmail.domain.roles import Role
from visitmail.services.outbox_ports import ServerHealth
from visitmail.services.setup_checklist import HEALTH_WINDOW, SmtpState, dashboard

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
NOTHING = SmtpState(configured=False, tested=False)
ORG = uuid.uuid4()


@dataclass
class FakeState:
    smtp_state: SmtpState = NOTHING
    event: uuid.UUID | None = None
    template: bool = False
    rules: int = 0
    notification: bool = False
    server: ServerHealth | None = None
    problems: dict[MessageStatus, int] = field(default_factory=dict)
    asked_since: list[datetime] = field(default_factory=list)

    async def smtp(self, organization_id: uuid.UUID) -> SmtpState:
        assert organization_id == ORG
        return self.smtp_state

    async def first_event(self, organization_id: uuid.UUID) -> uuid.UUID | None:
        return self.event

    async def has_template(self, organization_id: uuid.UUID) -> bool:
        return self.template

    async def active_rules(self, organization_id: uuid.UUID) -> int:
        return self.rules

    async def has_notification(self, organization_id: uuid.UUID) -> bool:
        return self.notification

    async def health(self, organization_id: uuid.UUID) -> ServerHealth | None:
        return self.server

    async def recent_problems(
        self, organization_id: uuid.UUID, since: datetime
    ) -> Mapping[MessageStatus, int]:
        self.asked_since.append(since)
        return self.problems


def as_role(role: Role) -> Principal:
    return Principal(User(uuid.uuid4(), ORG, "a@example.com", "A", role, False, NOW), via="token")


def health(failures: int = 0, paused: bool = False) -> ServerHealth:
    return ServerHealth(
        organization_id=ORG,
        consecutive_failures=failures,
        paused_at=NOW if paused else None,
        paused_reason="paused after 3 failed connections in a row: 535" if paused else None,
        next_probe_at=None,
        last_success_at=None,
        last_failure_at=NOW if failures else None,
        last_failure="535 5.7.8" if failures else None,
    )


async def test_an_admin_sees_every_step_and_the_list_folds_when_all_are_done() -> None:
    state = FakeState()
    board = await dashboard(state, as_role(Role.ADMIN), NOW)
    assert board.checklist is not None
    assert [s.key for s in board.checklist.steps] == [
        "smtp",
        "event",
        "template",
        "mapping",
        "export",
    ]
    assert board.checklist.done_count == 0 and not board.checklist.done
    assert board.checklist.steps[1].href == "/events/new"

    event = uuid.uuid4()
    state = FakeState(SmtpState(True, True), event, True, 2, True)
    board = await dashboard(state, as_role(Role.ADMIN), NOW)
    assert board.checklist is not None and board.checklist.done
    assert board.checklist.steps[2].href == f"/events/{event}"
    assert board.checklist.steps[3].hint == "2 active rules."


@pytest.mark.parametrize(
    ("role", "keys", "others"),
    [
        (Role.EVENT_MANAGER, ["event", "template", "export"], 2),
        (Role.EVENT_CURATOR, ["export"], 4),
    ],
)
async def test_lower_roles_see_the_steps_they_can_take(
    role: Role, keys: list[str], others: int
) -> None:
    board = await dashboard(FakeState(), as_role(role), NOW)
    assert board.checklist is not None
    assert [s.key for s in board.checklist.steps] == keys
    assert board.checklist.others_pending == others


@pytest.mark.parametrize("role", [Role.REPORTER, Role.USER])
async def test_reporters_and_users_get_neither(role: Role) -> None:
    board = await dashboard(FakeState(), as_role(role), NOW)
    assert board.checklist is None and board.health is None


@pytest.mark.parametrize(
    ("smtp", "server", "expected"),
    [
        (SmtpState(False, False), None, "not_configured"),
        (SmtpState(True, False), None, "ok"),
        (SmtpState(True, True), health(failures=2), "failing"),
        (SmtpState(True, True), health(failures=3, paused=True), "paused"),
        # a pause outlives a deleted configuration: it is still what blocks the queue
        (SmtpState(False, False), health(failures=3, paused=True), "paused"),
    ],
)
async def test_the_health_state(
    smtp: SmtpState, server: ServerHealth | None, expected: str
) -> None:
    state = FakeState(smtp_state=smtp, server=server)
    board = await dashboard(state, as_role(Role.EVENT_CURATOR), NOW)
    assert board.health is not None and board.health.state == expected


async def test_problems_are_counted_over_the_last_day() -> None:
    state = FakeState(problems={MessageStatus.FAILED: 2, MessageStatus.DEFERRED: 5})
    board = await dashboard(state, as_role(Role.ADMIN), NOW)
    assert board.health is not None
    assert (board.health.failed, board.health.deferred) == (2, 5)
    assert state.asked_since == [NOW - timedelta(days=1)]
    assert timedelta(days=1) == HEALTH_WINDOW
