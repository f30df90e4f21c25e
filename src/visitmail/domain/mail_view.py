"""What a stored message looks like to a reader: its text part, its HTML part and its
attachments, parsed from the MIME bytes the outbox keeps (rendered once, at enqueue).

Bounded: a message is at most 25 MB (``services.outbox.MAX_MESSAGE_BYTES``); at most
:data:`MAX_PARTS` parts are walked and at most :data:`MAX_ATTACHMENTS` attachments listed,
and each body is cut at :data:`MAX_TEXT_CHARS` (``truncated`` says so), so a hostile
structure or a huge body cannot make a page slow. The first ``text/plain`` and the first
``text/html`` part that are not attachments are the bodies; every part with a filename or
``Content-Disposition: attachment`` is an attachment, numbered from 0 in document order
(the number is how :func:`attachment` finds it again). Undecodable text is shown with
replacement characters, never refused.

Download names are :func:`ascii_filename`: accents folded, ``ß`` → ``ss``, anything
outside a safe set replaced, so a header value never carries a quote or a line break.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

MAX_PARTS = 200
MAX_ATTACHMENTS = 50
MAX_TEXT_CHARS = 200_000  # of each body shown on a page; the rest is cut, and said so
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
# Folded by hand: NFKD leaves these alone (they are letters, not letters with marks).
LETTER_FOLDS = str.maketrans(
    {"ß": "ss", "ẞ": "SS", "Æ": "AE", "æ": "ae", "Ø": "O", "ø": "o", "Œ": "OE", "œ": "oe"}
    | {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "Th", "þ": "th"}
)


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    index: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MailView:
    text: str | None
    html: str | None
    attachments: tuple[AttachmentInfo, ...]
    truncated: bool = False


def ascii_filename(name: str, *, fallback: str = "file") -> str:
    """``name`` as a safe ASCII file name: ``Broschüre Straße.pdf`` →
    ``Broschure-Strasse.pdf``; at most 100 characters; ``fallback`` when nothing is left."""
    folded = unicodedata.normalize("NFKD", name.translate(LETTER_FOLDS))
    plain = folded.encode("ascii", "ignore").decode("ascii")
    safe = _UNSAFE.sub("-", plain).strip("-.")
    if len(safe) > 100:
        stem, dot, ext = safe.rpartition(".")
        safe = f"{stem[: 99 - len(ext)]}.{ext}" if dot and len(ext) <= 10 else safe[:100]
    return safe or fallback


def content_type_of(part: Message) -> str:
    """The part's declared type, lower-cased, or ``application/octet-stream`` when it is
    not a well-formed ``type/subtype``."""
    value = part.get_content_type().lower()
    return value if _TYPE.match(value) else "application/octet-stream"


def _parse(mime: bytes) -> EmailMessage:
    parsed = message_from_bytes(mime, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _parts(message: EmailMessage) -> list[Message]:
    out: list[Message] = []
    for part in message.walk():
        if len(out) >= MAX_PARTS:
            break
        if not part.is_multipart():
            out.append(part)
    return out


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or part.get_filename() is not None


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", errors="replace")


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def view(mime: bytes) -> MailView:
    """The bodies and attachments of ``mime`` (see the module doc)."""
    text: str | None = None
    html: str | None = None
    attachments: list[AttachmentInfo] = []
    for part in _parts(_parse(mime)):
        if _is_attachment(part):
            if len(attachments) < MAX_ATTACHMENTS:
                index = len(attachments)
                name = part.get_filename() or f"attachment-{index + 1}"
                attachments.append(
                    AttachmentInfo(index, name, content_type_of(part), len(_payload(part)))
                )
            continue
        kind = part.get_content_type().lower()
        if kind == "text/plain" and text is None:
            text = _text(part)
        elif kind == "text/html" and html is None:
            html = _text(part)
    cut = any(len(b) > MAX_TEXT_CHARS for b in (text, html) if b is not None)
    return MailView(
        text=text[:MAX_TEXT_CHARS] if text is not None else None,
        html=html[:MAX_TEXT_CHARS] if html is not None else None,
        attachments=tuple(attachments),
        truncated=cut,
    )


def attachment(mime: bytes, index: int) -> tuple[AttachmentInfo, bytes] | None:
    """Attachment number ``index`` of :func:`view` and its decoded bytes; ``None`` if there
    is no such attachment."""
    found = 0
    for part in _parts(_parse(mime)):
        if not _is_attachment(part):
            continue
        if found == index and found < MAX_ATTACHMENTS:
            data = _payload(part)
            name = part.get_filename() or f"attachment-{index + 1}"
            return AttachmentInfo(index, name, content_type_of(part), len(data)), data
        found += 1
    return None
