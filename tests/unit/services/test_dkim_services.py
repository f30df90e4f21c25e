"""The DKIM use cases against the in-memory fakes (real key material, real secret box):
defaults, the first key becomes active, rotation only adds, on/off rules, what the signer
loader decides, the published selector, and the master-key rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.fakes import FakeDatabase
from visitmail.adapters.crypto.keyring import KeyRing, new_key
from visitmail.adapters.crypto.passwords import Argon2Hasher
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.dkim.keys import DkimpyKeys
from visitmail.domain.dkim import DkimAlgorithm
from visitmail.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.domain.smtp_settings import Security, SmtpSettings
from visitmail.services import dkim, identity, smtp_config

HASHER = Argon2Hasher(fast=True)
RING = KeyRing([new_key("k1")])
BOX = SecretBox(RING)
KEYS = DkimpyKeys()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


async def _org(db: FakeDatabase, sender: str | None = "sales@mail.acme.example") -> Principal:
    async with db.uow() as uow:
        created = await identity.create_organization(
            uow, HASHER, name="Acme", admin_email="admin@acme.example"
        )
    admin = Principal(user=created.admin, via="token")
    if sender is not None:
        settings = SmtpSettings(
            host="smtp.acme.example", port=587, security=Security.STARTTLS, sender_email=sender
        )
        async with db.uow() as uow:
            await smtp_config.put_settings(uow, BOX, admin, settings, {})
    return admin


async def _generate(db: FakeDatabase, admin: Principal, clock: Clock, **kw: object) -> dkim.DkimKey:
    async with db.uow() as uow:
        return await dkim.generate_key(
            uow, BOX, KEYS, admin, algorithm=kw.pop("algorithm", DkimAlgorithm.ED25519),  # type: ignore[arg-type]
            clock=clock, **kw,  # type: ignore[arg-type]
        )  # fmt: skip


async def test_defaults_first_key_active_but_signing_off_until_turned_on() -> None:
    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    key = await _generate(db, admin, clock)
    assert key.selector == "vm202612" and key.domain == "mail.acme.example"
    async with db.uow() as uow:
        status = await dkim.get_status(uow, admin)
        assert status.active == key and status.enabled is False
        assert status.problems == ["signing is off"]
        assert await dkim.DkimSigning(BOX, KEYS).load(uow, admin.organization_id,
                                                      "sales@mail.acme.example") is None  # fmt: skip
        published = await dkim.published_selector(uow, admin.organization_id)
    assert published is not None and published.enabled is False
    assert published.record_name == "vm202612._domainkey.mail.acme.example"
    assert published.record_value.startswith("v=DKIM1; k=ed25519; p=")

    async with db.uow() as uow:
        on = await dkim.update_state(uow, admin, enabled=True, clock=clock)
    assert on.signing and on.problems == []
    async with db.uow() as uow:
        signer = await dkim.DkimSigning(BOX, KEYS).load(
            uow, admin.organization_id, "sales@mail.acme.example"
        )
        # the sender moved to another domain: the key no longer aligns, nothing is signed
        other = await dkim.DkimSigning(BOX, KEYS).load(
            uow, admin.organization_id, "sales@elsewhere.example"
        )
        audit = [e["action"] for e in uow.work.audit]
    assert signer is not None and other is None
    assert audit[-2:] == ["dkim.generate", "dkim.update"]


async def test_a_new_key_is_only_added_and_the_old_one_keeps_signing() -> None:
    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    first = await _generate(db, admin, clock, selector="s1")
    second = await _generate(db, admin, clock, selector="s2", domain="acme.example")
    async with db.uow() as uow:
        status = await dkim.get_status(uow, admin)
    assert status.active == first and [k.selector for k in status.keys] == ["s2", "s1"]
    async with db.uow() as uow:
        switched = await dkim.update_state(uow, admin, active_key_id=second.id, clock=clock)
    assert switched.active == second and switched.enabled is False
    with pytest.raises(Conflict) as caught:
        async with db.uow() as uow:
            await dkim.delete_key(uow, admin, second.id, clock=clock)
    assert caught.value.field == "key_id"
    async with db.uow() as uow:
        await dkim.delete_key(uow, admin, first.id, clock=clock)
    with pytest.raises(NotFound):
        async with db.uow() as uow:
            await dkim.delete_key(uow, admin, first.id, clock=clock)


async def test_rules_name_the_field() -> None:
    db, clock = FakeDatabase(), Clock()
    unconfigured = await _org(db, sender=None)
    with pytest.raises(NotFound) as missing:
        await _generate(db, unconfigured, clock)
    assert missing.value.code == "not_configured"

    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    with pytest.raises(InvalidInput) as bad:
        await _generate(db, admin, clock, selector="a.b")
    assert bad.value.field == "selector"
    with pytest.raises(InvalidInput) as child:
        await _generate(db, admin, clock, domain="x.mail.acme.example")
    assert child.value.field == "domain"
    with pytest.raises(InvalidInput) as nothing:
        async with db.uow() as uow:
            await dkim.update_state(uow, admin, enabled=True, clock=clock)
    assert nothing.value.field == "enabled"

    await _generate(db, admin, clock, selector="dup")
    with pytest.raises(Conflict) as taken:
        await _generate(db, admin, clock, selector="DUP")
    assert taken.value.field == "selector"
    for n in range(dkim.MAX_KEYS - 1):
        await _generate(db, admin, clock, selector=f"k{n}")
    with pytest.raises(Conflict) as full:
        await _generate(db, admin, clock, selector="one-more")
    assert full.value.field == "keys"

    async with db.uow() as uow:
        made = await identity.create_user(
            uow, HASHER, admin, email="em@acme.example", role=Role.EVENT_MANAGER,
            display_name="Em",
        )  # fmt: skip
    manager = Principal(user=made.user, via="token")
    with pytest.raises(PermissionDenied):
        await _generate(db, manager, clock)
    with pytest.raises(PermissionDenied):
        async with db.uow() as uow:
            await dkim.get_status(uow, manager)


async def test_master_key_rotation_reseals_and_the_key_still_opens() -> None:
    db, clock = FakeDatabase(), Clock()
    admin = await _org(db)
    key = await _generate(db, admin, clock, algorithm=DkimAlgorithm.RSA)
    async with db.uow() as uow:
        await dkim.update_state(uow, admin, enabled=True, clock=clock)
    ring = KeyRing([*RING.keys, new_key("k2")])
    result = await dkim.rotate_keys(db.uow, SecretBox(ring), clock=clock)
    assert (result.reencrypted, result.unreadable) == (1, 0)
    async with db.uow() as uow:
        ((_key, token),) = await uow.dkim_keys.sealed_all(admin.organization_id)
        assert token.startswith("v1:k2:")
        assert await dkim.DkimSigning(SecretBox(ring), KEYS).load(
            uow, admin.organization_id, "sales@mail.acme.example"
        )
        assert uow.work.audit[-1]["action"] == "dkim.rotate_keys"
        assert uow.work.audit[-1]["fields"] == [str(key.id)]
    again = await dkim.rotate_keys(db.uow, SecretBox(ring), clock=clock)
    assert (again.reencrypted, again.already_current) == (0, 1)
    lost = await dkim.rotate_keys(db.uow, SecretBox(KeyRing([new_key("k3")])), clock=clock)
    assert lost.unreadable == 1 and lost.unreadable_organizations == (admin.organization_id,)
