"""The error tree. Every error carries a stable ``code``, a user-facing ``message``
and, where one input is at fault, the ``field`` that names it.

Shells translate these once (HTTP status, CLI exit code); messages never contain secrets.
"""

from __future__ import annotations


class VisitmailError(Exception):
    """Base of every domain error."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class InvalidInput(VisitmailError):
    """Input that breaks a rule; ``field`` names it."""

    code = "invalid"


class NotFound(VisitmailError):
    """The object does not exist *for this organization* (also used across tenants)."""

    code = "not_found"


class Conflict(VisitmailError):
    """The request collides with existing state (a duplicate email, say)."""

    code = "conflict"


class NotAuthenticated(VisitmailError):
    """No valid credentials: missing, wrong, expired or revoked."""

    code = "not_authenticated"


class PermissionDenied(VisitmailError):
    """Authenticated, but the role is too low for this action."""

    code = "forbidden"


class RateLimited(VisitmailError):
    """Too many attempts; ``retry_after`` seconds until the next one may succeed."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after = retry_after
