"""The dashboard costs the same whatever the history: the same number of statements for
a new organization and for one with thousands of messages, and every read of a growing
table served by an index (PostgreSQL ``EXPLAIN`` without ``Seq Scan``, SQLite
``EXPLAIN QUERY PLAN`` without ``SCAN``), on both databases."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Connection

from tests.integration.db.test_send_path_plans import (
    Captured,
    full_scans,
    prepared_event,
    seed_history,
)
from tests.integration.web.test_outbox_pages import log_in_as
from tests.support.orgs import OrgFixture, new_org
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

STEP = re.compile(r'data-step="(\w+)" data-done="(yes|no)"')


@contextmanager
def statements(runtime: Runtime) -> Iterator[Captured]:
    """Every statement sent inside the block, on the writer and (SQLite) the reader
    engine: the dashboard reads through the reader."""
    seen: Captured = []

    def record(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append((statement, parameters))

    engines = [e.sync_engine for e in (runtime.engine, runtime.read_engine) if e is not None]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def dashboard(client: httpx.AsyncClient) -> str:
    page = await client.get("/")
    assert page.status_code == 200, page.text
    return page.text


async def test_the_dashboard_reads_by_index_and_costs_the_same_with_history(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    fresh = await new_org(runtime, name="Fresh")
    await log_in_as(client, runtime, fresh, Role.ADMIN)
    with statements(runtime) as captured_fresh:
        await dashboard(client)

    event_ = await prepared_event(client, runtime, org)
    await seed_history(runtime, org, uuid.UUID(event_["id"]))
    await log_in_as(client, runtime, org, Role.ADMIN)
    with statements(runtime) as captured:
        page = await dashboard(client)
    # thousands of follow-ups, a failed one among them, but no export: not ticked
    assert dict(STEP.findall(page))["export"] == "no"
    assert dict(STEP.findall(page))["template"] == "yes"

    assert len(captured) == len(captured_fresh)
    assert any("audit_log" in s for s, _ in captured)  # the "tested" probe was asked
    assert any("outbox_messages" in s for s, _ in captured)
    assert await full_scans(runtime, captured) == {}
