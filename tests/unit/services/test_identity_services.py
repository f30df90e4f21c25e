"""The identity and login services against the in-memory fakes: fast and deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fakes import FakeDatabase
from visitmail.adapters.crypto.passwords import Argon2Hasher
from visitmail.domain.errors import Conflict, NotAuthenticated, PermissionDenied, RateLimited
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services import identity, login

HASHER = Argon2Hasher(fast=True)
DUMMY = HASHER.hash("dummy")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _org(db: FakeDatabase) -> identity.NewOrganization:
    async with db.uow() as uow:
        return await identity.create_organization(
            uow, HASHER, name="Acme", admin_email="Admin@Acme.example"
        )


async def test_create_organization_gives_admin_password_and_working_token() -> None:
    db = FakeDatabase()
    created = await _org(db)
    assert created.admin.email == "admin@acme.example"
    assert created.admin.role is Role.ADMIN
    async with db.uow() as uow:
        principal = await identity.authenticate_token(uow, created.token)
    assert principal is not None and principal.user.id == created.admin.id
    assert db.state.audit[0]["action"] == "organization.create"


async def test_token_last_use_is_written_at_most_once_a_minute() -> None:
    db, clock = FakeDatabase(), Clock()
    created = await _org(db)
    for _ in range(3):
        async with db.uow() as uow:
            await identity.authenticate_token(uow, created.token, clock=clock)
    first = next(iter(db.state.tokens.values())).last_used_at
    assert first == clock.now
    clock.now += timedelta(seconds=30)
    async with db.uow() as uow:
        await identity.authenticate_token(uow, created.token, clock=clock)
    assert next(iter(db.state.tokens.values())).last_used_at == first
    clock.now += timedelta(seconds=60)
    async with db.uow() as uow:
        await identity.authenticate_token(uow, created.token, clock=clock)
    assert next(iter(db.state.tokens.values())).last_used_at == clock.now


async def test_a_failed_service_call_commits_nothing() -> None:
    db = FakeDatabase()
    created = await _org(db)
    admin = Principal(user=created.admin, via="token")
    before = len(db.state.users)
    async with db.uow() as uow:
        with pytest.raises(Conflict):
            await identity.create_user(
                uow,
                HASHER,
                admin,
                email="admin@acme.example",
                role=Role.USER,
                display_name="Ada Admin",
            )
    assert len(db.state.users) == before


async def test_non_admin_cannot_create_users() -> None:
    db = FakeDatabase()
    created = await _org(db)
    async with db.uow() as uow:
        made = await identity.create_user(
            uow,
            HASHER,
            Principal(user=created.admin, via="token"),
            email="curator@acme.example",
            role=Role.EVENT_CURATOR,
            display_name="Cora Curator",
        )
    curator = Principal(user=made.user, via="token")
    async with db.uow() as uow:
        with pytest.raises(PermissionDenied):
            await identity.create_user(
                uow, HASHER, curator, email="x@acme.example", role=Role.ADMIN, display_name="X"
            )


async def test_login_rate_limit_counts_per_email_and_expires() -> None:
    db, clock = FakeDatabase(), Clock()
    created = await _org(db)
    policy = login.LoginPolicy(max_failures=3, window=timedelta(minutes=15))

    async def attempt(password: str, client: str = "1.2.3.4") -> login.NewSession:
        async with db.uow() as uow:
            return await login.log_in(
                uow,
                HASHER,
                email=created.admin.email,
                password=password,
                client=client,
                policy=policy,
                dummy_hash=DUMMY,
                clock=clock,
            )

    for _ in range(3):
        with pytest.raises(NotAuthenticated):
            await attempt("wrong-wrong-wrong")
    with pytest.raises(RateLimited) as info:
        await attempt(created.admin_password, client="5.6.7.8")  # another client, same email
    assert 1 <= info.value.retry_after <= 15 * 60 + 1
    clock.now += timedelta(minutes=16)
    opened = await attempt(created.admin_password)
    assert opened.principal.user.id == created.admin.id
    async with db.uow() as uow:
        resolved = await login.resolve_session(uow, opened.secret, clock=clock)
    assert resolved is not None and resolved[1] == opened.csrf_token


async def test_sessions_end_at_their_lifetime() -> None:
    db, clock = FakeDatabase(), Clock()
    created = await _org(db)
    policy = login.LoginPolicy(session_lifetime=timedelta(hours=1))
    async with db.uow() as uow:
        opened = await login.log_in(
            uow,
            HASHER,
            email=created.admin.email,
            password=created.admin_password,
            client="c",
            policy=policy,
            dummy_hash=DUMMY,
            clock=clock,
        )
    clock.now += timedelta(hours=1, seconds=1)
    async with db.uow() as uow:
        assert await login.resolve_session(uow, opened.secret, clock=clock) is None
