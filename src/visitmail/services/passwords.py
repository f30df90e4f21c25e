"""Changing a password: one's own (every role), or an admin resetting a member's.

The rules are the ones every password in visitmail follows
(:func:`visitmail.services.identity.check_password_strength`: 12 to 1024 characters),
plus: the new password differs from the current one, and the current one is checked
under the login rate limit (a stolen session cannot guess it faster than the login form).

Changing one's own password ends every web session of the user; the UI asks for a fresh
session in the same transaction (the one it is using is re-issued, so a session
identifier seen before the change is worthless after it). API tokens are kept: they are
separate credentials, revoked one by one.

An admin's reset generates a one-time password (returned once, stored only as its
Argon2 hash), ends the user's web sessions and revokes their API tokens (a reset is what
an admin does when an account may be in the wrong hands), and sets the user's
:class:`~visitmail.domain.identity.PasswordState` to ``ONE_TIME``: the password opens one
session, in which the user must choose a new password (see :mod:`visitmail.services.login`).

Audit entries name the field ``password``, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from visitmail.domain.errors import Conflict, InvalidInput, NotFound
from visitmail.domain.identity import PasswordState, Principal, User
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.identity import (
    MAX_PASSWORD_LENGTH,
    check_password_strength,
    require_role,
)
from visitmail.services.login import LoginPolicy, NewSession, check_login_limit, open_session
from visitmail.services.ports import PasswordHasher, UnitOfWork
from visitmail.services.secrets_gen import new_password


@dataclass(frozen=True, slots=True)
class PasswordReset:
    user: User
    sessions_ended: int
    tokens_revoked: int
    #: shown once to the admin, never stored in clear, never in a repr
    one_time_password: str = field(repr=False)


async def change_own_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    actor: Principal,
    *,
    current_password: str,
    new_password: str,
    new_password_confirm: str | None = None,
    policy: LoginPolicy,
    reissue_session: bool = False,
    clock: Clock = utcnow,
) -> NewSession | None:
    """Replace the actor's password; every web session of theirs ends.

    ``InvalidInput`` naming the field at fault: ``current_password`` (empty, or not the
    current password: code ``wrong_password``, counted as a failed login),
    ``new_password`` (too short or long, or equal to the current one),
    ``new_password_confirm`` (given and different from ``new_password``). ``RateLimited``
    after too many wrong current passwords. With ``reissue_session`` a new session is
    opened for the actor and returned (the caller sets its cookie)."""
    if not current_password:
        raise InvalidInput("enter your current password", field="current_password")
    if len(current_password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("is not your current password", field="current_password")
    check_password_strength(new_password, field="new_password")
    if new_password_confirm is not None and new_password_confirm != new_password:
        raise InvalidInput("does not match the new password", field="new_password_confirm")
    key = f"email:{actor.user.email}"
    await check_login_limit(uow, [key], policy, clock)
    found = await uow.users.find_for_login(actor.user.email)
    if found is None or found[0].id != actor.user.id:
        raise NotFound("no such user")
    if not hasher.verify(found[1], current_password):
        await uow.login_failures.record(key, clock())
        await uow.commit()
        raise InvalidInput(
            "is not your current password", field="current_password", code="wrong_password"
        )
    if new_password == current_password:
        raise InvalidInput("must differ from the current password", field="new_password")
    now = clock()
    user = await uow.users.update(
        actor.organization_id,
        actor.user.id,
        password_hash=hasher.hash(new_password),
        password_state=PasswordState.SET,
        now=now,
    )
    if user is None:
        raise NotFound("no such user")
    await uow.sessions.delete_for_user(actor.organization_id, actor.user.id)
    await uow.login_failures.clear(key)
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="user.password_change",
        target=str(actor.user.id),
        fields=["password"],
        now=now,
    )
    opened = await open_session(uow, user, policy, now) if reissue_session else None
    await uow.commit()
    return opened


async def reset_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    actor: Principal,
    user_id: UUID,
    *,
    clock: Clock = utcnow,
) -> PasswordReset:
    """An admin gives a member of their organization a one-time password.

    ``PermissionDenied`` unless the actor is an admin; ``NotFound`` for a user of another
    organization (or none); ``Conflict`` naming ``user_id`` for the actor themselves (an
    admin changes their own password with the current one, like everyone)."""
    require_role(actor, Role.ADMIN)
    target = await uow.users.get(actor.organization_id, user_id)
    if target is None:
        raise NotFound("no such user")
    if target.id == actor.user.id:
        raise Conflict(
            "you cannot reset your own password; change it with your current one",
            field="user_id",
        )
    password = new_password()
    now = clock()
    user = await uow.users.update(
        actor.organization_id,
        user_id,
        password_hash=hasher.hash(password),
        password_state=PasswordState.ONE_TIME,
        now=now,
    )
    assert user is not None  # found above, same transaction
    sessions = await uow.sessions.delete_for_user(actor.organization_id, user_id)
    tokens = await uow.tokens.revoke_for_user(actor.organization_id, user_id, now)
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="user.password_reset",
        target=str(user_id),
        fields=["password"],
        now=now,
    )
    await uow.commit()
    return PasswordReset(user, sessions, tokens, one_time_password=password)
