"""Fixtures of the bounce-mailbox tests: a private Dovecot (module scope) holding the
``BOUNCES`` mailbox, and the HTTP app on a runtime that may reach loopback (as
``--dev-inbox`` allows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.support.dovecot_server import DovecotServer, running_dovecot
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import LOOPBACK, configure_server
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.imap.mailbox import poll_mailbox
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import bounce_mailbox
from visitmail.services.bounce_mailbox import PollResult
from visitmail.services.oauth_tokens import AccessTokenSource
from visitmail.web.app import create_app

SAMPLES = Path(__file__).resolve().parents[2] / "unit" / "domain" / "reports_samples"
BOUNCES = "returns@acme.example"
PASSWORD = "Returns-Box-Pa55"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    with running_dovecot(ca=trustme.CA(), users={BOUNCES: PASSWORD}) as server:
        yield server


@pytest.fixture(scope="module")
async def loopback_runtime(
    runtime: Runtime, database_url: str, tmp_path_factory: Any
) -> AsyncIterator[Runtime]:
    """The app may reach loopback (the test's Dovecot), as ``--dev-inbox`` allows."""
    settings = make_settings(
        database_url,
        Path(tmp_path_factory.mktemp("bounce-var")),
        smtp_allowed_networks="127.0.0.0/8",
    )
    rt = build_runtime(settings, fast_hashing=True)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture(scope="module")
def loopback_app(loopback_runtime: Runtime) -> FastAPI:
    return create_app(loopback_runtime)


@pytest.fixture
async def api(loopback_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=loopback_app, client=("10.8.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def admin(loopback_runtime: Runtime, dovecot: DovecotServer) -> AsyncIterator[OrgFixture]:
    org = await new_org(loopback_runtime)
    await configure_server(loopback_runtime, org, 2525, ca_pem=dovecot.ca_pem)
    yield org
    dovecot.empty(BOUNCES)


def clock() -> datetime:
    """Real time: Dovecot dates the mail it holds with the real clock."""
    return datetime.now(UTC)


async def poll_bounces(
    runtime: Runtime,
    org: OrgFixture,
    *,
    tokens: AccessTokenSource | None = None,
    box: SecretBox | None = None,
) -> PollResult | None:
    """One poll of ``org``'s bounce mailbox over real IMAP, as the worker runs it (the
    network guard allows loopback)."""
    return await bounce_mailbox.poll_once(
        runtime.uow,
        box or SecretBox(runtime.keyring),
        org.organization.id,
        reader=poll_mailbox,
        policy=LOOPBACK,
        tokens=tokens,
        clock=clock,
    )
