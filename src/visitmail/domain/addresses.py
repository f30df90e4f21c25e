"""Email addresses: syntax checked and normalized, header injection refused.

What is accepted is what SMTP accepts (RFC 5321), not what the public internet delivers:
visitmail hands every message to the organization's own server, and internal relays
deliver special-use and private domains (an on-premises Exchange with ``firma.local``, a
lab on ``.test``, ``.internal``), dotless hosts (``postmaster@mailhub``) and address
literals (``ops@[10.0.0.7]``). The recipient's domain never decides where visitmail
connects (the SMTP host does, behind the SSRF guard), so accepting these opens nothing.
Refused: bad syntax, line breaks and NUL (header injection), and (where a caller needs
7-bit form) a non-ASCII local part.
"""

from __future__ import annotations

from functools import lru_cache

import email_validator
from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from visitmail.domain.errors import InvalidInput

_FORBIDDEN = ("\r", "\n", "\x00")

# email-validator refuses RFC 6761 special-use names (``local``, ``test``, ``invalid``, …)
# whatever the flags say; its documented switch is this list. SMTP servers deliver them,
# so visitmail accepts them (see the module docstring). Emptied in place: the library
# reads the list at each call.
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()


def refuse_line_breaks(value: str, *, field: str) -> str:
    """Return ``value`` unchanged, or refuse it if it holds CR, LF or NUL (header injection)."""
    if any(ch in value for ch in _FORBIDDEN):
        raise InvalidInput("must not contain line breaks or NUL characters", field=field)
    return value


def smtp_address(value: str, *, field: str) -> ValidatedEmail:
    """The parsed address if its syntax is valid for SMTP (no DNS lookups, no I/O).
    Raises ``InvalidInput`` naming ``field`` with the library's reason."""
    refuse_line_breaks(value, field=field)
    try:
        return _parsed(value.strip())
    except EmailNotValidError as exc:
        raise InvalidInput(f"is not a valid email address: {exc}", field=field) from None


@lru_cache(maxsize=4096)
def _parsed(value: str) -> ValidatedEmail:
    # The same address is checked several times on its way out (the spec, the envelope,
    # the outbox) and a bulk send repeats the sender for every lead: parsing is pure, so
    # each distinct address is parsed once. Failures raise and are not cached.
    return validate_email(
        value,
        check_deliverability=False,
        globally_deliverable=False,
        allow_domain_literal=True,
    )


def normalize_email(value: str, *, field: str) -> str:
    """A syntactically valid address, lower-cased (see the module docstring for what is
    valid). Raises ``InvalidInput`` naming ``field``."""
    return smtp_address(value, field=field).normalized.lower()
