"""Bearer tokens are cached for a few seconds per process: a token revoked (or a user
disabled) through this process is refused at once; one revoked by another process (the CLI,
another API node) within the cache's bound (``identity.PRINCIPAL_TTL_S``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings
from tests.support.orgs import OrgFixture, new_member
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import identity
from visitmail.services.identity import PRINCIPAL_TTL_S, PrincipalCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(runtime, "principals", PrincipalCache(clock=fake))
    return fake


@pytest.fixture
async def other_process(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A second runtime on the same database: what a CLI command or another node does."""
    other = build_runtime(make_settings(database_url, tmp_path / "var"), fast_hashing=True)
    try:
        yield other
    finally:
        await other.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/api/v1/me", headers=bearer(token))).status_code


async def test_a_token_revoked_through_this_process_is_refused_at_once(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, clock: Clock
) -> None:
    _user, token = await new_member(runtime, org, Role.USER)
    assert await me(client, token) == 200  # now cached
    (listed,) = (await client.get("/api/v1/tokens", headers=bearer(token))).json()
    reply = await client.delete(f"/api/v1/tokens/{listed['id']}", headers=org.headers)
    assert reply.status_code == 200, reply.text
    assert await me(client, token) == 401  # no clock advance needed


async def test_a_user_disabled_through_this_process_is_refused_at_once(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, clock: Clock
) -> None:
    user, token = await new_member(runtime, org, Role.USER)
    assert await me(client, token) == 200
    async with runtime.uow() as uow:
        await identity.update_user(uow, org.principal, user.id, disabled=True)
    assert await me(client, token) == 401


async def test_a_token_revoked_by_another_process_is_refused_within_the_bound(
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    clock: Clock,
    other_process: Runtime,
) -> None:
    user, token = await new_member(runtime, org, Role.USER)
    assert await me(client, token) == 200
    async with other_process.uow() as uow:
        (issued,) = await identity.list_tokens(uow, Principal(user=user, via="token"))
    async with other_process.uow() as uow:
        await identity.revoke_token(uow, org.principal, issued.id)

    clock.now += PRINCIPAL_TTL_S - 0.5
    assert await me(client, token) == 200  # still cached: the documented bound
    clock.now += 0.5
    assert await me(client, token) == 401
