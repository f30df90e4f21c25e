"""Roles, lowest to highest. A role may do everything a lower role may do."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    REPORTER = "reporter"
    USER = "user"
    EVENT_CURATOR = "event_curator"
    EVENT_MANAGER = "event_manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def at_least(self, other: Role) -> bool:
        """True when this role is ``other`` or higher."""
        return self.rank >= other.rank


_ORDER: tuple[Role, ...] = (
    Role.REPORTER,
    Role.USER,
    Role.EVENT_CURATOR,
    Role.EVENT_MANAGER,
    Role.ADMIN,
)

_DESCRIPTIONS: dict[Role, str] = {
    Role.REPORTER: "captures visit reports in the app, exports them and sends a follow-up "
    "to one lead of their own reports",
    Role.USER: "the same as reporter: captures and exports their own reports, sends a "
    "follow-up to one lead",
    Role.EVENT_CURATOR: "also sees every report, draft events, the outbox and the "
    "suppression list; checks reports and sends bulk follow-ups from the dashboard",
    Role.EVENT_MANAGER: "also creates and edits events, follow-up templates and the media "
    "library, and lifts suppressions",
    Role.ADMIN: "everything, and the mail server settings, the notification mapping and "
    "the organization's users",
}


def describe(role: Role) -> str:
    """What ``role`` may do, in one line (shown where roles are chosen)."""
    return _DESCRIPTIONS[role]
