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
