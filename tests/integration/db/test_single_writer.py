"""SQLite in one process: every write goes through the one writer connection, one
transaction after the other (writers queue in the process, none waits in SQLite's busy
handler), and readers never wait for a writer. PostgreSQL keeps one engine for both."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import make_settings
from tests.support.databases import sqlite_url
from tests.support.orgs import OrgFixture, unique_email
from visitmail.adapters.db import migrate
from visitmail.adapters.db.engine import create_engine
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import identity


@pytest.fixture
async def no_busy_wait_runtime(tmp_path: Path) -> Any:
    """A runtime on a fresh SQLite file whose connections do not wait at all when the
    database is locked (busy timeout 0): any contention between them would fail with
    "database is locked" instead of sleeping."""
    settings = make_settings(sqlite_url(tmp_path), tmp_path / "var")
    runtime = build_runtime(
        settings,
        fast_hashing=True,
        engine_factory=lambda url: create_engine(url, busy_timeout_ms=0),
    )
    await migrate.upgrade(runtime.engine)
    try:
        yield runtime
    finally:
        await runtime.close()


async def test_many_concurrent_writers_all_commit_one_after_the_other(
    no_busy_wait_runtime: Runtime,
) -> None:
    runtime = no_busy_wait_runtime
    async with runtime.uow() as uow:
        created = await identity.create_organization(
            uow, runtime.hasher, name="Acme", admin_email=unique_email("admin")
        )
    org = OrgFixture(created.organization, created.admin, created.admin_password, created.token)

    in_use = 0
    most = 0

    def checked_out(*_args: object) -> None:
        nonlocal in_use, most
        in_use += 1
        most = max(most, in_use)

    def checked_in(*_args: object) -> None:
        nonlocal in_use
        in_use -= 1

    event.listen(runtime.engine.sync_engine, "checkout", checked_out)
    event.listen(runtime.engine.sync_engine, "checkin", checked_in)

    async def one_writer(n: int) -> None:
        async with runtime.uow() as uow:
            await identity.create_user(
                uow,
                runtime.hasher,
                org.principal,
                email=unique_email(f"w{n}"),
                role=Role.REPORTER,
                display_name=f"Writer {n}",
            )

    await asyncio.gather(*(one_writer(n) for n in range(40)))

    assert most == 1  # one writer connection, used by one transaction at a time
    async with runtime.uow(read_only=True) as uow:
        users = await identity.list_users(uow, org.principal)
    assert len(users) == 41


async def test_a_reader_proceeds_while_a_write_transaction_is_open(
    no_busy_wait_runtime: Runtime,
) -> None:
    runtime = no_busy_wait_runtime
    async with runtime.uow() as uow:
        created = await identity.create_organization(
            uow, runtime.hasher, name="Acme", admin_email=unique_email("admin")
        )
    principal = OrgFixture(
        created.organization, created.admin, created.admin_password, created.token
    ).principal

    async with runtime.uow() as writer:
        await writer.organizations.update(created.organization.id, name="Renamed")
        await writer.session.flush()  # the UPDATE is sent: the writer holds the write lock
        # the write transaction is open (uncommitted): a reader sees the committed state
        async with runtime.uow(read_only=True) as reader:
            seen = await identity.get_organization(reader, principal)
        assert seen.name == "Acme"
        await writer.commit()

    async with runtime.uow(read_only=True) as reader:
        assert (await identity.get_organization(reader, principal)).name == "Renamed"


async def test_a_read_only_unit_of_work_cannot_write_on_sqlite(
    no_busy_wait_runtime: Runtime,
) -> None:
    runtime = no_busy_wait_runtime
    async with runtime.uow(read_only=True) as uow:
        with pytest.raises(Exception, match=r"readonly|read-only|query_only"):
            await identity.create_organization(
                uow, runtime.hasher, name="Acme", admin_email=unique_email("admin")
            )


async def test_read_only_units_of_work_see_committed_writes(
    runtime: Runtime, org: OrgFixture
) -> None:
    """On both databases: what a writer committed, a read-only unit of work reads."""
    async with runtime.uow() as uow:
        await identity.update_organization(uow, org.principal, name="Acme Renamed")
    async with runtime.uow(read_only=True) as uow:
        assert (await identity.get_organization(uow, org.principal)).name == "Acme Renamed"
