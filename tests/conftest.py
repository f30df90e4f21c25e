"""Fixtures shared by every suite. The ``backend`` fixture runs each database-touching test
on SQLite *and* PostgreSQL."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.support.databases import create_postgres_database, drop_postgres_database, sqlite_url
from tests.support.dns_server import DnsTestServer
from tests.support.orgs import OrgFixture, new_org
from visitmail.adapters.db import migrate
from visitmail.config import Settings
from visitmail.runtime import Runtime, build_runtime
from visitmail.web.app import create_app

BACKENDS = [b for b in os.environ.get("VISITMAIL_TEST_BACKENDS", "sqlite,postgresql").split(",")]

TEST_KEYS = "t1:" + base64.urlsafe_b64encode(b"\x01" * 32).decode()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("sqlite"))
        return
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


def make_settings(database_url: str, var_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "var_dir": var_dir,
        "master_keys": TEST_KEYS,
        "login_max_failures": 5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsTestServer]:
    """A DNS server on loopback that the app's sender-domain check asks; a test sets its
    zone with ``dns_server.serve([...])`` (empty: every name is NXDOMAIN)."""
    server = DnsTestServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def runtime(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, dns_server: DnsTestServer
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        database_url,
        tmp_path_factory.mktemp("var"),
        max_body_bytes=64_000,
        dns_nameservers=[dns_server.address],
        dns_timeout_seconds=2,
    )
    rt = build_runtime(settings, fast_hashing=True)
    await migrate.upgrade(rt.engine)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture(scope="session")
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # A distinct client address per test keeps per-client login limits apart.
    transport = httpx.ASGITransport(
        app=app, client=(f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250)}", 4000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def org(runtime: Runtime) -> OrgFixture:
    """A fresh organization per test: tests share a database but never an organization."""
    return await new_org(runtime)
