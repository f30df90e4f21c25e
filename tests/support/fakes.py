"""In-memory fakes of the services' ports, for fast unit tests of the services.

Each fake is held to the same behaviour as its SQL adapter by
``tests/integration/db/test_repository_contract.py``. Commit semantics: changes are made on
a working copy and become visible to other units of work only on ``commit()``.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import EmailMessage

from tests.support.fake_transaction import CopyOnCommit
from tests.support.outbox_fakes import FakeHealth
from visitmail.domain.dkim import DkimKey, DkimState
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.identity import ApiToken, Organization, PasswordState, User
from visitmail.domain.roles import Role
from visitmail.domain.smtp_replies import SmtpReply, rejects_the_address
from visitmail.domain.smtp_settings import SmtpSettings
from visitmail.services.dev_inbox import ReceivedMail, summarize
from visitmail.services.follow_up_ports import Refusal, Suppression, SuppressionPage
from visitmail.services.outbox_ports import ServerHealth
from visitmail.services.ports import AuditEntry, SmtpSecretField, StoredSmtpSettings


@dataclass
class _State:
    organizations: dict[uuid.UUID, Organization] = field(default_factory=dict)
    users: dict[uuid.UUID, User] = field(default_factory=dict)
    password_hashes: dict[uuid.UUID, str] = field(default_factory=dict)
    tokens: dict[uuid.UUID, ApiToken] = field(default_factory=dict)
    token_hashes: dict[str, uuid.UUID] = field(default_factory=dict)
    sessions: dict[str, tuple[uuid.UUID, uuid.UUID, str, datetime]] = field(default_factory=dict)
    failures: list[tuple[str, datetime]] = field(default_factory=list)
    audit: list[dict[str, object]] = field(default_factory=list)
    smtp: dict[uuid.UUID, StoredSmtpSettings] = field(default_factory=dict)
    health: dict[uuid.UUID, ServerHealth] = field(default_factory=dict)
    suppressions: dict[tuple[uuid.UUID, str], Suppression] = field(default_factory=dict)
    lifts: dict[tuple[uuid.UUID, str], datetime] = field(default_factory=dict)
    # What the SQL adapter reads from the outbox: refused ``to`` recipients of follow-ups.
    refusals: list[tuple[uuid.UUID, str, Refusal, datetime]] = field(default_factory=list)
    # DKIM: (organization, key id) -> (key, sealed private half); organization -> state
    dkim_keys: dict[tuple[uuid.UUID, uuid.UUID], tuple[DkimKey, str]] = field(default_factory=dict)
    dkim_state: dict[uuid.UUID, DkimState] = field(default_factory=dict)


class FakeDatabase:
    """The committed state shared by every :class:`FakeUnitOfWork` made from it."""

    def __init__(self) -> None:
        self.state = _State()

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


class _Repo:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def s(self) -> _State:
        return self._uow.work


class FakeOrganizations(_Repo):
    async def add(self, name: str, now: datetime) -> Organization:
        org = Organization(uuid.uuid4(), name, now)
        self.s.organizations[org.id] = org
        return org

    async def get(self, organization_id: uuid.UUID) -> Organization | None:
        return self.s.organizations.get(organization_id)

    async def count(self) -> int:
        return len(self.s.organizations)

    async def update(
        self,
        organization_id: uuid.UUID,
        *,
        name: str | None = None,
        require_follow_up_consent: bool | None = None,
    ) -> Organization | None:
        org = self.s.organizations.get(organization_id)
        if org is None:
            return None
        org = replace(
            org,
            name=name if name is not None else org.name,
            require_follow_up_consent=(
                require_follow_up_consent
                if require_follow_up_consent is not None
                else org.require_follow_up_consent
            ),
        )
        self.s.organizations[organization_id] = org
        return org


class FakeUsers(_Repo):
    async def add(
        self,
        organization_id: uuid.UUID,
        *,
        email: str,
        display_name: str,
        role: Role,
        password_hash: str,
        now: datetime,
    ) -> User:
        if any(u.email == email for u in self.s.users.values()):
            raise ValueError("unique constraint: users.email")
        user = User(uuid.uuid4(), organization_id, email, display_name, role, False, now)
        self.s.users[user.id] = user
        self.s.password_hashes[user.id] = password_hash
        return user

    async def get(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
        user = self.s.users.get(user_id)
        return user if user and user.organization_id == organization_id else None

    async def list(self, organization_id: uuid.UUID) -> Sequence[User]:
        return sorted(
            (u for u in self.s.users.values() if u.organization_id == organization_id),
            key=lambda u: (u.created_at, u.email),
        )

    async def email_taken(self, email: str) -> bool:
        return any(u.email == email for u in self.s.users.values())

    async def find_for_login(self, email: str) -> tuple[User, str] | None:
        user = next((u for u in self.s.users.values() if u.email == email), None)
        return (user, self.s.password_hashes[user.id]) if user else None

    async def update(
        self,
        organization_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
        password_hash: str | None = None,
        password_state: PasswordState | None = None,
        now: datetime,
    ) -> User | None:
        user = await self.get(organization_id, user_id)
        if user is None:
            return None
        user = replace(
            user,
            password_state=password_state if password_state is not None else user.password_state,
            role=role if role is not None else user.role,
            disabled=disabled if disabled is not None else user.disabled,
            display_name=display_name if display_name is not None else user.display_name,
        )
        self.s.users[user.id] = user
        if password_hash is not None:
            self.s.password_hashes[user.id] = password_hash
        return user

    async def count_admins(self, organization_id: uuid.UUID) -> int:
        return sum(
            1
            for u in self.s.users.values()
            if u.organization_id == organization_id and u.role is Role.ADMIN and not u.disabled
        )


class FakeTokens(_Repo):
    async def add(
        self,
        organization_id: uuid.UUID,
        *,
        user_id: uuid.UUID,
        name: str,
        prefix: str,
        secret_hash: str,
        now: datetime,
    ) -> ApiToken:
        token = ApiToken(uuid.uuid4(), organization_id, user_id, name, prefix, now, None, None)
        self.s.tokens[token.id] = token
        self.s.token_hashes[secret_hash] = token.id
        return token

    async def find_active(self, secret_hash: str) -> tuple[ApiToken, User] | None:
        token_id = self.s.token_hashes.get(secret_hash)
        token = self.s.tokens.get(token_id) if token_id else None
        if token is None or token.revoked_at is not None:
            return None
        user = self.s.users.get(token.user_id)
        if user is None or user.disabled or user.organization_id != token.organization_id:
            return None
        return token, user

    async def list(
        self, organization_id: uuid.UUID, user_id: uuid.UUID | None = None
    ) -> Sequence[ApiToken]:
        return sorted(
            (
                t
                for t in self.s.tokens.values()
                if t.organization_id == organization_id
                and (user_id is None or t.user_id == user_id)
            ),
            key=lambda t: t.created_at,
        )

    async def get(self, organization_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
        token = self.s.tokens.get(token_id)
        return token if token and token.organization_id == organization_id else None

    async def revoke(self, organization_id: uuid.UUID, token_id: uuid.UUID, now: datetime) -> None:
        token = await self.get(organization_id, token_id)
        if token and token.revoked_at is None:
            self.s.tokens[token_id] = replace(token, revoked_at=now)

    async def revoke_for_user(
        self, organization_id: uuid.UUID, user_id: uuid.UUID, now: datetime
    ) -> int:
        mine = [t for t in await self.list(organization_id, user_id) if t.revoked_at is None]
        for token in mine:
            self.s.tokens[token.id] = replace(token, revoked_at=now)
        return len(mine)

    async def touch(self, token_id: uuid.UUID, now: datetime) -> None:
        token = self.s.tokens.get(token_id)
        if token:
            self.s.tokens[token_id] = replace(token, last_used_at=now)


class FakeSessions(_Repo):
    async def add(
        self,
        organization_id: uuid.UUID,
        *,
        user_id: uuid.UUID,
        secret_hash: str,
        csrf_token: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        self.s.sessions[secret_hash] = (organization_id, user_id, csrf_token, expires_at)

    async def find_active(self, secret_hash: str, now: datetime) -> tuple[User, str] | None:
        found = self.s.sessions.get(secret_hash)
        if found is None or found[3] <= now:
            return None
        user = self.s.users.get(found[1])
        if user is None or user.disabled:
            return None
        return user, found[2]

    async def delete(self, secret_hash: str) -> None:
        self.s.sessions.pop(secret_hash, None)

    async def delete_for_user(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> int:
        ended = [
            h
            for h, (org, uid, _, _) in self.s.sessions.items()
            if org == organization_id and uid == user_id
        ]
        for secret_hash in ended:
            del self.s.sessions[secret_hash]
        return len(ended)


class FakeLoginFailures(_Repo):
    async def record(self, key: str, now: datetime) -> None:
        self.s.failures.append((key, now))

    async def count_since(self, key: str, since: datetime) -> int:
        return sum(1 for k, at in self.s.failures if k == key and at >= since)

    async def oldest_since(self, key: str, since: datetime) -> datetime | None:
        times = [at for k, at in self.s.failures if k == key and at >= since]
        return min(times) if times else None

    async def clear(self, key: str) -> None:
        self.s.failures = [(k, at) for k, at in self.s.failures if k != key]


class FakeAuditLog(_Repo):
    async def record(
        self,
        organization_id: uuid.UUID,
        *,
        actor_id: uuid.UUID | None,
        action: str,
        target: str,
        fields: Sequence[str],
        now: datetime,
    ) -> None:
        self.s.audit.append(
            {
                "organization_id": organization_id,
                "actor_id": actor_id,
                "action": action,
                "target": target,
                "fields": list(fields),
                "at": now,
            }
        )


class FakeSmtpSettings(_Repo):
    async def get(
        self, organization_id: uuid.UUID, *, for_update: bool = False
    ) -> StoredSmtpSettings | None:
        return self.s.smtp.get(organization_id)

    async def save(
        self,
        organization_id: uuid.UUID,
        settings: SmtpSettings,
        *,
        sealed: dict[SmtpSecretField, str | None],
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> None:
        current = self.s.smtp.get(organization_id)
        tokens = dict(current.sealed) if current else {}
        for secret, token in sealed.items():
            if token is None:
                tokens.pop(secret, None)
            else:
                tokens[secret] = token
        self.s.smtp[organization_id] = StoredSmtpSettings(settings, tokens, now, actor_id)

    async def replace_sealed(
        self, organization_id: uuid.UUID, field: SmtpSecretField, *, old: str, new: str
    ) -> bool:
        current = self.s.smtp.get(organization_id)
        if current is None or current.sealed.get(field) != old:
            return False
        tokens = {**current.sealed, field: new}
        self.s.smtp[organization_id] = replace(current, sealed=tokens)
        return True

    async def organizations_with_secrets(self) -> Sequence[uuid.UUID]:
        return sorted(org for org, stored in self.s.smtp.items() if stored.sealed)

    async def history(self, organization_id: uuid.UUID, *, limit: int) -> Sequence[AuditEntry]:
        entries = [
            AuditEntry(
                actor_id=e["actor_id"],  # type: ignore[arg-type]
                action=str(e["action"]),
                target=str(e["target"]),
                fields=list(e["fields"]),  # type: ignore[call-overload]
                at=e["at"],  # type: ignore[arg-type]
            )
            for e in self.s.audit
            if e["organization_id"] == organization_id
            and str(e["action"]).startswith("smtp_settings.")
        ]
        return list(reversed(entries))[:limit]


class FakeSuppressions(_Repo):
    def _named(self, entry: Suppression) -> Suppression:
        user = self.s.users.get(entry.created_by) if entry.created_by else None
        return replace(entry, created_by_name=user.display_name if user else None)

    def record_refusal(
        self, organization_id: uuid.UUID, address: str, refusal: Refusal, at: datetime
    ) -> None:
        """Fake only: a follow-up to ``address`` was refused at ``at`` (what the SQL
        adapter finds in the outbox)."""
        self.s.refusals.append((organization_id, address.lower(), refusal, at))

    async def get(self, organization_id: uuid.UUID, address: str) -> Suppression | None:
        entry = self.s.suppressions.get((organization_id, address.lower()))
        return self._named(entry) if entry else None

    async def add(
        self,
        organization_id: uuid.UUID,
        address: str,
        reason: SuppressionReason,
        now: datetime,
        *,
        created_by: uuid.UUID | None = None,
        note: str | None = None,
    ) -> bool:
        key = (organization_id, address.lower())
        if key in self.s.suppressions:
            return False
        self.s.suppressions[key] = Suppression(
            key[1], reason, now, created_by=created_by, note=note
        )
        return True

    async def listed(self, organization_id: uuid.UUID, addresses: Collection[str]) -> set[str]:
        wanted = {a.lower() for a in addresses}
        return {a for org, a in self.s.suppressions if org == organization_id and a in wanted}

    async def rejected_among(
        self, organization_id: uuid.UUID, addresses: Collection[str]
    ) -> dict[str, Refusal]:
        wanted = {a.lower() for a in addresses}
        found: dict[str, Refusal] = {}
        newest_first = sorted(self.s.refusals, key=lambda r: r[3], reverse=True)
        for org, address, refusal, at in newest_first:
            lifted = self.s.lifts.get((org, address))
            if (
                org != organization_id
                or address not in wanted
                or address in found
                or (lifted is not None and at <= lifted)
                or not rejects_the_address(SmtpReply(refusal.code, refusal.text))
            ):
                continue
            found[address] = refusal
        return found

    async def add_many(
        self,
        organization_id: uuid.UUID,
        addresses: Collection[str],
        reason: SuppressionReason,
        now: datetime,
        *,
        refusals: Mapping[str, Refusal] | None = None,
    ) -> None:
        evidence = {a.lower(): r for a, r in (refusals or {}).items()}
        for address in {a.lower() for a in addresses}:
            key = (organization_id, address)
            if key not in self.s.suppressions:
                self.s.suppressions[key] = Suppression(
                    address, reason, now, refusal=evidence.get(address)
                )

    async def page(
        self, organization_id: uuid.UUID, *, search: str | None, limit: int, offset: int
    ) -> SuppressionPage:
        term = (search or "").lower()
        matching = sorted(
            (
                e
                for (org, address), e in self.s.suppressions.items()
                if org == organization_id and term in address
            ),
            key=lambda e: e.address,
        )
        matching.sort(key=lambda e: e.created_at, reverse=True)  # stable: ties by address
        items = [self._named(e) for e in matching[offset : offset + limit]]
        return SuppressionPage(items, len(matching))

    async def remove(
        self,
        organization_id: uuid.UUID,
        address: str,
        *,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> bool:
        key = (organization_id, address.lower())
        if self.s.suppressions.pop(key, None) is None:
            return False
        self.s.lifts[key] = now
        return True

    async def history(self, organization_id: uuid.UUID, *, limit: int) -> Sequence[AuditEntry]:
        entries = [
            AuditEntry(
                actor_id=e["actor_id"],  # type: ignore[arg-type]
                action=str(e["action"]),
                target=str(e["target"]),
                fields=list(e["fields"]),  # type: ignore[call-overload]
                at=e["at"],  # type: ignore[arg-type]
            )
            for e in self.s.audit
            if e["organization_id"] == organization_id
            and str(e["action"]).startswith("suppression.")
        ]
        return list(reversed(entries))[:limit]


class FakeDkimKeys(_Repo):
    async def add(
        self, organization_id: uuid.UUID, key: DkimKey, *, sealed: str, actor_id: uuid.UUID | None
    ) -> None:
        if any(
            org == organization_id and k.selector == key.selector and k.domain == key.domain
            for (org, _), (k, _s) in self.s.dkim_keys.items()
        ):
            raise ValueError("unique (organization, selector, domain)")
        self.s.dkim_keys[(organization_id, key.id)] = (key, sealed)

    def _of(self, organization_id: uuid.UUID) -> list[tuple[DkimKey, str]]:
        return [v for (org, _), v in self.s.dkim_keys.items() if org == organization_id]

    async def list(self, organization_id: uuid.UUID) -> Sequence[DkimKey]:
        keys = [k for k, _ in self._of(organization_id)]
        keys.sort(key=lambda k: k.selector)
        keys.sort(key=lambda k: k.created_at, reverse=True)
        return keys

    async def get(self, organization_id: uuid.UUID, key_id: uuid.UUID) -> DkimKey | None:
        found = self.s.dkim_keys.get((organization_id, key_id))
        return found[0] if found else None

    async def delete(self, organization_id: uuid.UUID, key_id: uuid.UUID) -> bool:
        if self.s.dkim_keys.pop((organization_id, key_id), None) is None:
            return False
        state = self.s.dkim_state.get(organization_id)
        if state is not None and state.active_key_id == key_id:  # ON DELETE SET NULL
            self.s.dkim_state[organization_id] = DkimState(state.enabled, None)
        return True

    async def state(self, organization_id: uuid.UUID, *, for_update: bool = False) -> DkimState:
        return self.s.dkim_state.get(organization_id, DkimState(False, None))

    async def set_state(
        self, organization_id: uuid.UUID, state: DkimState, *, now: datetime
    ) -> None:
        self.s.dkim_state[organization_id] = state

    async def signing_key(self, organization_id: uuid.UUID) -> tuple[DkimKey, str] | None:
        state = self.s.dkim_state.get(organization_id)
        if state is None or not state.enabled or state.active_key_id is None:
            return None
        return self.s.dkim_keys.get((organization_id, state.active_key_id))

    async def organizations_with_keys(self) -> Sequence[uuid.UUID]:
        return sorted({org for org, _ in self.s.dkim_keys})

    async def sealed_all(self, organization_id: uuid.UUID) -> Sequence[tuple[DkimKey, str]]:
        return sorted(self._of(organization_id), key=lambda v: (v[0].created_at, v[0].id))

    async def replace_sealed(
        self, organization_id: uuid.UUID, key_id: uuid.UUID, *, old: str, new: str
    ) -> bool:
        found = self.s.dkim_keys.get((organization_id, key_id))
        if found is None or found[1] != old:
            return False
        self.s.dkim_keys[(organization_id, key_id)] = (found[0], new)
        return True


class FakeUnitOfWork(CopyOnCommit[_State]):
    """Works on a deep copy of the committed state; ``commit`` publishes it."""

    def __init__(self, db: FakeDatabase) -> None:
        super().__init__(db)
        self.organizations = FakeOrganizations(self)
        self.users = FakeUsers(self)
        self.tokens = FakeTokens(self)
        self.sessions = FakeSessions(self)
        self.login_failures = FakeLoginFailures(self)
        self.audit = FakeAuditLog(self)
        self.smtp_settings = FakeSmtpSettings(self)
        self.health = FakeHealth(self)  # type: ignore[arg-type]  (it reads work.health only)
        self.suppressions = FakeSuppressions(self)
        self.dkim_keys = FakeDkimKeys(self)


class FakeMailbox:
    """In-memory :class:`visitmail.services.dev_inbox.DevMailbox`; :meth:`deliver` stands in
    for the SMTP sink. Held to the adapter's behaviour by
    ``tests/unit/adapters/test_dev_mailbox_contract.py``."""

    def __init__(self, *, noted_limit: int = 5000) -> None:
        self.mails: dict[str, tuple[ReceivedMail, bytes]] = {}
        self.noted_limit = noted_limit
        self._noted: OrderedDict[str, uuid.UUID] = OrderedDict()

    def deliver(self, raw: bytes, mail_from: str, rcpt_to: list[str], at: datetime) -> str:
        name = f"{at:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex}.eml"
        summary = summarize(name, at.replace(microsecond=0), mail_from, list(rcpt_to), raw)
        self.mails[name] = (summary, raw)
        return name

    def received(self) -> list[ReceivedMail]:
        return [self.mails[n][0] for n in sorted(self.mails, reverse=True)]

    def summary(self, name: str) -> ReceivedMail:
        return self.mails[name][0]

    def parse(self, name: str) -> EmailMessage:
        parsed: EmailMessage = email.message_from_bytes(
            self.mails[name][1], policy=email.policy.default
        )
        return parsed

    def raw(self, name: str) -> bytes:
        return self.mails[name][1]

    def delete(self, name: str) -> None:
        self.mails.pop(name, None)

    def note(self, message_id: str, organization_id: uuid.UUID) -> None:
        self._noted[message_id] = organization_id
        self._noted.move_to_end(message_id)
        while len(self._noted) > self.noted_limit:
            self._noted.popitem(last=False)

    def noted(self, organization_id: uuid.UUID) -> set[str]:
        return {m for m, org in self._noted.items() if org == organization_id}
