"""Applying a bounce costs the same whatever the history: every read served by an index
(PostgreSQL ``EXPLAIN``, SQLite ``EXPLAIN QUERY PLAN``) with thousands of sent follow-ups
and earlier bounces in the database, on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx

from tests.integration.db.test_send_path_plans import (
    NOW,
    full_scans,
    prepared_event,
    seed_history,
    statements,
)
from tests.support.orgs import OrgFixture
from visitmail.domain.delivery_events import DeliveryEvent, DeliveryEventKind, EventSource
from visitmail.domain.delivery_reports import Severity
from visitmail.runtime import Runtime
from visitmail.services import delivery_events


def bounce(i: int, ref: str, severity: Severity = Severity.SOFT) -> DeliveryEvent:
    return DeliveryEvent(
        source=EventSource.MAILBOX,
        source_ref=ref,
        kind=DeliveryEventKind.BOUNCED,
        address=f"old{i}@history.example",
        message_ids=(f"<h{i}@example.com>",),
        occurred_at=NOW,
        severity=severity,
        status="5.2.2" if severity is Severity.SOFT else "5.1.1",
        diagnostic="552 5.2.2 Mailbox full",
    )


async def test_applying_bounces_reads_by_index_with_a_long_history(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event_ = await prepared_event(client, runtime, org)
    await seed_history(runtime, org, uuid.UUID(event_["id"]))
    org_id = org.organization.id
    # Earlier soft bounces of many addresses: the window count must not read them all.
    async with runtime.uow() as uow:
        await delivery_events.apply_events(
            uow,
            org_id,
            [bounce(i, f"old-{i}") for i in range(1, 600, 2)],
            now=NOW - timedelta(days=2),
        )

    with statements(runtime) as captured:
        async with runtime.uow() as uow:
            applied = await delivery_events.apply_events(
                uow, org_id, [bounce(7, "new-7"), bounce(9, "new-9", Severity.HARD)], now=NOW
            )
    assert (applied.applied, applied.unmatched) == (2, 0)
    assert applied.suppressed == ("old9@history.example",)
    assert any("delivery_events" in s for s, _ in captured)
    assert await full_scans(runtime, captured) == {}
