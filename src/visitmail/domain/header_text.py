"""One rule for text that may reach a mail header, applied at save *and* at send.

A display name, a lead's name or company, a subject, a file name, a sender name: each can
end up in a header of a message built later, possibly by a send weeks after the save. If
the save accepted what the send refuses, every later send would fail; so both call this.

Refused (``InvalidInput`` naming the field):

- CR, LF and NUL (header injection; :func:`~visitmail.domain.addresses.refuse_line_breaks`
  gives the message);
- the other characters that ``str.splitlines()`` and some mail software treat as line
  breaks (VT, FF, FS/GS/RS, NEL U+0085, LINE SEPARATOR U+2028, PARAGRAPH SEPARATOR
  U+2029) and every other C0/C1 control and DEL;
- text that is not valid Unicode (a lone surrogate cannot be encoded as UTF-8).

Allowed: every other character, including TAB (legal in a folded header). Short fields
that are typed in one line (names, usernames, a lead's fields) refuse TAB as well
(``allow_tab=False``): stricter at save than at send, never the other way round.
"""

from __future__ import annotations

import re

from visitmail.domain.addresses import refuse_line_breaks
from visitmail.domain.errors import InvalidInput

_UNSAFE = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\u2028\u2029]")


def refuse_invalid_unicode(value: str, *, field: str) -> str:
    """``value`` unchanged, or ``InvalidInput`` if it cannot be encoded as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("must be valid Unicode text", field=field) from None
    return value


def has_unsafe_characters(value: str) -> bool:
    """True if ``value`` holds a character this module refuses (other than CR, LF, NUL)."""
    return _UNSAFE.search(value) is not None


def header_safe(value: str, *, field: str, allow_tab: bool = True) -> str:
    """``value`` unchanged if it may reach a mail header; else ``InvalidInput`` naming
    ``field`` (see the module docstring)."""
    refuse_line_breaks(value, field=field)
    refuse_invalid_unicode(value, field=field)
    if has_unsafe_characters(value) or (not allow_tab and "\t" in value):
        raise InvalidInput("must not contain control characters or line separators", field=field)
    return value
