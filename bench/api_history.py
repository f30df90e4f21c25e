"""History for the ``history`` scenario: H follow-ups that were sent days ago, written
straight into visitmail's real tables (``visitmail.adapters.db.tables``) with multi-row
inserts, untimed, while the server is idle, then vacuumed / checkpointed as 20 days of
normal work would have left them (:func:`_settle`).

Per follow-up, the rows a real one leaves behind: a report of the organization's event (a
consenting lead with a distinct address), an outbox message (kind ``follow_up``, status
``sent``, the idempotency key and meta visitmail writes, a rendered MIME of about 2 KB), its
recipient (``accepted`` with the server's 250), the accepted delivery attempt, and the
``follow_up_sends`` record. Times are spread over the last 20 days, inside the default
30-day retention, so no purge removes them during the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.api_harness import SENDER, lead
from visitmail.adapters.db.tables import Base
from visitmail.config import to_async_url
from visitmail.domain.ids import new_id

BATCH = 1000
SPREAD = timedelta(days=20)

_MIME = (
    'Content-Type: multipart/alternative; boundary="===============b{n}=="\r\n'
    "MIME-Version: 1.0\r\n"
    "From: Bench Sales <" + SENDER + ">\r\n"
    "To: Alex{n} Miller{n} <{to}>\r\n"
    "Reply-To: Bench Admin <admin@bench.example>\r\n"
    "Subject: Your visit, Company {n} Ltd\r\n"
    "Date: {date}\r\n"
    "Message-ID: {message_id}\r\n"
    "List-Unsubscribe: <http://127.0.0.1:8000/api/v1/unsubscribe/{token}>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "X-Visitmail-Kind: follow_up\r\n"
    "X-Visitmail-Report: {report}\r\n"
    "X-Visitmail-Template: {template}\r\n"
    "\r\n"
    "--===============b{n}==\r\n"
    'Content-Type: text/plain; charset="utf-8"\r\n'
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Dear Mr Miller{n},\r\n\r\nthank you for talking with us about product line {p}.\r\n"
    "We will be in touch soon.\r\n\r\nBench Admin\r\n"
    "{filler}\r\n"
    "--===============b{n}==\r\n"
    'Content-Type: text/html; charset="utf-8"\r\n'
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "<p>Dear Mr Miller{n},</p><p>thank you for talking with us about <b>product line {p}</b>."
    "</p><p>Bench Admin</p>\r\n"
    "--===============b{n}==--\r\n"
)
_FILLER = ("-- \r\nBench Sales, Main St. 1, 10115 Berlin. " * 20)[:900]


def _rows(
    i: int,
    *,
    organization_id: uuid.UUID,
    event_id: uuid.UUID,
    template_id: uuid.UUID,
    user_id: uuid.UUID,
    at: datetime,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The report, message, recipient, attempt and follow-up-send rows of history item i."""
    the_lead = lead(i, run="history")
    address = the_lead["email"]
    # Ids as visitmail makes them (time-ordered, visitmail.domain.ids), of the row's time.
    report_id, message_pk = new_id(at=at - timedelta(hours=2)), new_id(at=at)
    message_id = f"<{uuid.uuid4().hex}@bench.example>"
    mime = _MIME.format(
        n=i,
        p=i % 7,
        to=address,
        date=at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
        message_id=message_id,
        token=uuid.uuid4().hex * 3,
        report=report_id,
        template=template_id,
        filler=_FILLER,
    ).encode()
    sent_at = at + timedelta(seconds=1)
    report = {
        "id": report_id,
        "organization_id": organization_id,
        "event_id": event_id,
        "lead": {k: str(v) for k, v in the_lead.items()},
        "lead_email": address,
        "answers": {"interest": f"product line {i % 7}", "size": "large" if i % 2 else "small"},
        "notes": "Met at the booth.",
        "consent_follow_up_email": True,
        "consent_marketing": False,
        "status": "draft",
        "revision": 1,
        "captured_by": user_id,
        "captured_at": at - timedelta(hours=2),
        "updated_at": at - timedelta(hours=2),
        "updated_by": None,
        "exported_at": None,
        "checked_at": None,
    }
    message = {
        "id": message_pk,
        "organization_id": organization_id,
        "kind": "follow_up",
        "idempotency_key": f"follow-up:{report_id}:{template_id}",
        "message_id": message_id,
        "mail_from": SENDER,
        "subject": f"Your visit, Company {i} Ltd",
        "mime": mime,
        "size": len(mime),
        "priority": 0,
        "status": "sent",
        "not_before": at,
        "expires_at": at + timedelta(hours=48),
        "created_at": at,
        "updated_at": sent_at,
        "sent_at": sent_at,
        "attempts": 1,
        "lease_owner": None,
        "lease_expires_at": None,
        "possible_duplicate": False,
        "last_error": None,
        "meta": {
            "report_id": str(report_id),
            "template_id": str(template_id),
            "language": "en",
        },
    }
    recipient = {
        "message_pk": message_pk,
        "organization_id": organization_id,
        "address": address,
        "role": "to",
        "status": "accepted",
        "last_code": 250,
        "last_enhanced": "2.0.0",
        "last_text": "Ok: queued",
        "updated_at": sent_at,
    }
    attempt = {
        "message_pk": message_pk,
        "organization_id": organization_id,
        "at": sent_at,
        "recipient": address,
        "outcome": "accepted",
        "code": 250,
        "enhanced": "2.0.0",
        "text": "Ok: queued",
        "duration_ms": 3,
        "worker": "bench-history",
    }
    send = {
        "id": new_id(at=at),
        "organization_id": organization_id,
        "report_id": report_id,
        "template_id": template_id,
        "sequence": 1,
        "status": "queued",
        "outbox_id": message_pk,
        "address": address,
        "created_at": at,
        "created_by": user_id,
    }
    return report, message, recipient, attempt, send


async def seed_history(
    database_url: str,
    count: int,
    *,
    organization_id: str,
    event_id: str,
    template_id: str,
    user_id: str,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Insert ``count`` finished follow-ups (see the module's docstring), ``BATCH`` per
    transaction."""
    ids = {
        "organization_id": uuid.UUID(organization_id),
        "event_id": uuid.UUID(event_id),
        "template_id": uuid.UUID(template_id),
        "user_id": uuid.UUID(user_id),
    }
    names = ("reports", "outbox_messages", "outbox_recipients", "delivery_attempts")
    tables = [Base.metadata.tables[name] for name in (*names, "follow_up_sends")]
    start = datetime.now(UTC) - SPREAD
    step = SPREAD / max(count, 1)
    engine = create_async_engine(to_async_url(database_url))
    try:
        for offset in range(0, count, BATCH):
            batch = [
                _rows(i, at=start + step * i, **ids)
                for i in range(offset, min(offset + BATCH, count))
            ]
            async with engine.begin() as conn:
                for position, table in enumerate(tables):
                    await conn.execute(table.insert(), [rows[position] for rows in batch])
            if progress is not None:
                progress(offset + len(batch))
        await _settle(engine, [t.name for t in tables])
    finally:
        await engine.dispose()


async def _settle(engine: AsyncEngine, tables: list[str]) -> None:
    """Leave the database as 20 days of normal work would have: on PostgreSQL, vacuumed
    and analyzed (autovacuum would have done it long ago; run now it would take the
    CPU of the measured runs that follow the seed); on SQLite, the write-ahead log
    checkpointed into the database file (the writer's automatic checkpoints would have)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        if engine.dialect.name == "postgresql":
            for table in tables:  # VACUUM cannot run inside a transaction block
                await driver.execute(f'VACUUM (ANALYZE) "{table}"')
        else:
            await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
