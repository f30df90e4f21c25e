"""Outgoing mail as a value: what a message says (``MailSpec``) and what it became on the
wire (``BuiltMessage``).

Services describe a message with a ``MailSpec``; ``adapters/render/mime.py`` turns it into
MIME bytes once, and the outbox stores those bytes, so every retry sends the same thing.

A ``MailSpec`` is validated when it is constructed: header injection (CR, LF, NUL and other
line-breaking or control characters) in any header-bound value is refused with
``InvalidInput`` naming the field (``to[1].name``, ``attachments[0].filename``, …).
Addresses are checked and stored in their ASCII form (an internationalized domain becomes
its IDNA ``xn--`` form), because the MIME is 7-bit and the envelope needs no SMTPUTF8; an
internationalized *local part* needs SMTPUTF8 and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from visitmail.domain.addresses import refuse_line_breaks, smtp_address
from visitmail.domain.errors import InvalidInput
from visitmail.domain.header_text import header_safe, refuse_invalid_unicode

#: Extra headers a spec may carry, by lower-cased name, with the spelling written out.
#: Everything else (From, To, Subject, Content-*, …) is owned by the builder.
ALLOWED_EXTRA_HEADERS: dict[str, str] = {
    name.lower(): name
    for name in (
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "Auto-Submitted",
        "Precedence",
        "X-Auto-Response-Suppress",
        "X-Visitmail-Report",
        "X-Visitmail-Event",
        "X-Visitmail-Template",
        "X-Visitmail-Kind",
    )
}

MAX_SUBJECT_CHARS = 900  # so even an unfoldable ASCII subject fits in 998 octets
MAX_NAME_CHARS = 256
MAX_FILENAME_CHARS = 255
MAX_MESSAGE_ID_CHARS = 250
MAX_RECIPIENTS = 100

_MESSAGE_ID = re.compile(r"^<[!-;=?A-~]+@[!-;=?A-~]+>$")  # printable ASCII but <, >, @
_MIME_NAME = r"[A-Za-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(rf"^{_MIME_NAME}/{_MIME_NAME}$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")  # printable ASCII and tab


def _header_text(value: str, *, field: str, max_chars: int) -> str:
    """A header-bound text: the rule of :mod:`visitmail.domain.header_text`, bounded."""
    header_safe(value, field=field)
    if len(value) > max_chars:
        raise InvalidInput(f"must be at most {max_chars} characters", field=field)
    return value


def ascii_address(value: str, *, field: str) -> str:
    """The address as it goes into a 7-bit header and the SMTP envelope: syntax checked,
    domain lower-cased and in IDNA form. Raises ``InvalidInput`` naming ``field``."""
    _header_text(value, field=field, max_chars=320)
    result = smtp_address(value, field=field)
    if result.smtputf8:
        raise InvalidInput(
            "a non-ASCII part before the @ needs SMTPUTF8, which is not supported",
            field=field,
        )
    return f"{result.local_part}@{result.ascii_domain.lower()}"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An address with an optional display name (any Unicode; encoded on the wire)."""

    address: str
    name: str = ""

    def checked(self, field: str) -> Mailbox:
        """This mailbox with its address in ASCII form; refuses injection in either part
        (``{field}.address``, ``{field}.name``)."""
        address = ascii_address(self.address, field=f"{field}.address")
        name = _header_text(self.name, field=f"{field}.name", max_chars=MAX_NAME_CHARS)
        return Mailbox(address, name.strip())


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a message. ``content_type`` is ``type/subtype`` without
    parameters; ``filename`` may be any Unicode (RFC 2231 on the wire)."""

    filename: str
    content_type: str
    data: bytes

    @property
    def maintype(self) -> str:
        return self.content_type.split("/", 1)[0].lower()

    @property
    def subtype(self) -> str:
        return self.content_type.split("/", 1)[1].lower()


@dataclass(frozen=True, slots=True)
class MailSpec:
    """What one outgoing message says. Validated at construction (``InvalidInput`` names the
    field); sequences are frozen into tuples and addresses stored in ASCII form.

    - ``sender``: the From mailbox; its address is also the envelope sender unless
      ``envelope_from`` says otherwise (a bounce address).
    - ``to``, ``cc``: header recipients; ``bcc``: envelope only, never written as a header.
      At least one recipient overall, at most ``MAX_RECIPIENTS`` after de-duplication.
    - ``reply_to``: optional Reply-To mailbox.
    - ``subject``: stripped of leading and trailing whitespace.
    - ``text``: the plain-text body (always present); ``html``: optional alternative.
    - ``attachments``: after the body, in order.
    - ``headers``: ``(name, value)`` pairs from ``ALLOWED_EXTRA_HEADERS`` only, printable
      ASCII values, each name at most once; written verbatim.
    - ``message_id``: ``<local@domain>``; ``None`` lets the builder make one under the
      sender's domain. ``date``: time-zone aware; ``None`` means "when built".
      Fix both to get identical bytes from identical specs.
    """

    sender: Mailbox
    to: Sequence[Mailbox] = ()
    cc: Sequence[Mailbox] = ()
    bcc: Sequence[str] = ()
    reply_to: Mailbox | None = None
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: Sequence[Attachment] = ()
    headers: Sequence[tuple[str, str]] = ()
    message_id: str | None = None
    date: datetime | None = None
    envelope_from: str | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "sender", self.sender.checked("from"))
        put(self, "to", tuple(m.checked(f"to[{i}]") for i, m in enumerate(self.to)))
        put(self, "cc", tuple(m.checked(f"cc[{i}]") for i, m in enumerate(self.cc)))
        put(
            self,
            "bcc",
            tuple(ascii_address(a, field=f"bcc[{i}]") for i, a in enumerate(self.bcc)),
        )
        if self.reply_to is not None:
            put(self, "reply_to", self.reply_to.checked("reply_to"))
        if self.envelope_from is not None:
            put(self, "envelope_from", ascii_address(self.envelope_from, field="envelope_from"))
        if not (self.to or self.cc or self.bcc):
            raise InvalidInput("at least one recipient is required", field="to")
        if len(self.envelope_recipients()) > MAX_RECIPIENTS:
            raise InvalidInput(f"at most {MAX_RECIPIENTS} recipients", field="to")
        subject = _header_text(self.subject, field="subject", max_chars=MAX_SUBJECT_CHARS)
        put(self, "subject", subject.strip())
        _body(self.text, field="text")
        if self.html is not None:
            _body(self.html, field="html")
        put(self, "attachments", _attachments(self.attachments))
        put(self, "headers", _extra_headers(self.headers))
        if self.message_id is not None:
            refuse_line_breaks(self.message_id, field="message_id")
            if len(self.message_id) > MAX_MESSAGE_ID_CHARS or not _MESSAGE_ID.match(
                self.message_id
            ):
                raise InvalidInput("must look like <local@domain>", field="message_id")
        if self.date is not None and self.date.utcoffset() is None:
            raise InvalidInput("must carry a time zone", field="date")

    @property
    def sender_domain(self) -> str:
        return self.sender.address.rsplit("@", 1)[1]

    def envelope_recipients(self) -> tuple[tuple[str, str], ...]:
        """``(address, role)`` for to, cc, then bcc; the first occurrence of an address
        (compared case-insensitively) wins."""
        seen: set[str] = set()
        out: list[tuple[str, str]] = []
        pairs = [
            *((m.address, "to") for m in self.to),
            *((m.address, "cc") for m in self.cc),
            *((a, "bcc") for a in self.bcc),
        ]
        for address, role in pairs:
            key = address.casefold()
            if key not in seen:
                seen.add(key)
                out.append((address, role))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    """A message rendered once, ready for the outbox.

    ``envelope_recipients`` is to + cc + bcc de-duplicated; ``recipient_roles`` is the
    parallel tuple of ``"to"`` / ``"cc"`` / ``"bcc"``. ``mime`` is 7-bit, CRLF, lines of
    at most 998 octets, and carries no Bcc header."""

    message_id: str
    mime: bytes
    envelope_from: str
    envelope_recipients: tuple[str, ...]
    subject: str
    recipient_roles: tuple[str, ...] = ()


def _body(value: str, *, field: str) -> None:
    if "\x00" in value:
        raise InvalidInput("must not contain NUL characters", field=field)
    refuse_invalid_unicode(value, field=field)


def _attachments(items: Sequence[Attachment]) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    for i, item in enumerate(items):
        field = f"attachments[{i}]"
        name = _header_text(
            item.filename, field=f"{field}.filename", max_chars=MAX_FILENAME_CHARS
        ).strip()
        if not name:
            raise InvalidInput("must not be empty", field=f"{field}.filename")
        refuse_line_breaks(item.content_type, field=f"{field}.content_type")
        if not _CONTENT_TYPE.match(item.content_type):
            raise InvalidInput(
                "must be type/subtype, e.g. application/pdf", field=f"{field}.content_type"
            )
        if item.maintype in ("multipart", "message"):
            raise InvalidInput(
                f"{item.maintype}/* cannot be attached as a file", field=f"{field}.content_type"
            )
        out.append(Attachment(name, item.content_type.lower(), bytes(item.data)))
    return tuple(out)


def _extra_headers(items: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, (name, value) in enumerate(items):
        refuse_line_breaks(name, field=f"headers[{i}].name")
        canonical = ALLOWED_EXTRA_HEADERS.get(name.strip().lower())
        if canonical is None:
            raise InvalidInput(f"header {name!r} is not allowed", field=f"headers[{i}].name")
        if canonical.lower() in seen:
            raise InvalidInput(f"header {canonical} is given twice", field=f"headers[{i}].name")
        seen.add(canonical.lower())
        refuse_line_breaks(value, field=f"headers[{i}].value")
        value = value.strip()
        if not _HEADER_VALUE.match(value):
            raise InvalidInput(f"{canonical} must be printable ASCII", field=f"headers[{i}].value")
        if len(canonical) + 2 + len(value) > 998:
            raise InvalidInput(f"{canonical} is too long", field=f"headers[{i}].value")
        out.append((canonical, value))
    return tuple(out)
