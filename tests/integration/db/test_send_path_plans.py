"""The bulk follow-up path costs the same whatever the history: a constant number of SQL
statements per chunk, and every look-up served by an index, on both databases.

Every statement one ``POST /api/v1/follow-ups/bulk`` issues is captured (SQLAlchemy's
``before_cursor_execute``) against an organization with thousands of finished messages,
reports, sends and suppressions, and each read is explained after ``ANALYZE``: PostgreSQL
``EXPLAIN (FORMAT JSON)`` must show no ``Seq Scan``, SQLite ``EXPLAIN QUERY PLAN`` no
``SCAN``, on the tables that grow with history."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import Table, event, insert, text
from sqlalchemy.engine import Connection

from tests.integration.web.test_reports_api import capture, live_event
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server
from visitmail.adapters.db.tables import (
    DeliveryEventRow,
    FollowUpSendRow,
    OutboxMessageRow,
    OutboxRecipientRow,
    ReportRow,
    SuppressionLiftRow,
    SuppressionRow,
)
from visitmail.runtime import Runtime
from visitmail.services.follow_ups import CHUNK

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
GROWING = {
    "outbox_messages",
    "outbox_recipients",
    "reports",
    "follow_up_sends",
    "suppressions",
    "suppression_lifts",
    "delivery_events",
}
HISTORY = 4_000
ORGANIZATION_ONLY = re.compile(
    r"SEARCH (\w+) USING (?:COVERING )?INDEX \w+ \(organization_id=\?\)$"
)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

Captured = list[tuple[str, Any]]


@contextmanager
def statements(runtime: Runtime) -> Iterator[Captured]:
    """Every statement sent to the database inside the block, with its parameters."""
    seen: Captured = []

    def record(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append((statement, parameters))

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def prepared_event(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> dict[str, Any]:
    """SMTP settings (nothing is delivered here) and a live de/en event whose German
    template attaches a PDF of its media library."""
    await configure_server(runtime, org, 2525)
    event_ = await live_event(client, org)
    media = await client.post(
        f"/api/v1/events/{event_['id']}/media", headers=org.headers, files={"file": ("b.pdf", PDF)}
    )
    assert media.status_code == 201, media.text
    for language, attachments in (("de", [media.json()["id"]]), ("en", [])):
        reply = await client.put(
            f"/api/v1/events/{event_['id']}/templates/{language}",
            headers=org.headers,
            json={
                "subject": "Ihr Besuch, {{ lead.company }}",
                "text": "{{ salutation }},\n\ndanke!",
                "attachments": attachments,
            },
        )
        assert reply.status_code == 200, reply.text
    return event_


def lead(email: str, language: str = "de") -> dict[str, str]:
    return {"last_name": "Müller", "company": "ACME", "email": email, "language": language}


async def bulk(client: httpx.AsyncClient, org: OrgFixture, ids: Sequence[str]) -> dict[str, int]:
    reply = await client.post(
        "/api/v1/follow-ups/bulk", headers=org.headers, json={"report_ids": list(ids)}
    )
    assert reply.status_code == 200, reply.text
    summary: dict[str, int] = reply.json()["summary"]
    return summary


async def seed_history(runtime: Runtime, org: OrgFixture, event_id: uuid.UUID) -> None:
    """Thousands of finished follow-ups (one in fifty refused with a 5xx), reports, their
    send records, suppressed addresses and lifts (one in three addresses, a day before
    its follow-up: older than the refusals, so those still count)."""
    org_id = org.organization.id
    async with runtime.uow() as uow:
        template_id = (await uow.follow_up_templates.for_events(org_id, [event_id]))[0].id
        reports, messages, recipients, sends, suppressed, lifts = [], [], [], [], [], []
        came_back: list[dict[str, object]] = []
        for i in range(HISTORY):
            report_id, message_pk = uuid.uuid4(), uuid.uuid4()
            address = f"old{i}@history.example"
            reports.append(
                {
                    "id": report_id,
                    "organization_id": org_id,
                    "event_id": event_id,
                    "lead": lead(address),
                    "lead_email": address,
                    "answers": {},
                    "notes": "",
                    "consent_follow_up_email": True,
                    "consent_marketing": False,
                    "status": "draft",
                    "revision": 1,
                    "captured_by": org.admin.id,
                    "captured_at": NOW,
                    "updated_at": NOW,
                }
            )
            messages.append(
                {
                    "id": message_pk,
                    "organization_id": org_id,
                    "kind": "follow_up",
                    "idempotency_key": f"follow-up:{report_id}:{template_id}",
                    "message_id": f"<h{i}@example.com>",
                    "mail_from": "sales@example.com",
                    "subject": "s",
                    "mime": b"Subject: s\r\n\r\nx\r\n",
                    "size": 16,
                    "priority": 0,
                    "status": "sent" if i % 50 else "failed",
                    "not_before": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "attempts": 1,
                    "possible_duplicate": False,
                    "meta": {},
                }
            )
            recipients.append(
                {
                    "message_pk": message_pk,
                    "organization_id": org_id,
                    "address": address,
                    "role": "to",
                    "status": "accepted" if i % 50 else "rejected",
                    "last_code": 250 if i % 50 else 550,
                    "last_text": "2.0.0 Ok"
                    if i % 50
                    else f"5.1.1 <{address}>: Recipient address rejected: User unknown",
                    "updated_at": NOW,
                }
            )
            sends.append(
                {
                    "id": uuid.uuid4(),
                    "organization_id": org_id,
                    "report_id": report_id,
                    "template_id": template_id,
                    "sequence": 1,
                    "status": "queued",
                    "outbox_id": message_pk,
                    "address": address,
                    "created_at": NOW,
                }
            )
            suppressed.append(
                {
                    "organization_id": org_id,
                    "address": f"gone{i}@history.example",
                    "reason": "unsubscribed",
                    "created_at": NOW - timedelta(days=1),
                }
            )
            if i % 10 == 0:  # bounces and complaints reported after the 250
                came_back.append(
                    {
                        "id": uuid.uuid4(),
                        "organization_id": org_id,
                        "source": "mailbox",
                        "source_ref": f"imap:1:{i}",
                        "kind": "bounced" if i % 20 else "complained",
                        "severity": "hard" if i % 20 else None,
                        "address": address,
                        "outbox_id": message_pk,
                        "message_kind": "follow_up",
                        "report_id": report_id,
                        "message_id": f"<h{i}@example.com>",
                        "status": "5.1.1",
                        "diagnostic": "550 5.1.1 User unknown",
                        "occurred_at": NOW - timedelta(days=i % 60),
                        "received_at": NOW - timedelta(days=i % 60),
                    }
                )
            if i % 3 == 0:
                lifts.append(
                    {
                        "organization_id": org_id,
                        "address": address,
                        "lifted_at": NOW - timedelta(days=1),
                    }
                )
        for model, rows in (
            (ReportRow, reports),
            (OutboxMessageRow, messages),
            (OutboxRecipientRow, recipients),
            (FollowUpSendRow, sends),
            (SuppressionRow, suppressed),
            (SuppressionLiftRow, lifts),
            (DeliveryEventRow, came_back),
        ):
            await uow.session.execute(insert(cast(Table, model.__table__)), rows)
        await uow.commit()
    if runtime.engine.dialect.name == "postgresql":
        # autovacuum vacuums and analyzes a PostgreSQL database in production (statistics,
        # and the visibility map that makes index-only counts cheap); an embedded SQLite
        # database never gets statistics, so its plans are checked without them.
        async with runtime.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in sorted(GROWING):
                await auto.execute(text(f"VACUUM (ANALYZE) {table}"))


def seq_scans(plan: Any) -> list[str]:
    """Relations read by a sequential scan anywhere in a PostgreSQL JSON plan."""
    found = []
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan":
            found.append(str(plan.get("Relation Name")))
        for value in plan.values():
            found += seq_scans(value)
    elif isinstance(plan, list):
        for item in plan:
            found += seq_scans(item)
    return found


async def full_scans(runtime: Runtime, captured: Captured) -> dict[str, list[str]]:
    """For each captured read, the growing tables its plan scans in full."""
    postgres = runtime.engine.dialect.name == "postgresql"
    out: dict[str, list[str]] = {}
    async with runtime.engine.connect() as conn:
        for statement, parameters in captured:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            params = tuple(parameters) if parameters else ()
            if postgres:
                rows = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params)
                raw = rows.scalar_one()
                scanned = seq_scans(json.loads(raw) if isinstance(raw, str) else raw)
            else:
                rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                details = [str(r[-1]) for r in rows]
                scanned = [d.split()[1] for d in details if d.startswith("SCAN ")]
                # A SEARCH on nothing but the organization reads all of its history.
                scanned += [m[1] for d in details if (m := ORGANIZATION_ONLY.match(d))]
            bad = [t for t in scanned if t in GROWING]
            if bad:
                out[statement] = bad
        await conn.rollback()
    return out


async def test_every_read_of_a_bulk_follow_up_uses_an_index(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event_ = await prepared_event(client, runtime, org)
    event_id = uuid.UUID(event_["id"])
    await seed_history(runtime, org, event_id)
    # SQLite: a full chunk, because without statistics its planner's choice depends on the
    # length of the id lists (with 100 report ids it once walked every report of the
    # organization). PostgreSQL has statistics, and with 100 ids and only 4,000 rows a
    # sequential scan is its right choice, so it gets a few ids.
    postgres = runtime.engine.dialect.name == "postgresql"
    fresh = [
        (await capture(client, org.headers, event_["id"], lead=lead(f"new{i}@example.de")))["id"]
        for i in range(6 if postgres else CHUNK - 3)
    ]
    refused = await capture(client, org.headers, event_["id"], lead=lead("old0@history.example"))
    listed = await capture(client, org.headers, event_["id"], lead=lead("gone7@history.example"))
    english = await capture(client, org.headers, event_["id"], lead=lead("en@example.org", "en"))

    with statements(runtime) as captured:
        summary = await bulk(client, org, [*fresh, refused["id"], listed["id"], english["id"]])
    assert summary["queued"] == len(fresh) + 1
    assert summary["suppressed"] == 2  # one listed, one refused before (now listed too)

    assert any("outbox_recipients" in s for s, _ in captured)  # the hook was asked
    assert await full_scans(runtime, captured) == {}


async def test_a_lifted_address_is_queued_again_and_the_hook_still_uses_indexes(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    """Issue 10, item 2: after a lift, the refusal still in the outbox must not suppress
    the address again; the lift is found by primary key, not by reading the history."""
    event_ = await prepared_event(client, runtime, org)
    await seed_history(runtime, org, uuid.UUID(event_["id"]))
    refused = await capture(client, org.headers, event_["id"], lead=lead("old0@history.example"))
    assert (await bulk(client, org, [refused["id"]]))["suppressed"] == 1
    lifted = await client.delete("/api/v1/suppressions/old0@history.example", headers=org.headers)
    assert lifted.status_code == 204, lifted.text
    still_refused = await capture(
        client, org.headers, event_["id"], lead=lead("old150@history.example")
    )

    with statements(runtime) as captured:
        summary = await bulk(client, org, [refused["id"], still_refused["id"]])
    assert summary["queued"] == 1  # the lifted address
    assert summary["suppressed"] == 1  # refused, and lifted only before its refusal
    assert any("suppression_lifts" in s for s, _ in captured)
    assert await full_scans(runtime, captured) == {}


async def test_a_chunk_costs_the_same_statements_for_5_reports_as_for_50(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event_ = await prepared_event(client, runtime, org)

    async def count(n: int) -> int:
        ids = [
            (await capture(client, org.headers, event_["id"], lead=lead(f"r{n}-{i}@example.de")))[
                "id"
            ]
            for i in range(n - 1)
        ]
        english = lead(f"r{n}-en@example.org", "en")
        ids.append((await capture(client, org.headers, event_["id"], lead=english))["id"])
        await bulk(client, org, ids[:1])  # one already sent in each run
        with statements(runtime) as captured:
            summary = await bulk(client, org, [*ids, str(uuid.uuid4())])
        assert summary == {
            "queued": n - 1,
            "already_sent": 1,
            "suppressed": 0,
            "no_consent": 0,
            "no_template": 0,
            "error": 1,
        }
        return len(captured)

    assert await count(5) == await count(50)
