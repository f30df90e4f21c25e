"""The dev inbox asks which received Message-IDs an organization sent: that look-up is
served by ``ix_outbox_org_message_id`` (migration 0016), not by reading the
organization's whole outbox, on both databases (plans checked as in
``test_send_path_plans``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, insert, text

from tests.integration.db.test_send_path_plans import full_scans, statements
from tests.support.orgs import OrgFixture, new_org
from visitmail.adapters.db.tables import OutboxMessageRow
from visitmail.runtime import Runtime

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HISTORY = 4_000


def _message(org_id: uuid.UUID, i: int) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "organization_id": org_id,
        "kind": "notification",
        "idempotency_key": f"k{i}",
        "message_id": f"<m{i}.{org_id.hex}@example.com>",
        "mail_from": "sales@example.com",
        "subject": "s",
        "mime": b"Subject: s\r\n\r\nx\r\n",
        "size": 16,
        "priority": 0,
        "status": "sent",
        "not_before": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        "attempts": 1,
        "possible_duplicate": False,
        "meta": {},
    }


async def test_owned_message_ids_is_served_by_an_index(runtime: Runtime, org: OrgFixture) -> None:
    other = await new_org(runtime, "Globex")
    async with runtime.uow() as uow:
        rows = [_message(org.organization.id, i) for i in range(HISTORY)]
        rows += [_message(other.organization.id, i) for i in range(HISTORY // 4)]
        await uow.session.execute(insert(cast(Table, OutboxMessageRow.__table__)), rows)
        await uow.commit()
    if runtime.engine.dialect.name == "postgresql":
        async with runtime.engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    mine = [f"<m{i}.{org.organization.id.hex}@example.com>" for i in (3, 1500, 3999)]
    theirs = f"<m7.{other.organization.id.hex}@example.com>"
    asked = [*mine, theirs, "<never@example.com>"]

    with statements(runtime) as captured:
        async with runtime.uow() as uow:  # the reader engine on SQLite runs the same SQL
            found = await uow.outbox.owned_message_ids(org.organization.id, asked)

    assert found == set(mine)
    assert any("outbox_messages" in s for s, _ in captured)
    assert await full_scans(runtime, captured) == {}
