"""Email addresses: syntax checked and normalized, header injection refused."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from visitmail.domain.errors import InvalidInput

_FORBIDDEN = ("\r", "\n", "\x00")


def refuse_line_breaks(value: str, *, field: str) -> str:
    """Return ``value`` unchanged, or refuse it if it holds CR, LF or NUL (header injection)."""
    if any(ch in value for ch in _FORBIDDEN):
        raise InvalidInput("must not contain line breaks or NUL characters", field=field)
    return value


def normalize_email(value: str, *, field: str) -> str:
    """A syntactically valid address, domain lower-cased; no DNS lookups (no I/O here)."""
    refuse_line_breaks(value, field=field)
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"is not a valid email address: {exc}", field=field) from None
    return result.normalized.lower()
