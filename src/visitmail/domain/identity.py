"""Organizations, users, API tokens and web sessions as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from visitmail.domain.errors import InvalidInput
from visitmail.domain.header_text import header_safe
from visitmail.domain.roles import Role

MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Organization:
    id: UUID
    name: str
    created_at: datetime
    require_follow_up_consent: bool = True  # follow-ups only to leads who consented


class PasswordState(StrEnum):
    """Where a user's password came from, which decides what it may still do.

    ``SET``: the user chose it (or it was generated at creation) and it logs in freely.
    ``ONE_TIME``: an admin reset it; the generated password opens exactly one session.
    ``ONE_TIME_USED``: that session was opened; the password logs in no more, and the
    session may do nothing but change it (the user must change it)."""

    SET = "set"
    ONE_TIME = "one_time"
    ONE_TIME_USED = "one_time_used"


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    organization_id: UUID
    email: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime
    password_state: PasswordState = PasswordState.SET

    @property
    def must_change_password(self) -> bool:
        """True after an admin reset, until the user has chosen a new password."""
        return self.password_state is not PasswordState.SET


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's public face; the secret itself exists only once, at issue."""

    id: UUID
    organization_id: UUID
    user_id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: the user and the organization every query is scoped by."""

    user: User
    via: str  # "token" or "session"

    @property
    def organization_id(self) -> UUID:
        return self.user.organization_id

    @property
    def role(self) -> Role:
        return self.user.role


def placeholder_name(email: str) -> str:
    """The display name stored for a user created without one: the local part of their
    address. Users created before names were asked for have it, and so has the first
    admin of ``visitmail org create`` run without ``--admin-name`` and without a terminal
    to ask on (the command warns)."""
    return email.split("@", 1)[0]


def has_own_name(user_name: str, email: str) -> bool:
    """True if ``user_name`` is a name someone gave, not empty and not the
    :func:`placeholder_name` of ``email`` (compared exactly: "Anna" for anna@… is a name
    someone typed, "anna" is what visitmail stored)."""
    name = user_name.strip()
    return bool(name) and name != placeholder_name(email.strip())


def clean_name(value: str, *, field: str) -> str:
    """A display name: stripped, non-empty, bounded, header-safe (it signs follow-ups:
    :mod:`visitmail.domain.header_text`)."""
    cleaned = header_safe(value, field=field, allow_tab=False).strip()
    if not cleaned:
        raise InvalidInput("must not be empty", field=field)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(f"must be at most {MAX_NAME_LENGTH} characters", field=field)
    return cleaned
