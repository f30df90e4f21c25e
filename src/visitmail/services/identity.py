"""Use cases for organizations, users and API tokens.

Every function takes an open :class:`UnitOfWork`, does its work and commits, or raises a
domain error and commits nothing.

Bearer tokens are checked on every API request; :func:`authenticate_token_cached` keeps
what it found in a :class:`PrincipalCache` for a few seconds, so a burst of requests costs
one lookup. The bound on staleness is stated there.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from visitmail.domain.addresses import normalize_email
from visitmail.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from visitmail.domain.identity import (
    ApiToken,
    Organization,
    PasswordState,
    Principal,
    User,
    clean_name,
    placeholder_name,
)
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.ports import PasswordHasher, UnitOfWork
from visitmail.services.secrets_gen import digest, new_api_token, new_password

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: How long a token's principal is cached (seconds): the bound on how late a revocation
#: made by *another* process takes effect in this one.
PRINCIPAL_TTL_S = 5.0
MAX_CACHED_PRINCIPALS = 10_000
#: A token's ``last_used_at`` is written at most this often (seconds).
TOKEN_TOUCH_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class NewOrganization:
    organization: Organization
    admin: User
    admin_password: str
    token: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once


@dataclass(frozen=True, slots=True)
class NewUser:
    user: User
    initial_password: str | None  # set when visitmail generated it


def check_password_strength(password: str, *, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at least {MIN_PASSWORD_LENGTH} characters", field=field)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at most {MAX_PASSWORD_LENGTH} characters", field=field)


def require_role(principal: Principal, role: Role) -> None:
    if not principal.role.at_least(role):
        raise PermissionDenied(f"this needs the role {role.value} or higher")


async def create_organization(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    *,
    name: str,
    admin_email: str,
    admin_name: str | None = None,
    clock: Clock = utcnow,
) -> NewOrganization:
    """A new organization with one admin (generated password) and one API token for them.

    ``admin_name`` is the admin's display name (checked like every name: ``InvalidInput``
    naming ``admin_name``); ``None`` stores the placeholder
    (:func:`~visitmail.domain.identity.placeholder_name`), which follow-ups replace with
    the organization's name until the admin gets a name on the users page."""
    org_name = clean_name(name, field="name")
    email = normalize_email(admin_email, field="admin_email")
    admin_display = (
        clean_name(admin_name, field="admin_name")
        if admin_name is not None
        else placeholder_name(email)
    )
    if await uow.users.email_taken(email):
        raise Conflict("a user with this email already exists", field="admin_email")
    now = clock()
    org = await uow.organizations.add(org_name, now)
    password = new_password()
    admin = await uow.users.add(
        org.id,
        email=email,
        display_name=admin_display,
        role=Role.ADMIN,
        password_hash=hasher.hash(password),
        now=now,
    )
    secret, prefix = new_api_token()
    await uow.tokens.add(
        org.id, user_id=admin.id, name="initial", prefix=prefix, secret_hash=digest(secret), now=now
    )
    await uow.audit.record(
        org.id,
        actor_id=None,
        action="organization.create",
        target=str(org.id),
        fields=["name"],
        now=now,
    )
    await uow.commit()
    return NewOrganization(org, admin, password, secret)


async def create_user(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    actor: Principal,
    *,
    email: str,
    role: Role,
    display_name: str,
    password: str | None = None,
    clock: Clock = utcnow,
) -> NewUser:
    """Add a user (admin). ``display_name`` is required (it signs follow-ups and shows
    as the reporter): ``InvalidInput`` naming ``display_name`` if empty or not
    header-safe, naming ``email`` or ``password`` for those; ``Conflict`` if the email
    is taken. ``password`` ``None``: one is generated and returned once."""
    require_role(actor, Role.ADMIN)
    address = normalize_email(email, field="email")
    name = clean_name(display_name, field="display_name")
    if password is not None:
        check_password_strength(password)
    if await uow.users.email_taken(address):
        raise Conflict("a user with this email already exists", field="email")
    generated = new_password() if password is None else None
    now = clock()
    user = await uow.users.add(
        actor.organization_id,
        email=address,
        display_name=name,
        role=role,
        password_hash=hasher.hash(password or generated or ""),
        now=now,
    )
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="user.create",
        target=str(user.id),
        fields=["email", "role", "display_name", "password"],
        now=now,
    )
    await uow.commit()
    return NewUser(user, generated)


async def list_users(uow: UnitOfWork, actor: Principal) -> Sequence[User]:
    require_role(actor, Role.ADMIN)
    return await uow.users.list(actor.organization_id)


async def get_user(uow: UnitOfWork, actor: Principal, user_id: UUID) -> User:
    if user_id != actor.user.id:
        require_role(actor, Role.ADMIN)
    user = await uow.users.get(actor.organization_id, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def update_user(
    uow: UnitOfWork,
    actor: Principal,
    user_id: UUID,
    *,
    role: Role | None = None,
    disabled: bool | None = None,
    display_name: str | None = None,
    clock: Clock = utcnow,
) -> User:
    """Change a user's role, name or disabled flag. The last enabled admin cannot be demoted
    or disabled (the organization would lock itself out)."""
    require_role(actor, Role.ADMIN)
    current = await uow.users.get(actor.organization_id, user_id)
    if current is None:
        raise NotFound("no such user")
    name = clean_name(display_name, field="display_name") if display_name is not None else None
    loses_admin = (
        current.role is Role.ADMIN
        and not current.disabled
        and ((role is not None and role is not Role.ADMIN) or disabled is True)
    )
    if loses_admin and await uow.users.count_admins(actor.organization_id) <= 1:
        raise Conflict(
            "the organization needs at least one enabled admin",
            field="role" if role is not None else "disabled",
        )
    now = clock()
    user = await uow.users.update(
        actor.organization_id, user_id, role=role, disabled=disabled, display_name=name, now=now
    )
    assert user is not None  # checked above, same transaction
    changed = [
        f
        for f, v in (("role", role), ("disabled", disabled), ("display_name", name))
        if v is not None
    ]
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="user.update",
        target=str(user_id),
        fields=changed,
        now=now,
    )
    await uow.commit()
    return user


async def set_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    actor: Principal,
    user_id: UUID,
    *,
    password: str | None,
    clock: Clock = utcnow,
) -> str | None:
    """Set a user's password (own, or any as admin; the CLI's operator recovery); ``None``
    generates one and returns it. The password logs in freely (``PasswordState.SET``)."""
    if user_id != actor.user.id:
        require_role(actor, Role.ADMIN)
    if password is not None:
        check_password_strength(password)
    generated = new_password() if password is None else None
    now = clock()
    user = await uow.users.update(
        actor.organization_id,
        user_id,
        password_hash=hasher.hash(password or generated or ""),
        password_state=PasswordState.SET,
        now=now,
    )
    if user is None:
        raise NotFound("no such user")
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="user.password",
        target=str(user_id),
        fields=["password"],
        now=now,
    )
    await uow.commit()
    return generated


async def issue_token(
    uow: UnitOfWork, actor: Principal, *, name: str, clock: Clock = utcnow
) -> IssuedToken:
    """A new API token for the acting user; the secret is returned once and stored hashed.
    ``PermissionDenied`` while the user must change a password an admin reset."""
    if actor.user.must_change_password:
        raise PermissionDenied("change your password first", field="password")
    label = clean_name(name, field="name")
    secret, prefix = new_api_token()
    now = clock()
    token = await uow.tokens.add(
        actor.organization_id,
        user_id=actor.user.id,
        name=label,
        prefix=prefix,
        secret_hash=digest(secret),
        now=now,
    )
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="token.create",
        target=str(token.id),
        fields=["name"],
        now=now,
    )
    await uow.commit()
    return IssuedToken(token, secret)


async def list_tokens(uow: UnitOfWork, actor: Principal) -> Sequence[ApiToken]:
    """Admins see every token of the organization; others their own."""
    owner = None if actor.role.at_least(Role.ADMIN) else actor.user.id
    return await uow.tokens.list(actor.organization_id, owner)


async def revoke_token(
    uow: UnitOfWork, actor: Principal, token_id: UUID, *, clock: Clock = utcnow
) -> ApiToken:
    token = await uow.tokens.get(actor.organization_id, token_id)
    if token is None or (token.user_id != actor.user.id and not actor.role.at_least(Role.ADMIN)):
        raise NotFound("no such token")
    now = clock()
    await uow.tokens.revoke(actor.organization_id, token_id, now)
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="token.revoke",
        target=str(token_id),
        fields=[],
        now=now,
    )
    await uow.commit()
    revoked = await uow.tokens.get(actor.organization_id, token_id)
    assert revoked is not None
    return revoked


def _touch_due(last_used_at: datetime | None, now: datetime) -> bool:
    # Write last-use at most once a minute: a read-mostly API should not write per request.
    return last_used_at is None or (now - last_used_at).total_seconds() > TOKEN_TOUCH_INTERVAL_S


async def authenticate_token(
    uow: UnitOfWork, secret: str, *, clock: Clock = utcnow
) -> Principal | None:
    """The principal for a bearer token, or ``None`` if unknown, revoked or its user disabled."""
    found = await uow.tokens.find_active(digest(secret))
    if found is None:
        return None
    token, user = found
    now = clock()
    if _touch_due(token.last_used_at, now):
        await uow.tokens.touch(token.id, now)
        await uow.commit()
    return Principal(user=user, via="token")


class PrincipalCache:
    """Bearer token (its SHA-256) → principal, each entry for at most ``ttl`` seconds.

    The bound: a token revoked, or a user disabled or changed, *by this process* is refused
    (or seen changed) from the next request on, because the unit of work calls
    :meth:`clear` after committing such a change; *by another process* (the CLI, another
    API node) within ``ttl`` seconds (:data:`PRINCIPAL_TTL_S`, 5 s by default). Unknown
    and revoked tokens are never cached. At most ``max_entries`` tokens are kept (least
    recently used dropped first). ``clock`` is monotonic seconds; tests pass their own."""

    def __init__(
        self,
        ttl: float = PRINCIPAL_TTL_S,
        *,
        max_entries: int = MAX_CACHED_PRINCIPALS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.generation = 0  # grows on every clear; a lookup begun before it is not stored
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        expires, principal = entry
        if self.clock() >= expires:
            del self._entries[token_hash]
            return None
        self._entries.move_to_end(token_hash)
        return principal

    def put(self, token_hash: str, principal: Principal, *, generation: int) -> None:
        """Keep ``principal`` unless the cache was cleared since ``generation`` was read
        (the lookup may have seen the state from before a revocation)."""
        if generation != self.generation or self.ttl <= 0:
            return
        self._entries[token_hash] = (self.clock() + self.ttl, principal)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


async def authenticate_token_cached(
    cache: PrincipalCache,
    secret: str,
    *,
    reader: Callable[[], AbstractAsyncContextManager[UnitOfWork]],
    writer: Callable[[], AbstractAsyncContextManager[UnitOfWork]],
    clock: Clock = utcnow,
) -> Principal | None:
    """:func:`authenticate_token` through ``cache``: a cached principal costs no query; on
    a miss the token is looked up in a ``reader`` unit of work, and its last use written in
    a ``writer`` one only when due (at most once a minute per token)."""
    token_hash = digest(secret)
    cached = cache.get(token_hash)
    if cached is not None:
        return cached
    generation = cache.generation
    async with reader() as uow:
        found = await uow.tokens.find_active(token_hash)
    if found is None:
        return None
    token, user = found
    principal = Principal(user=user, via="token")
    now = clock()
    if _touch_due(token.last_used_at, now):
        async with writer() as uow:
            await uow.tokens.touch(token.id, now)
            await uow.commit()
    cache.put(token_hash, principal, generation=generation)
    return principal


async def get_organization(uow: UnitOfWork, actor: Principal) -> Organization:
    org = await uow.organizations.get(actor.organization_id)
    if org is None:  # the token outlived its organization
        raise NotFound("no such organization")
    return org


async def update_organization(
    uow: UnitOfWork,
    actor: Principal,
    *,
    name: str | None = None,
    require_follow_up_consent: bool | None = None,
    clock: Clock = utcnow,
) -> Organization:
    """Rename the organization or change its settings (admin); audited by field name."""
    require_role(actor, Role.ADMIN)
    clean = clean_name(name, field="name") if name is not None else None
    org = await uow.organizations.update(
        actor.organization_id, name=clean, require_follow_up_consent=require_follow_up_consent
    )
    if org is None:
        raise NotFound("no such organization")
    changed = [
        f
        for f, v in (("name", clean), ("require_follow_up_consent", require_follow_up_consent))
        if v is not None
    ]
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="organization.update",
        target=str(actor.organization_id),
        fields=changed,
        now=clock(),
    )
    await uow.commit()
    return org
