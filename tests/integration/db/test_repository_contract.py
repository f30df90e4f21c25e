"""One contract for the identity repositories, held by the in-memory fakes and by the SQL
adapters on both databases (like Django's ``SharedEmailBackendTests``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.fakes import FakeDatabase
from tests.support.orgs import unique_email
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

UowFactory = Callable[[], Any]


@pytest.fixture(params=["fake", "sql"])
def make_uow(request: pytest.FixtureRequest, runtime: Runtime) -> UowFactory:
    # The fake runs once per backend too: cheap, and it keeps one parametrization.
    if request.param == "fake":
        return FakeDatabase().uow
    return runtime.uow


async def _org_with_admin(make_uow: UowFactory) -> tuple[uuid.UUID, uuid.UUID]:
    async with make_uow() as uow:
        org = await uow.organizations.add("Org", NOW)
        admin = await uow.users.add(
            org.id,
            email=unique_email(),
            display_name="A",
            role=Role.ADMIN,
            password_hash="h",
            now=NOW,
        )
        await uow.commit()
    return org.id, admin.id


async def test_uncommitted_work_is_rolled_back(make_uow: UowFactory) -> None:
    async with make_uow() as uow:
        org = await uow.organizations.add("Ghost", NOW)
    async with make_uow() as uow:
        assert await uow.organizations.get(org.id) is None


async def test_users_are_scoped_by_organization(make_uow: UowFactory) -> None:
    org_a, admin_a = await _org_with_admin(make_uow)
    org_b, admin_b = await _org_with_admin(make_uow)
    async with make_uow() as uow:
        assert await uow.users.get(org_a, admin_b) is None
        assert (await uow.users.get(org_a, admin_a)) is not None
        assert [u.id for u in await uow.users.list(org_b)] == [admin_b]
        assert await uow.users.update(org_a, admin_b, role=Role.USER, now=NOW) is None
        assert (await uow.users.get(org_b, admin_b)).role is Role.ADMIN  # type: ignore[union-attr]


async def test_update_and_admin_count(make_uow: UowFactory) -> None:
    org, admin = await _org_with_admin(make_uow)
    async with make_uow() as uow:
        assert await uow.users.count_admins(org) == 1
        changed = await uow.users.update(org, admin, disabled=True, now=NOW)
        assert changed is not None and changed.disabled
        assert await uow.users.count_admins(org) == 0
        await uow.commit()
    async with make_uow() as uow:
        found = await uow.users.find_for_login((await uow.users.get(org, admin)).email)  # type: ignore[union-attr]
        assert found is not None and found[0].disabled and found[1] == "h"


async def test_tokens_resolve_until_revoked_and_never_across_organizations(
    make_uow: UowFactory,
) -> None:
    org, admin = await _org_with_admin(make_uow)
    other_org, _ = await _org_with_admin(make_uow)
    secret_hash = uuid.uuid4().hex
    async with make_uow() as uow:
        token = await uow.tokens.add(
            org, user_id=admin, name="t", prefix="vm_x", secret_hash=secret_hash, now=NOW
        )
        await uow.commit()
    async with make_uow() as uow:
        found = await uow.tokens.find_active(secret_hash)
        assert found is not None and found[1].id == admin
        assert await uow.tokens.get(other_org, token.id) is None
        await uow.tokens.revoke(other_org, token.id, NOW)  # wrong organization: no effect
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.tokens.find_active(secret_hash) is not None
        await uow.tokens.revoke(org, token.id, NOW)
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.tokens.find_active(secret_hash) is None
        revoked = await uow.tokens.get(org, token.id)
        assert revoked is not None and revoked.revoked_at == NOW


async def test_session_lookup_respects_expiry_and_delete(make_uow: UowFactory) -> None:
    org, admin = await _org_with_admin(make_uow)
    key = uuid.uuid4().hex
    async with make_uow() as uow:
        await uow.sessions.add(
            org,
            user_id=admin,
            secret_hash=key,
            csrf_token="csrf",
            now=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        await uow.commit()
    async with make_uow() as uow:
        live = await uow.sessions.find_active(key, NOW + timedelta(minutes=59))
        assert live is not None and live[1] == "csrf"
        assert await uow.sessions.find_active(key, NOW + timedelta(hours=1)) is None
        await uow.sessions.delete(key)
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.sessions.find_active(key, NOW) is None


async def test_login_failures_count_within_window_and_clear(make_uow: UowFactory) -> None:
    key = f"email:{uuid.uuid4().hex}"
    async with make_uow() as uow:
        for minutes in (0, 5, 20):
            await uow.login_failures.record(key, NOW + timedelta(minutes=minutes))
        await uow.commit()
    async with make_uow() as uow:
        since = NOW + timedelta(minutes=1)
        assert await uow.login_failures.count_since(key, since) == 2
        assert await uow.login_failures.oldest_since(key, since) == NOW + timedelta(minutes=5)
        await uow.login_failures.clear(key)
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.login_failures.count_since(key, NOW) == 0


async def test_smtp_settings_save_keeps_unnamed_secrets_and_clears_none(
    make_uow: UowFactory,
) -> None:
    from visitmail.domain.smtp_settings import Security, SmtpSettings
    from visitmail.services.ports import SmtpSecretField

    org, admin = await _org_with_admin(make_uow)
    other, _ = await _org_with_admin(make_uow)
    settings = SmtpSettings(
        host="smtp.example.com",
        port=587,
        security=Security.STARTTLS,
        sender_email="sales@example.com",
        username="sales@example.com",
    )
    async with make_uow() as uow:
        await uow.smtp_settings.save(
            org,
            settings,
            sealed={SmtpSecretField.PASSWORD: "tok-1", SmtpSecretField.PROXY_PASSWORD: "tok-2"},
            actor_id=admin,
            now=NOW,
        )
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.smtp_settings.get(other) is None
        await uow.smtp_settings.save(
            org, settings, sealed={SmtpSecretField.PROXY_PASSWORD: None}, actor_id=admin, now=NOW
        )
        assert await uow.smtp_settings.replace_sealed(
            org, SmtpSecretField.PASSWORD, old="tok-1", new="tok-1b"
        )
        assert not await uow.smtp_settings.replace_sealed(
            org, SmtpSecretField.PASSWORD, old="stale", new="x"
        )
        await uow.commit()
    async with make_uow() as uow:
        stored = await uow.smtp_settings.get(org)
        assert stored is not None
        assert stored.settings.host == "smtp.example.com"
        assert dict(stored.sealed) == {SmtpSecretField.PASSWORD: "tok-1b"}
        assert org in await uow.smtp_settings.organizations_with_secrets()
        assert other not in await uow.smtp_settings.organizations_with_secrets()
