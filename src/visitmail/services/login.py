"""Password login for the web UI, server-side sessions and the login rate limit.

A password an admin reset (``PasswordState.ONE_TIME``) opens one session and is marked
used (``ONE_TIME_USED``); a second login with it is refused, and the session it opened may
only change the password (the UI enforces that on every page).

The rate limit counts failures per email and per client address in the database, so every
API node shares it. Unknown emails cost the same hash verification as known ones, so the
reply time does not reveal which addresses exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from visitmail.domain.errors import NotAuthenticated, RateLimited
from visitmail.domain.identity import PasswordState, Principal, User
from visitmail.services.clock import Clock, utcnow
from visitmail.services.ports import PasswordHasher, UnitOfWork
from visitmail.services.secrets_gen import digest, new_session_secret

_BAD_LOGIN = "email or password is wrong"
_USED_ONE_TIME = (
    "this one-time password was used already; ask an admin to reset your password again"
)


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int = 10  # per email address
    client_factor: int = 5  # a whole office may share one address: be lenient per client
    window: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class NewSession:
    secret: str  # goes into the cookie only
    csrf_token: str
    principal: Principal


async def check_login_limit(
    uow: UnitOfWork, keys: list[str], policy: LoginPolicy, clock: Clock
) -> None:
    """``RateLimited`` if any of ``keys`` (``email:…``, ``client:…``) failed too often."""
    now = clock()
    since = now - policy.window
    for key in keys:
        limit = policy.max_failures * (policy.client_factor if key.startswith("client:") else 1)
        if await uow.login_failures.count_since(key, since) >= limit:
            oldest = await uow.login_failures.oldest_since(key, since) or now
            wait = max(1, int((oldest + policy.window - now).total_seconds()) + 1)
            raise RateLimited(
                f"too many failed logins; try again in {wait} seconds", retry_after=wait
            )


async def log_in(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    *,
    email: str,
    password: str,
    client: str,
    policy: LoginPolicy,
    dummy_hash: str,
    clock: Clock = utcnow,
) -> NewSession:
    """Check the password and open a session; raise :class:`NotAuthenticated` or
    :class:`RateLimited`. ``dummy_hash`` is verified when the email is unknown."""
    address = email.strip().lower()
    keys = [f"email:{address}", f"client:{client}"]
    await check_login_limit(uow, keys, policy, clock)
    found = await uow.users.find_for_login(address)
    ok = hasher.verify(found[1] if found else dummy_hash, password)
    if found is None or not ok or found[0].disabled:
        now = clock()
        for key in keys:
            await uow.login_failures.record(key, now)
        await uow.commit()
        raise NotAuthenticated(_BAD_LOGIN, field="password")
    user, stored = found
    if user.password_state is PasswordState.ONE_TIME_USED:
        # The right one-time password, a second time: it opened its one session already.
        raise NotAuthenticated(_USED_ONE_TIME, field="password")
    now = clock()
    if user.password_state is PasswordState.ONE_TIME:
        marked = await uow.users.update(
            user.organization_id, user.id, password_state=PasswordState.ONE_TIME_USED, now=now
        )
        user = marked or user
    elif hasher.needs_rehash(stored):
        await uow.users.update(
            user.organization_id, user.id, password_hash=hasher.hash(password), now=now
        )
    await uow.login_failures.clear(keys[0])
    opened = await open_session(uow, user, policy, now)
    await uow.commit()
    return opened


async def open_session(
    uow: UnitOfWork, user: User, policy: LoginPolicy, now: datetime
) -> NewSession:
    """Add a session for ``user`` (not committed): its secret goes into the cookie only."""
    secret = new_session_secret()
    csrf = new_session_secret()
    await uow.sessions.add(
        user.organization_id,
        user_id=user.id,
        secret_hash=digest(secret),
        csrf_token=csrf,
        now=now,
        expires_at=now + policy.session_lifetime,
    )
    return NewSession(secret, csrf, Principal(user=user, via="session"))


async def resolve_session(
    uow: UnitOfWork, secret: str, *, clock: Clock = utcnow
) -> tuple[Principal, str] | None:
    """The principal and CSRF token of a live session, or ``None``."""
    found = await uow.sessions.find_active(digest(secret), clock())
    if found is None:
        return None
    user, csrf = found
    return Principal(user=user, via="session"), csrf


async def log_out(uow: UnitOfWork, secret: str) -> None:
    await uow.sessions.delete(digest(secret))
    await uow.commit()
