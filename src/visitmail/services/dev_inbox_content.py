"""What one mail of the dev inbox shows: its text and HTML bodies, its headers (decoded)
and its attachments. Pure: the standard library's ``email`` package, no I/O.

Decisions:

- The bodies are the parts ``EmailMessage.get_body`` picks (``text/plain`` for the text
  view, ``text/html`` for the HTML view). Every other leaf part is an *attachment*,
  numbered from 0 in the order the message holds them (inline images included, as
  Mailpit lists them); the number is the attachment's address in the URL.
- A body whose charset Python does not know is decoded as UTF-8 with replacement
  characters instead of failing: the dev inbox shows what it can of any mail.
- Header values are shown as ``email.policy.default`` decodes them (RFC 2047 words
  decoded); a header that cannot be parsed is shown as its raw text.
- ``cid:`` references in the HTML (an inline image of the same mail) are replaced by a
  ``data:`` URI of that part, at most :data:`INLINE_IMAGE_LIMIT` bytes each: the frame's
  Content-Security-Policy allows ``data:`` images and nothing remote, so remote images
  never load.
- Only PDF and raster images open in the browser (:data:`INLINE_TYPES`); every other type
  is always a download. SVG is not among them (it can carry scripts).
- The search text (:func:`search_text`) is the subject, the From/To/Cc headers, the
  envelope and the text body (or the HTML body with its tags removed), lower-cased and cut
  at :data:`SEARCH_TEXT_LIMIT` characters.
"""

from __future__ import annotations

import base64
import html as html_module
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"})
INLINE_IMAGE_LIMIT = 2_000_000
SEARCH_TEXT_LIMIT = 100_000
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_CID = re.compile(r"""cid:([^\s"'<>)]+)""", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment: ``index`` is its number in the message (see the module docstring);
    ``content_type`` is safe to put in a ``Content-Type`` header."""

    index: int
    filename: str
    content_type: str
    size: int

    @property
    def opens_inline(self) -> bool:
        return self.content_type in INLINE_TYPES


@dataclass(frozen=True, slots=True)
class MailContent:
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[Attachment]


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


def _bodies(message: EmailMessage) -> tuple[EmailMessage | None, EmailMessage | None]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return (
        text if isinstance(text, EmailMessage) else None,
        html if isinstance(html, EmailMessage) else None,
    )


def _safe_type(part: Message) -> str:
    declared = part.get_content_type().lower()
    return declared if _TYPE.match(declared) else "application/octet-stream"


def _leaves(message: EmailMessage) -> list[Message]:
    """Every attachment part, in order (the leaves that are not the chosen bodies)."""
    bodies = [b for b in _bodies(message) if b is not None]
    return [
        part
        for part in message.walk()
        if not part.is_multipart() and all(part is not b for b in bodies)
    ]


def _filename(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except (ValueError, LookupError):
        name = None
    cleaned = "".join(c for c in (name or "") if c.isprintable()).strip()
    if cleaned:
        return cleaned[:255]
    subtype = part.get_content_subtype() or "bin"
    return f"part-{index + 1}.{subtype if subtype.isalnum() else 'bin'}"


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def attachments(message: EmailMessage) -> list[Attachment]:
    return [
        Attachment(i, _filename(p, i), _safe_type(p), len(_payload(p)))
        for i, p in enumerate(_leaves(message))
    ]


def attachment(message: EmailMessage, index: int) -> tuple[Attachment, bytes] | None:
    """The attachment numbered ``index`` and its decoded bytes; ``None`` if there is none."""
    leaves = _leaves(message)
    if not 0 <= index < len(leaves):
        return None
    part = leaves[index]
    data = _payload(part)
    return Attachment(index, _filename(part, index), _safe_type(part), len(data)), data


def _header_value(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a malformed header is shown raw, never an error page
        return repr(value)


def headers(message: EmailMessage) -> list[tuple[str, str]]:
    """Every header in order, values decoded (RFC 2047); the sink's own envelope headers
    are not part of the message."""
    out = []
    for key, raw in message.raw_items():
        try:
            value = _header_value(message.policy.header_fetch_parse(key, raw))
        except Exception:  # a malformed header: shown raw (see _header_value)
            value = str(raw)
        out.append((key, value))
    return out


def _inline_images(message: EmailMessage, html: str) -> str:
    by_cid: dict[str, Message] = {}
    for part in _leaves(message):
        cid = str(part.get("Content-ID", "")).strip().strip("<>")
        if cid:
            by_cid[cid.lower()] = part

    def replace(found: re.Match[str]) -> str:
        part = by_cid.get(found.group(1).lower())
        if part is None or not _safe_type(part).startswith("image/"):
            return found.group(0)
        data = _payload(part)
        if len(data) > INLINE_IMAGE_LIMIT or _safe_type(part) == "image/svg+xml":
            return found.group(0)
        return f"data:{_safe_type(part)};base64,{base64.b64encode(data).decode()}"

    return _CID.sub(replace, html)


def content(message: EmailMessage) -> MailContent:
    text, html = _bodies(message)
    return MailContent(
        headers=headers(message),
        text=_decoded(text) if text is not None else None,
        html=_inline_images(message, _decoded(html)) if html is not None else None,
        attachments=attachments(message),
    )


def search_text(message: EmailMessage, envelope: str) -> str:
    text, html = _bodies(message)
    if text is not None:
        body = _decoded(text)
    elif html is not None:
        body = html_module.unescape(_TAG.sub(" ", _decoded(html)))
    else:
        body = ""
    parts = []
    for key in ("Subject", "From", "To", "Cc"):
        parts += [_header_value(v) for v in message.get_all(key) or []]
    parts += [envelope, body]  # headers first: the cut at the limit takes the body's end
    return _SPACE.sub(" ", " ".join(parts)).lower()[:SEARCH_TEXT_LIMIT]
