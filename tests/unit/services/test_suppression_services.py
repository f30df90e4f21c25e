"""The suppression-list use cases against the in-memory fakes: roles, the address rule,
already listed, lifting, and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fakes import FakeDatabase
from visitmail.adapters.crypto.passwords import Argon2Hasher
from visitmail.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services import identity, suppressions
from visitmail.services.follow_up_ports import Refusal

HASHER = Argon2Hasher(fast=True)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)  # every action at its own time
        return self.now


async def _org(db: FakeDatabase) -> Principal:
    async with db.uow() as uow:
        created = await identity.create_organization(
            uow, HASHER, name="Acme", admin_email="admin@acme.example"
        )
    return Principal(user=created.admin, via="token")


async def _member(db: FakeDatabase, admin: Principal, role: Role) -> Principal:
    async with db.uow() as uow:
        made = await identity.create_user(
            uow,
            HASHER,
            admin,
            email=f"{role.value}@acme.example",
            role=role,
            display_name=role.value.replace("_", " ").title(),
        )
    return Principal(user=made.user, via="token")


async def test_add_checks_and_lower_cases_the_address_and_is_audited() -> None:
    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    async with db.uow() as uow:
        entry = await suppressions.add_suppression(
            uow, admin, "  Lead@Firma.LOCAL ", note=" asked by phone ", clock=clock
        )
    assert entry.address == "lead@firma.local"  # special-use domains are valid for SMTP
    assert entry.reason is SuppressionReason.MANUAL
    assert entry.note == "asked by phone"
    assert entry.created_by == admin.user.id and entry.created_by_name == admin.user.display_name
    [audit] = [a for a in db.state.audit if str(a["action"]).startswith("suppression.")]
    assert audit["action"] == "suppression.add" and audit["target"] == "lead@firma.local"
    assert audit["actor_id"] == admin.user.id and audit["at"] == clock.now


@pytest.mark.parametrize(
    ("address", "note", "field"),
    [
        ("no address", None, "address"),
        ("lead@example.org\nBcc: x@example.org", None, "address"),
        ("x" * 330 + "@example.org", None, "address"),
        ("lead@example.org", "line\u2028separator", "note"),
        ("lead@example.org", "x" * 501, "note"),
        ("lead@example.org", "\ud800", "note"),
    ],
)
async def test_bad_input_names_the_field_and_changes_nothing(
    address: str, note: str | None, field: str
) -> None:
    db = FakeDatabase()
    admin = await _org(db)
    audited = len(db.state.audit)
    async with db.uow() as uow:
        with pytest.raises(InvalidInput) as caught:
            await suppressions.add_suppression(uow, admin, address, note=note)
    assert caught.value.field == field
    assert db.state.suppressions == {} and len(db.state.audit) == audited


async def test_an_address_already_listed_keeps_its_reason_and_is_a_conflict() -> None:
    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    async with db.uow() as uow:
        await uow.suppressions.add(
            admin.organization_id, "lead@example.org", SuppressionReason.UNSUBSCRIBED, clock()
        )
        await uow.commit()
    audited = len(db.state.audit)
    async with db.uow() as uow:
        with pytest.raises(Conflict) as caught:
            await suppressions.add_suppression(uow, admin, "LEAD@example.org", clock=clock)
    assert caught.value.code == "already_suppressed" and caught.value.field == "address"
    assert "unsubscribed" in caught.value.message
    [kept] = db.state.suppressions.values()
    assert kept.reason is SuppressionReason.UNSUBSCRIBED
    assert len(db.state.audit) == audited


async def test_a_lift_forgets_earlier_refusals_but_not_later_ones() -> None:
    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    org = admin.organization_id
    refusal = Refusal(550, "5.1.1", "5.1.1 User unknown")
    async with db.uow() as uow:
        uow.suppressions.record_refusal(org, "gone@example.org", refusal, clock())
        await uow.suppressions.add_many(
            org, ["gone@example.org"], SuppressionReason.REJECTED, clock(), refusals={}
        )
        await uow.commit()
    async with db.uow() as uow:
        await suppressions.lift_suppression(uow, admin, "Gone@Example.org", clock=clock)
    async with db.uow() as uow:
        assert await uow.suppressions.listed(org, ["gone@example.org"]) == set()
        assert await uow.suppressions.rejected_among(org, ["gone@example.org"]) == {}
        uow.suppressions.record_refusal(org, "gone@example.org", refusal, clock())
        assert await uow.suppressions.rejected_among(org, ["gone@example.org"]) == {
            "gone@example.org": refusal
        }
    assert db.state.audit[-1]["action"] == "suppression.lift"


async def test_lifting_what_is_not_listed_is_not_found() -> None:
    db = FakeDatabase()
    admin = await _org(db)
    for address in ("nobody@example.org", "", "\ud800@example.org", "x" * 400):
        async with db.uow() as uow:
            with pytest.raises(NotFound):
                await suppressions.lift_suppression(uow, admin, address)
    assert not [a for a in db.state.audit if str(a["action"]).startswith("suppression.")]


async def test_roles_curators_read_managers_change() -> None:
    db = FakeDatabase()
    admin = await _org(db)
    curator = await _member(db, admin, Role.EVENT_CURATOR)
    manager = await _member(db, admin, Role.EVENT_MANAGER)
    user = await _member(db, admin, Role.USER)
    async with db.uow() as uow:
        await suppressions.add_suppression(uow, manager, "a@example.org")
    async with db.uow() as uow:
        assert (await suppressions.list_suppressions(uow, curator)).total == 1
        assert len(await suppressions.list_changes(uow, curator)) == 1
        with pytest.raises(PermissionDenied):
            await suppressions.add_suppression(uow, curator, "b@example.org")
        with pytest.raises(PermissionDenied):
            await suppressions.lift_suppression(uow, curator, "a@example.org")
        with pytest.raises(PermissionDenied):
            await suppressions.list_suppressions(uow, user)
        with pytest.raises(PermissionDenied):
            await suppressions.list_changes(uow, user)
    async with db.uow() as uow:
        await suppressions.lift_suppression(uow, manager, "a@example.org")


async def test_list_pages_search_and_changes_name_who() -> None:
    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    manager = await _member(db, admin, Role.EVENT_MANAGER)
    for address in ("anna@example.org", "bert@example.org", "ANNE@example.org"):
        async with db.uow() as uow:
            await suppressions.add_suppression(uow, admin, address, clock=clock)
    async with db.uow() as uow:
        await suppressions.lift_suppression(uow, manager, "bert@example.org", clock=clock)
    async with db.uow() as uow:
        found = await suppressions.list_suppressions(uow, admin, search=" AN ", limit=1)
        assert [e.address for e in found.items] == ["anne@example.org"] and found.total == 2
        rest = await suppressions.list_suppressions(uow, admin, search="an", limit=1, offset=1)
        assert [e.address for e in rest.items] == ["anna@example.org"]
        changes = await suppressions.list_changes(uow, admin)
    assert [(c.action, c.address, c.actor_name) for c in changes] == [
        ("lift", "bert@example.org", manager.user.display_name),
        ("add", "anne@example.org", admin.user.display_name),
        ("add", "bert@example.org", admin.user.display_name),
        ("add", "anna@example.org", admin.user.display_name),
    ]
    async with db.uow() as uow:
        for kwargs, field in (
            ({"limit": 0}, "limit"),
            ({"limit": 201}, "limit"),
            ({"offset": -1}, "offset"),
            ({"search": "x" * 321}, "search"),
            ({"search": "a\nb"}, "search"),
        ):
            with pytest.raises(InvalidInput) as caught:
                await suppressions.list_suppressions(uow, admin, **kwargs)  # type: ignore[arg-type]
            assert caught.value.field == field
