"""Changing and resetting passwords against the in-memory fakes (the same services run on
both databases in tests/integration/web/test_accounts.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.fakes import FakeDatabase
from visitmail.adapters.crypto.passwords import Argon2Hasher
from visitmail.domain.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from visitmail.domain.identity import PasswordState, Principal, User
from visitmail.domain.roles import Role
from visitmail.services import identity, login, passwords

HASHER = Argon2Hasher(fast=True)
DUMMY = HASHER.hash("dummy")
POLICY = login.LoginPolicy(max_failures=3)
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
OLD = "old password 1234"
NEW = "new password 5678"


def clock() -> datetime:
    return NOW


async def _setup(db: FakeDatabase) -> tuple[identity.NewOrganization, User]:
    async with db.uow() as uow:
        org = await identity.create_organization(
            uow, HASHER, name="Acme", admin_email="admin@acme.example", admin_name="Ada"
        )
    admin = Principal(user=org.admin, via="token")
    async with db.uow() as uow:
        made = await identity.create_user(
            uow,
            HASHER,
            admin,
            email="ben@acme.example",
            role=Role.USER,
            display_name="Ben",
            password=OLD,
        )
    return org, made.user


async def _log_in(db: FakeDatabase, password: str) -> login.NewSession:
    async with db.uow() as uow:
        return await login.log_in(
            uow,
            HASHER,
            email="ben@acme.example",
            password=password,
            client="c",
            policy=POLICY,
            dummy_hash=DUMMY,
            clock=clock,
        )


async def test_change_ends_every_session_and_reissues_one() -> None:
    db = FakeDatabase()
    _org, ben = await _setup(db)
    await _log_in(db, OLD)
    await _log_in(db, OLD)
    assert len(db.state.sessions) == 2
    async with db.uow() as uow:
        opened = await passwords.change_own_password(
            uow,
            HASHER,
            Principal(user=ben, via="session"),
            current_password=OLD,
            new_password=NEW,
            new_password_confirm=NEW,
            policy=POLICY,
            reissue_session=True,
            clock=clock,
        )
    assert opened is not None and len(db.state.sessions) == 1
    assert db.state.audit[-1]["action"] == "user.password_change"
    assert db.state.audit[-1]["fields"] == ["password"]
    with pytest.raises(NotAuthenticated):
        await _log_in(db, OLD)
    await _log_in(db, NEW)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "field"),
    [
        ("", NEW, NEW, "current_password"),
        ("wrong wrong wrong", NEW, NEW, "current_password"),
        (OLD, "short", "short", "new_password"),
        (OLD, "z" * 1025, "z" * 1025, "new_password"),
        (OLD, OLD, OLD, "new_password"),
        (OLD, NEW, NEW + "x", "new_password_confirm"),
    ],
)
async def test_each_rule_names_its_field(current: str, new: str, confirm: str, field: str) -> None:
    db = FakeDatabase()
    _org, ben = await _setup(db)
    with pytest.raises(InvalidInput) as caught:
        async with db.uow() as uow:
            await passwords.change_own_password(
                uow,
                HASHER,
                Principal(user=ben, via="session"),
                current_password=current,
                new_password=new,
                new_password_confirm=confirm,
                policy=POLICY,
                clock=clock,
            )
    assert caught.value.field == field
    for typed in (current, new, confirm):
        assert not typed or typed not in caught.value.message  # never echoed
    await _log_in(db, OLD)  # unchanged


async def test_reset_gives_a_one_time_password_that_opens_one_session() -> None:
    db = FakeDatabase()
    org, ben = await _setup(db)
    await _log_in(db, OLD)
    admin = Principal(user=org.admin, via="token")
    async with db.uow() as uow:
        await identity.issue_token(uow, Principal(user=ben, via="token"), name="ben's")
    async with db.uow() as uow:
        reset = await passwords.reset_password(uow, HASHER, admin, ben.id, clock=clock)
    assert reset.sessions_ended == 1 and reset.tokens_revoked == 1
    assert reset.one_time_password not in repr(reset)
    assert reset.user.password_state is PasswordState.ONE_TIME
    opened = await _log_in(db, reset.one_time_password)
    assert opened.principal.user.must_change_password
    assert db.state.users[ben.id].password_state is PasswordState.ONE_TIME_USED
    with pytest.raises(NotAuthenticated, match="used already"):
        await _log_in(db, reset.one_time_password)
    with pytest.raises(PermissionDenied):  # no API token while the change is due
        async with db.uow() as uow:
            await identity.issue_token(uow, opened.principal, name="sneaky")
    async with db.uow() as uow:
        await passwords.change_own_password(
            uow,
            HASHER,
            opened.principal,
            current_password=reset.one_time_password,
            new_password=NEW,
            policy=POLICY,
            clock=clock,
        )
    assert db.state.users[ben.id].password_state is PasswordState.SET
    assert not (await _log_in(db, NEW)).principal.user.must_change_password


async def test_reset_is_for_admins_of_the_organization_and_not_for_oneself() -> None:
    db = FakeDatabase()
    org, ben = await _setup(db)
    other = FakeDatabase()
    _other_org, stranger = await _setup(other)
    admin = Principal(user=org.admin, via="token")
    with pytest.raises(NotFound):
        async with db.uow() as uow:
            await passwords.reset_password(uow, HASHER, admin, stranger.id)
    with pytest.raises(PermissionDenied):
        async with db.uow() as uow:
            await passwords.reset_password(
                uow, HASHER, Principal(user=ben, via="session"), org.admin.id
            )
    with pytest.raises(Conflict) as own:
        async with db.uow() as uow:
            await passwords.reset_password(uow, HASHER, admin, org.admin.id)
    assert own.value.field == "user_id"
