"""Migrations build the schema from an empty database, and are reversible, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.support.databases import create_postgres_database, drop_postgres_database, sqlite_url
from visitmail.adapters.db import migrate
from visitmail.adapters.db.engine import create_engine
from visitmail.config import to_async_url

EXPECTED = {
    "organizations",
    "users",
    "api_tokens",
    "web_sessions",
    "login_failures",
    "audit_log",
    "smtp_settings",
    "smtp_oauth_credentials",
    "events",
    "event_media",
    "reports",
    "follow_up_templates",
    "suppressions",
    "suppression_lifts",
    "follow_up_sends",
    "mapping_revisions",
    "dkim_keys",
    "dkim_signing",
    "delivery_events",
    "bounce_mailboxes",
}


@pytest.fixture
async def empty_database(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
        return
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_from_empty_reaches_head_and_creates_every_table(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        assert await migrate.current_revision(engine) is None
        assert EXPECTED.isdisjoint(await _tables(engine))

        await migrate.upgrade(engine)

        assert await migrate.current_revision(engine) == migrate.head_revision()
        assert await _tables(engine) >= EXPECTED
        await migrate.upgrade(engine)  # idempotent
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_back(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine)
        await migrate.downgrade(engine, "base")
        assert EXPECTED.isdisjoint(await _tables(engine))
        await migrate.upgrade(engine)
        assert await _tables(engine) >= EXPECTED
    finally:
        await engine.dispose()


async def _indexes(engine, table: str) -> set[str]:  # type: ignore[no-untyped-def]
    # Read from the catalogue: SQLAlchemy does not reflect SQLite's expression indexes.
    if engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE tablename = :t"
    async with engine.connect() as conn:
        return {str(name) for name in (await conn.execute(text(query), {"t": table})).scalars()}


@pytest.mark.parametrize(
    ("revision", "previous", "table", "indexes"),
    [
        (
            "0009_send_path_indexes",
            "0008_organization_settings",
            "outbox_recipients",
            {"ix_outbox_recipients_rejected"},
        ),
        (
            "0010_claim_indexes",
            "0009_send_path_indexes",
            "outbox_messages",
            {"ix_outbox_waiting", "ix_outbox_leased"},
        ),
        (
            "0012_outbox_status_counts",
            "0011_suppression_list",
            "outbox_messages",
            {"ix_outbox_org_status"},
        ),
        (
            "0016_outbox_message_id",
            "0015_recipient_limits",
            "outbox_messages",
            {"ix_outbox_org_message_id"},
        ),
    ],
)
async def test_index_migrations_come_and_go(
    empty_database: str, revision: str, previous: str, table: str, indexes: set[str]
) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine, revision)
        assert indexes <= await _indexes(engine, table)
        await migrate.downgrade(engine, previous)
        assert not indexes & await _indexes(engine, table)
        await migrate.upgrade(engine)
        assert indexes <= await _indexes(engine, table)
    finally:
        await engine.dispose()


async def _columns(engine, table: str) -> set[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_columns(table))
    return {str(c["name"]) for c in found}


async def test_suppression_list_details_come_and_go_with_0011(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    details = {"created_by", "note", "reply_code", "reply_text", "source_outbox_id"}
    try:
        await migrate.upgrade(engine, "0011_suppression_list")
        assert details <= await _columns(engine, "suppressions")
        assert "ix_suppressions_org_created" in await _indexes(engine, "suppressions")
        assert "suppression_lifts" in await _tables(engine)
        await migrate.downgrade(engine, "0010_claim_indexes")
        assert not details & await _columns(engine, "suppressions")
        assert "suppression_lifts" not in await _tables(engine)
        await migrate.upgrade(engine)
        assert details <= await _columns(engine, "suppressions")
    finally:
        await engine.dispose()


async def test_dkim_tables_come_and_go_with_0014(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine, "0014_dkim_keys")
        assert {"dkim_keys", "dkim_signing"} <= await _tables(engine)
        assert "private_key_enc" in await _columns(engine, "dkim_keys")
        assert "ix_dkim_keys_organization_id" in await _indexes(engine, "dkim_keys")
        await migrate.downgrade(engine, "0013_oauth_credentials")
        assert not {"dkim_keys", "dkim_signing"} & await _tables(engine)
        await migrate.upgrade(engine)
        assert {"dkim_keys", "dkim_signing"} <= await _tables(engine)
    finally:
        await engine.dispose()


async def test_recipient_budget_column_comes_and_goes_with_0015(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine, "0015_recipient_limits")
        assert "day_recipients" in await _columns(engine, "rate_buckets")
        await migrate.downgrade(engine, "0014_dkim_keys")
        assert "day_recipients" not in await _columns(engine, "rate_buckets")
        await migrate.upgrade(engine)
        assert "day_recipients" in await _columns(engine, "rate_buckets")
    finally:
        await engine.dispose()


async def test_password_state_column_comes_and_goes_with_0017(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine, "0016_outbox_message_id")
        async with engine.begin() as conn:  # a user from before the column
            org = "00000000-0000-4000-8000-000000000001"
            await conn.execute(
                text(
                    "INSERT INTO organizations (id, name, created_at, require_follow_up_consent)"
                    " VALUES (:id, 'Old', CURRENT_TIMESTAMP, true)"
                ),
                {"id": org},
            )
            await conn.execute(
                text(
                    "INSERT INTO users (id, organization_id, email, display_name, role,"
                    " password_hash, disabled, created_at, updated_at) VALUES (:id, :org,"
                    " 'old@example.com', 'Old', 'user', 'x', false, CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                ),
                {"id": "00000000-0000-4000-8000-000000000002", "org": org},
            )
        await migrate.upgrade(engine, "0017_password_reset")
        assert "password_state" in await _columns(engine, "users")
        async with engine.connect() as conn:
            state = await conn.scalar(text("SELECT password_state FROM users"))
        assert state == "set"  # existing users keep their password as chosen
        await migrate.downgrade(engine, "0016_outbox_message_id")
        assert "password_state" not in await _columns(engine, "users")
        await migrate.upgrade(engine)
        assert "password_state" in await _columns(engine, "users")
    finally:
        await engine.dispose()


async def test_oauth_credentials_table_comes_and_goes_with_0013(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine, "0013_oauth_credentials")
        assert "smtp_oauth_credentials" in await _tables(engine)
        assert {"refresh_token_enc", "access_token_enc", "client_secret_enc"} <= await _columns(
            engine, "smtp_oauth_credentials"
        )
        await migrate.downgrade(engine, "0012_outbox_status_counts")
        assert "smtp_oauth_credentials" not in await _tables(engine)
        await migrate.upgrade(engine)
        assert "smtp_oauth_credentials" in await _tables(engine)
    finally:
        await engine.dispose()


async def test_delivery_events_table_comes_and_goes_with_0019(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine, "0019_delivery_events")
        assert "delivery_events" in await _tables(engine)
        assert {
            "ix_delivery_events_org_address",
            "ix_delivery_events_org_report",
            "ix_delivery_events_org_outbox",
        } <= await _indexes(engine, "delivery_events")
        assert "bounce_mailboxes" in await _tables(engine)
        await migrate.downgrade(engine, "0018_event_dates")
        assert not {"delivery_events", "bounce_mailboxes"} & await _tables(engine)
        await migrate.upgrade(engine)
        assert "delivery_events" in await _tables(engine)
    finally:
        await engine.dispose()


async def test_event_dates_come_and_go_with_0018(empty_database: str) -> None:
    engine = create_engine(to_async_url(empty_database))
    try:
        await migrate.upgrade(engine, "0017_password_reset")
        assert {"starts_on", "ends_on"}.isdisjoint(await _columns(engine, "events"))
        async with engine.begin() as conn:  # an event from before the columns
            org = "00000000-0000-4000-8000-000000000001"
            await conn.execute(
                text(
                    "INSERT INTO organizations (id, name, created_at, require_follow_up_consent)"
                    " VALUES (:id, 'Old', CURRENT_TIMESTAMP, true)"
                ),
                {"id": org},
            )
            await conn.execute(
                text(
                    "INSERT INTO events (id, organization_id, name, languages, questions, status,"
                    " created_at, updated_at) VALUES (:id, :org, 'Old fair', '[\"de\"]', '[]',"
                    " 'live', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": "00000000-0000-4000-8000-000000000003", "org": org},
            )
        await migrate.upgrade(engine, "0018_event_dates")
        assert {"starts_on", "ends_on"} <= await _columns(engine, "events")
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT starts_on, ends_on FROM events"))).one() == (
                None,
                None,
            )  # existing events have no dates
            await conn.execute(text("UPDATE events SET starts_on = '2027-05-12'"))
            day = await conn.scalar(text("SELECT starts_on FROM events"))
        assert str(day) == "2027-05-12"
        await migrate.downgrade(engine, "0017_password_reset")
        assert {"starts_on", "ends_on"}.isdisjoint(await _columns(engine, "events"))
        await migrate.upgrade(engine)
        assert {"starts_on", "ends_on"} <= await _columns(engine, "events")
    finally:
        await engine.dispose()
