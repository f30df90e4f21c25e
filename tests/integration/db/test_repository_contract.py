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
from visitmail.adapters.db.tables import OutboxMessageRow, OutboxRecipientRow
from visitmail.domain.dkim import DkimAlgorithm, DkimKey, DkimState
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services.follow_up_ports import Refusal

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


async def test_a_users_sessions_and_tokens_end_together_and_only_theirs(
    make_uow: UowFactory,
) -> None:
    org, admin = await _org_with_admin(make_uow)
    other_org, other_admin = await _org_with_admin(make_uow)
    keys = {who: uuid.uuid4().hex for who in ("mine1", "mine2", "theirs")}
    async with make_uow() as uow:
        for name, (o, u) in {
            "mine1": (org, admin),
            "mine2": (org, admin),
            "theirs": (other_org, other_admin),
        }.items():
            await uow.sessions.add(
                o,
                user_id=u,
                secret_hash=keys[name],
                csrf_token="c",
                now=NOW,
                expires_at=NOW + timedelta(hours=1),
            )
            await uow.tokens.add(
                o, user_id=u, name=name, prefix="vm_x", secret_hash=keys[name] + "t", now=NOW
            )
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.sessions.delete_for_user(other_org, admin) == 0  # wrong organization
        assert await uow.tokens.revoke_for_user(other_org, admin, NOW) == 0
        assert await uow.sessions.delete_for_user(org, admin) == 2
        assert await uow.tokens.revoke_for_user(org, admin, NOW) == 2
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.sessions.find_active(keys["mine1"], NOW) is None
        assert await uow.sessions.find_active(keys["mine2"], NOW) is None
        assert await uow.tokens.find_active(keys["mine1"] + "t") is None
        assert await uow.sessions.find_active(keys["theirs"], NOW) is not None
        assert await uow.tokens.find_active(keys["theirs"] + "t") is not None


async def test_password_state_is_stored(make_uow: UowFactory) -> None:
    from visitmail.domain.identity import PasswordState

    org, admin = await _org_with_admin(make_uow)
    async with make_uow() as uow:
        assert (await uow.users.get(org, admin)).password_state is PasswordState.SET  # type: ignore[union-attr]
        await uow.users.update(
            org, admin, password_hash="h2", password_state=PasswordState.ONE_TIME, now=NOW
        )
        await uow.commit()
    async with make_uow() as uow:
        user = await uow.users.get(org, admin)
        assert user is not None and user.must_change_password
        found = await uow.users.find_for_login(user.email)
        assert found is not None and found[1] == "h2"
        assert found[0].password_state is PasswordState.ONE_TIME


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


# --- the suppression list -------------------------------------------------------------------


async def _refuse(
    uow: Any, org: uuid.UUID, address: str, code: int, text: str, at: datetime
) -> Refusal:
    """A follow-up to ``address`` whose ``to`` recipient a server refused at ``at``: an
    outbox row for the SQL adapter, the fake's own record for the fake."""
    enhanced = text.split()[0] if text[:1].isdigit() else None
    if not hasattr(uow, "session"):
        refusal = Refusal(code, enhanced, text, uuid.uuid4(), f"<{uuid.uuid4().hex}@x>")
        uow.suppressions.record_refusal(org, address, refusal, at)
        return refusal
    message = OutboxMessageRow(
        id=uuid.uuid4(),
        organization_id=org,
        kind="follow_up",
        idempotency_key=f"follow-up:{uuid.uuid4()}",
        message_id=f"<{uuid.uuid4().hex}@x>",
        mail_from="sales@example.com",
        subject="s",
        mime=b"Subject: s\r\n\r\nx\r\n",
        size=16,
        priority=0,
        status="failed",
        not_before=at,
        created_at=at,
        updated_at=at,
        attempts=1,
        possible_duplicate=False,
        meta={},
    )
    uow.session.add(message)
    await uow.session.flush()
    uow.session.add(
        OutboxRecipientRow(
            message_pk=message.id,
            organization_id=org,
            address=address,
            role="to",
            status="rejected",
            last_code=code,
            last_enhanced=enhanced,
            last_text=text,
            updated_at=at,
        )
    )
    await uow.session.flush()
    return Refusal(code, enhanced, text, message.id, message.message_id)


async def test_suppressions_add_page_search_and_remove(make_uow: UowFactory) -> None:
    org, admin = await _org_with_admin(make_uow)
    other, _ = await _org_with_admin(make_uow)
    async with make_uow() as uow:
        s = uow.suppressions
        assert await s.add(org, "Anna@Example.org", SuppressionReason.UNSUBSCRIBED, NOW)
        assert not await s.add(org, "anna@example.ORG", SuppressionReason.MANUAL, NOW)
        later = NOW + timedelta(minutes=1)
        assert await s.add(
            org, "bert@example.org", SuppressionReason.MANUAL, later, created_by=admin, note="n"
        )
        assert await s.add(org, "a%b@example.org", SuppressionReason.MANUAL, later)
        assert await s.add(other, "anna@example.org", SuppressionReason.MANUAL, NOW)
        await uow.commit()
    async with make_uow() as uow:
        s = uow.suppressions
        first = await s.get(org, "ANNA@example.org")
        assert first is not None and first.reason is SuppressionReason.UNSUBSCRIBED
        assert first.address == "anna@example.org" and first.created_by is None
        bert = await s.get(org, "bert@example.org")
        assert bert is not None and bert.created_by == admin and bert.note == "n"
        assert bert.created_by_name == "A" and bert.refusal is None
        everything = await s.page(org, search=None, limit=10, offset=0)
        assert [e.address for e in everything.items] == [
            "a%b@example.org",
            "bert@example.org",
            "anna@example.org",
        ]
        assert everything.total == 3
        second = await s.page(org, search=None, limit=2, offset=2)
        assert [e.address for e in second.items] == ["anna@example.org"] and second.total == 3
        percent = await s.page(org, search="A%B", limit=10, offset=0)
        assert [e.address for e in percent.items] == ["a%b@example.org"]
        assert (await s.page(org, search="_", limit=10, offset=0)).total == 0
        assert await s.listed(org, ["ANNA@example.org", "x@example.org"]) == {"anna@example.org"}

        assert await s.remove(org, "Anna@example.org", actor_id=admin, now=later)
        assert not await s.remove(org, "anna@example.org", actor_id=admin, now=later)
        assert not await s.remove(org, "nobody@example.org", actor_id=admin, now=later)
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.suppressions.listed(org, ["anna@example.org"]) == set()
        assert await uow.suppressions.listed(other, ["anna@example.org"]) == {"anna@example.org"}
        assert (await uow.suppressions.page(other, search=None, limit=10, offset=0)).total == 1


async def test_refusals_about_the_address_suppress_until_a_lift(make_uow: UowFactory) -> None:
    org, admin = await _org_with_admin(make_uow)
    other, _ = await _org_with_admin(make_uow)
    gone, sender = "gone@example.org", "lead@example.org"
    async with make_uow() as uow:
        await _refuse(uow, org, "Gone@Example.org", 550, "5.1.1 no such user", NOW)
        newest = await _refuse(
            uow, org, gone, 550, "5.1.1 <gone@example.org>: User unknown", NOW + timedelta(1)
        )
        await _refuse(uow, org, sender, 553, "5.7.1 Sender address rejected", NOW)
        await _refuse(uow, other, "theirs@example.org", 550, "5.1.1 no such user", NOW)
        await uow.commit()
    async with make_uow() as uow:
        s = uow.suppressions
        wanted = [gone.upper(), sender, "theirs@example.org"]
        assert await s.rejected_among(org, wanted) == {gone: newest}
        await s.add_many(org, [gone], SuppressionReason.REJECTED, NOW, refusals={gone: newest})
        await uow.commit()
    async with make_uow() as uow:
        entry = await uow.suppressions.get(org, gone)
        assert entry is not None and entry.reason is SuppressionReason.REJECTED
        assert entry.refusal == newest
        lifted_at = NOW + timedelta(days=2)
        assert await uow.suppressions.remove(org, gone, actor_id=admin, now=lifted_at)
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.suppressions.rejected_among(org, [gone]) == {}
        again = await _refuse(
            uow, org, gone, 550, "5.1.1 no such user", lifted_at + timedelta(seconds=1)
        )
        assert await uow.suppressions.rejected_among(org, [gone]) == {gone: again}


async def test_suppression_history_is_the_lists_audit_newest_first(make_uow: UowFactory) -> None:
    org, admin = await _org_with_admin(make_uow)
    async with make_uow() as uow:
        for minutes, action in (
            (0, "suppression.add"),
            (1, "smtp_settings.put"),
            (2, "suppression.lift"),
        ):
            await uow.audit.record(
                org,
                actor_id=admin,
                action=action,
                target="x@example.org",
                fields=["address"],
                now=NOW + timedelta(minutes=minutes),
            )
        await uow.commit()
    async with make_uow() as uow:
        found = await uow.suppressions.history(org, limit=10)
        assert [e.action for e in found] == ["suppression.lift", "suppression.add"]
        assert [e.action for e in await uow.suppressions.history(org, limit=1)] == [
            "suppression.lift"
        ]


async def test_dkim_keys_state_and_sealed_halves(make_uow: UowFactory) -> None:
    org, admin = await _org_with_admin(make_uow)
    other, _ = await _org_with_admin(make_uow)

    def key(selector: str, minutes: int) -> DkimKey:
        return DkimKey(
            uuid.uuid4(),
            selector,
            "example.com",
            DkimAlgorithm.ED25519,
            "cHVi",
            NOW + timedelta(minutes=minutes),
        )

    old, new = key("old", 0), key("new", 5)
    async with make_uow() as uow:
        assert await uow.dkim_keys.state(org) == DkimState(False, None)
        await uow.dkim_keys.add(org, old, sealed="v1:k:old", actor_id=admin)
        await uow.dkim_keys.add(org, new, sealed="v1:k:new", actor_id=None)
        await uow.dkim_keys.set_state(org, DkimState(False, old.id), now=NOW)
        await uow.commit()
    async with make_uow() as uow:
        assert [k.selector for k in await uow.dkim_keys.list(org)] == ["new", "old"]
        assert await uow.dkim_keys.get(org, old.id) == old
        assert await uow.dkim_keys.get(other, old.id) is None  # scoped
        assert await uow.dkim_keys.list(other) == []
        assert await uow.dkim_keys.signing_key(org) is None  # off
        await uow.dkim_keys.set_state(org, DkimState(True, old.id), now=NOW)
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.dkim_keys.state(org) == DkimState(True, old.id)
        assert await uow.dkim_keys.signing_key(org) == (old, "v1:k:old")
        assert await uow.dkim_keys.signing_key(other) is None
        assert org in await uow.dkim_keys.organizations_with_keys()
        assert [t for _, t in await uow.dkim_keys.sealed_all(org)] == ["v1:k:old", "v1:k:new"]
        assert not await uow.dkim_keys.replace_sealed(org, old.id, old="stale", new="x")
        assert not await uow.dkim_keys.replace_sealed(other, old.id, old="v1:k:old", new="x")
        assert await uow.dkim_keys.replace_sealed(org, old.id, old="v1:k:old", new="v1:k2:old")
        assert not await uow.dkim_keys.delete(other, new.id)
        assert await uow.dkim_keys.delete(org, new.id)
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.dkim_keys.signing_key(org) == (old, "v1:k2:old")
        assert [k.id for k in await uow.dkim_keys.list(org)] == [old.id]
        assert await uow.dkim_keys.delete(org, old.id)  # the active key: the state lets go
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.dkim_keys.state(org) == DkimState(True, None)
        assert await uow.dkim_keys.signing_key(org) is None
