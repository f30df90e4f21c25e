"""MIME building: a ``MailSpec`` becomes the exact bytes the outbox stores and the worker
sends.

The output is what any SMTP server accepts without the 8BITMIME or SMTPUTF8 extensions:
CRLF line endings, 7-bit only (non-ASCII display names and subjects as RFC 2047 encoded
words, non-ASCII attachment filenames as RFC 2231 parameters, bodies 7bit,
quoted-printable or base64), no line longer than 998 octets. There is never a Bcc
header: blind copies exist only in the envelope.

Building is deterministic: the same spec with a fixed ``message_id`` and ``date`` gives the
same bytes (multipart boundaries are derived from the content, not from a random source).

How, and why not the ``email`` package's objects
------------------------------------------------
visitmail builds three shapes only: ``text/plain``; ``multipart/alternative`` (plain,
html); and either of those first in a ``multipart/mixed`` with the files after it. This
module writes them directly. Building a ``MIMEPart`` and running the generator cost
1.1 ms (text) to 3 ms (text + html) of CPU a message, 6.8 ms with a 51 KB PDF, almost
all of it header-registry parsing and refolding of the ``Content-*`` headers, the
generator walk and base64 of the same file again and again; this module takes 0.1, 0.2
and 0.3 ms (``scripts/bench_mime.py`` prints both). The other option, keeping the
``email`` package on its faster paths (compat32 ``email.mime`` classes, one
``BytesGenerator`` pass), still took 0.85 ms (text) and 1.5 ms (text + html) in a trial
on the same machine: the message objects and the generator walk are the cost.

The output is the one the ``email`` package (``policy.SMTP``, ``cte_type="7bit"``,
``max_line_length=78``) produced for the same spec, byte for byte, except for the
boundary strings of messages with attachments (see ``_digest``); the tests check this
against the old builder, kept in ``tests/unit/adapters/mime_reference.py``, and that the
result parses back to the spec. To stay identical it reuses the package's own pieces:

- text bodies: the same choice as ``email.contentmanager`` (7bit when every line is ASCII
  and at most 78 octets; otherwise quoted-printable or base64, whichever is shorter on the
  first ten lines), encoded as ``email.quoprimime.body_encode`` does (``_qp``; the tests
  compare the two) or with ``base64``;
- headers with text in them (From, To, Cc, Reply-To, Subject): encoded and folded here
  (see below) as before; Date by ``email.utils.format_datetime``;
- an attachment's ``Content-Disposition``: written and folded here as the package folds
  it (RFC 2231 ``filename*=utf-8''...`` for a non-ASCII name, sections ``filename*0*=``
  ... when too long; the tests compare the two on thousands of names), except an ASCII
  name with quotes, backslashes, tabs or runs of spaces, and a ``Content-Type`` too long
  for one line: those (rare, and cached like every attachment part) are folded by the
  package's header folder.

Attachments are encoded once per distinct content: the whole MIME part (headers and
base64 body) is kept in a bounded LRU cache (``ATTACHMENT_CACHE``) keyed by the SHA-256 of
the bytes, the file name and the content type, so a follow-up campaign that sends the
same brochure to a thousand leads base64-encodes it once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.policy import SMTP
from email.utils import encode_rfc2231, format_datetime, make_msgid, quote
from functools import lru_cache
from urllib.parse import quote as url_quote

from visitmail.domain.mail import Attachment, BuiltMessage, Mailbox, MailSpec

__all__ = ["ATTACHMENT_CACHE", "AttachmentCache", "BuiltMessage", "MailSpec", "build_message"]

#: Only for what is rare and cached: folding a long attachment header.
_FOLDER = SMTP.clone(cte_type="7bit")
_MAX_LINE = 78  # the email package's policy.max_line_length, kept for identical output
_CRLF = "\r\n"


class AttachmentCache:
    """A bounded, thread-safe LRU of encoded attachment parts.

    Keys are ``(sha256(data), filename, content_type)``; values are the complete MIME
    part (its ``Content-*`` headers, a blank line, the base64 body; CRLF). At most
    ``max_entries`` parts and ``max_bytes`` octets of them are kept; a part larger than
    ``max_bytes // 4`` is never kept (it would push everything else out)."""

    def __init__(self, *, max_entries: int = 64, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._parts: OrderedDict[tuple[bytes, str, str], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def size_bytes(self) -> int:
        """Octets of encoded parts held now."""
        return self._bytes

    def part(self, attachment: Attachment, data_hash: bytes) -> bytes:
        """The encoded MIME part for ``attachment`` (whose SHA-256 is ``data_hash``)."""
        key = (data_hash, attachment.filename, attachment.content_type)
        with self._lock:
            found = self._parts.get(key)
            if found is not None:
                self._parts.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        made = _attachment_part(attachment)
        if len(made) > self.max_bytes // 4:
            return made
        with self._lock:
            if key not in self._parts:
                self._parts[key] = made
                self._bytes += len(made)
                while len(self._parts) > self.max_entries or self._bytes > self.max_bytes:
                    _, dropped = self._parts.popitem(last=False)
                    self._bytes -= len(dropped)
        return made

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()
            self._bytes = 0
            self.hits = self.misses = 0


#: The process-wide cache ``build_message`` uses.
ATTACHMENT_CACHE = AttachmentCache()


def build_message(spec: MailSpec) -> BuiltMessage:
    """Render ``spec`` as MIME bytes.

    ``text`` alone is a ``text/plain`` message; with ``html`` a ``multipart/alternative``
    (plain first); with attachments, that body is wrapped in ``multipart/mixed`` followed
    by the files. The Message-ID is ``spec.message_id`` or, if that is ``None``, a new one
    under the sender's domain; the Date is ``spec.date`` or now (UTC).

    The spec was validated when it was made (header injection is refused there with
    ``InvalidInput`` naming the field), so this raises nothing for a valid spec.
    """
    message_id = spec.message_id or make_msgid(domain=spec.sender_domain)
    date = spec.date or datetime.now(UTC)

    head = [
        f"Date: {format_datetime(date)}",
        f"From: {_mailboxes('From', [spec.sender])}",
        f"To: {_mailboxes('To', spec.to)}" if spec.to else "To: undisclosed-recipients:;",
    ]
    if spec.cc:
        head.append(f"Cc: {_mailboxes('Cc', spec.cc)}")
    if spec.reply_to is not None:
        head.append(f"Reply-To: {_mailboxes('Reply-To', [spec.reply_to])}")
    head.append(f"Subject: {_unstructured('Subject', spec.subject)}")
    head.append(f"Message-ID: {message_id}")
    head.extend(f"{name}: {value}" for name, value in spec.headers)
    head.append("MIME-Version: 1.0")
    head.append("")

    hashes = [hashlib.sha256(a.data).digest() for a in spec.attachments]
    body = _text_part("plain", spec.text)
    if spec.html is not None or spec.attachments:
        digest = _digest(spec, message_id, date, hashes)
        if spec.html is not None:
            index = 1 if spec.attachments else 0
            body = _multipart(
                "alternative",
                f"=_vm_{digest}.{index}",
                [body.encode("ascii"), _text_part("html", spec.html).encode("ascii")],
            ).decode("ascii")
        if spec.attachments:
            parts = [body.encode("ascii")]
            parts.extend(
                ATTACHMENT_CACHE.part(a, h) for a, h in zip(spec.attachments, hashes, strict=True)
            )
            mime = _CRLF.join(head).encode("ascii") + _multipart("mixed", f"=_vm_{digest}.0", parts)
        else:
            mime = (_CRLF.join(head) + body).encode("ascii")
    else:
        mime = (_CRLF.join(head) + body).encode("ascii")

    recipients = spec.envelope_recipients()
    return BuiltMessage(
        message_id=message_id,
        mime=mime,
        envelope_from=spec.envelope_from or spec.sender.address,
        envelope_recipients=tuple(address for address, _ in recipients),
        subject=spec.subject,
        recipient_roles=tuple(role for _, role in recipients),
    )


def _multipart(subtype: str, boundary: str, parts: Sequence[bytes]) -> bytes:
    """A multipart entity: its Content-Type header, a blank line, the parts."""
    open_ = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join(
        (
            f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n".encode("ascii"),
            open_.join(parts),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )


def _text_part(subtype: str, text: str) -> str:
    """A text entity: Content-Type (utf-8), Content-Transfer-Encoding, blank line, body."""
    cte, payload = _encode_text(_lines(text))
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {cte}\r\n\r\n{payload}"
    )


def _encode_text(text: str) -> tuple[str, str]:
    """The transfer encoding and the encoded body (CRLF), chosen and encoded as
    ``email.contentmanager`` does for a 7-bit policy with 78-character lines: 7bit when
    every line is ASCII and fits, else quoted-printable unless base64 is shorter on the
    first ten lines. ``text`` has LF line ends."""
    lines = text.encode("utf-8").splitlines()
    if max(map(len, lines), default=0) <= _MAX_LINE:
        plain = b"\n".join(lines) + b"\n"
        if plain.isascii():
            return "7bit", plain.decode("ascii").replace("\n", _CRLF)
    head = _qp(b"\n".join(lines[:10]) + b"\n")
    sniffed = sum(map(len, lines[:10])) + 2 * len(lines[:10])  # with CRLF line ends
    if len(head) - head.count("\r") > 4 * -(-sniffed // 3) + 1:  # qp (LF) vs base64 + LF
        data = b"\r\n".join(lines) + b"\r\n"
        return "base64", base64.encodebytes(data).decode("ascii").replace("\n", _CRLF)
    if len(lines) <= 10:
        return "quoted-printable", head
    return "quoted-printable", head + _qp(b"\n".join(lines[10:]) + b"\n")


def _qp(data: bytes) -> str:
    """``email.quoprimime.body_encode(data.decode("latin-1"), 78)`` with CRLF line ends
    (the generator's output). ``data`` ends with a line break.

    The escaping is done in C by ``binascii.b2a_qp`` instead of ``str.translate``
    (several times faster), then undone where its rules differ from ``quoprimime``'s: it
    breaks lines at 76 (soft breaks ``=`` LF, removed), escapes a "." alone on a line and
    whitespace before a line break (``=2E``, ``=20``, ``=09``: unescaped again; the loop
    below treats trailing whitespace as ``quoprimime`` does). Both escape "=" itself, so
    after the escaping every "=" starts an escape and these replacements cannot touch
    the text's own characters."""
    body = (
        binascii.b2a_qp(data, istext=True)
        .replace(b"=\n", b"")
        .replace(b"=2E", b".")
        .replace(b"=20", b" ")
        .replace(b"=09", b"\t")
        .decode("ascii")
    )
    soft_break = "=" + _CRLF
    out: list[str] = []
    append = out.append
    for line in body.splitlines():
        # Break the line into pieces of at most 77 characters and a soft break, never
        # inside an escape.
        start = 0
        laststart = len(line) - 1 - _MAX_LINE
        while start <= laststart:
            stop = start + _MAX_LINE - 1
            if line[stop - 2] == "=":
                append(line[start : stop - 1])
                start = stop - 2
            elif line[stop - 1] == "=":
                append(line[start:stop])
                start = stop - 1
            else:
                append(line[start:stop] + "=")
                start = stop
        # Whitespace at the end of a line is escaped (or followed by a soft break).
        if line and line[-1] in " \t":
            room = start - laststart
            if room >= 3:
                end = f"={ord(line[-1]):02X}"
            elif room == 2:
                end = line[-1] + soft_break
            else:
                end = soft_break + f"={ord(line[-1]):02X}"
            append(line[start:-1] + end)
        else:
            append(line[start:])
    append("")  # the final line break
    return _CRLF.join(out)


_PLAIN_FILENAME = re.compile(r"^[A-Za-z0-9._+-]+(?: [A-Za-z0-9._+-]+)*$")


def _attachment_part(attachment: Attachment) -> bytes:
    """An attachment entity: Content-Type, base64, Content-Disposition with the file
    name, a blank line, the base64 body (76-character lines)."""
    head = (
        _content_header("Content-Type", f"{attachment.maintype}/{attachment.subtype}")
        + "Content-Transfer-Encoding: base64\r\n"
        + _disposition(attachment.filename)
        + _CRLF
    )
    # base64.encodebytes' layout (lines of 76, each ended; nothing for no data) with
    # CRLF, from one b64encode: faster than encodebytes' line-by-line encoding.
    body = base64.b64encode(attachment.data)
    lines = [body[i : i + 76] + b"\r\n" for i in range(0, len(body), 76)]
    return head.encode("ascii") + b"".join(lines)


def _disposition(filename: str) -> str:
    """``Content-Disposition: attachment; filename=...`` as the email package writes it:
    on one line if it fits; else the parameter on the next line; else in RFC 2231
    sections (``filename*0*=utf-8''...;`` ...) of at most 78 characters, never splitting
    a character's percent escapes. A file name the email package's parser might read
    differently (ASCII with quotes, backslashes, tabs, runs of spaces) is left to it."""
    if filename.isascii():
        if not _PLAIN_FILENAME.match(filename):
            return _content_header(
                "Content-Disposition", f'attachment; filename="{quote(filename)}"'
            )
        charset, param, room = "us-ascii", f'filename="{filename}"', _MAX_LINE
    else:
        # The package's own quirk, kept for identical output: the line may be 77 long.
        charset, param = "utf-8", "filename*=" + encode_rfc2231(filename, "utf-8", "")
        room = _MAX_LINE - 1
    first = "Content-Disposition: attachment;"
    if len(first) + 1 + len(param) <= room:
        return f"{first} {param}\r\n"
    if len(param) + 2 <= _MAX_LINE:
        return f"{first}\r\n {param}\r\n"
    lines = [first]
    chrome, section, rest = f"{charset}''", 0, filename
    while rest:
        room = _MAX_LINE - (len("filename") + len(str(section)) + 3 + len(chrome)) - 2
        split = room
        while len(encoded := url_quote(rest[:split], safe="")) > room:
            split -= 1
        lines.append(f" filename*{section}*={chrome}{encoded}")
        chrome, section, rest = "", section + 1, rest[split:]
        if rest:
            lines[-1] += ";"
    return _CRLF.join(lines) + _CRLF


def _content_header(name: str, value: str) -> str:
    """``Name: value`` and CRLF when it fits on one line; else the email package folds it
    (a long content type; an unusual file name)."""
    if len(name) + 2 + len(value) <= _MAX_LINE:
        return f"{name}: {value}\r\n"
    folded: str = _FOLDER.header_factory(name, value).fold(policy=_FOLDER)
    return folded


# Headers with text in them are encoded and folded here rather than by the email
# package: its folder (3.11) drops or adds spaces between encoded words in long mixed
# ASCII/non-ASCII subjects and display names, so they would not decode back to what was
# written. The rules used instead are the plain ones of RFC 5322 and RFC 2047:
#
# - fold only before whitespace that is in the text anyway (unfolding restores it);
# - ASCII words stay literal; runs of other words become base64 encoded words of whole
#   characters, well under 75 characters each;
# - whitespace *inside* a run goes inside the encoded words, because decoders drop the
#   whitespace between two adjacent encoded words. (Python's address parser keeps it,
#   unlike RFC 2047: a display name longer than one encoded word then shows a double
#   space there in Python; mail clients show it exactly.)

_FOLD_AT = 78
_EW_BYTES = 36  # 48 base64 characters; "=?utf-8?b?" + 48 + "?=" is 60 characters
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$")  # an atom (RFC 5322)
_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ \t]+$")  # atoms and spaces


def _mailboxes(header: str, mailboxes: Sequence[Mailbox]) -> str:
    """An address list (``Name <addr>, addr``), folded; names encoded when needed."""
    pieces: list[str] = []
    for index, mailbox in enumerate(mailboxes):
        if mailbox.name:
            own = [*_phrase(mailbox.name), f" <{mailbox.address}>"]
        else:
            own = [mailbox.address]
        if index:
            own[0] = " " + own[0]
        if index < len(mailboxes) - 1:
            own[-1] += ","
        pieces.extend(own)
    return _fold(header, pieces)


@lru_cache(maxsize=1024)
def _phrase(name: str) -> tuple[str, ...]:
    """A display name: atoms as they are; other ASCII as one quoted string; with
    non-ASCII, atoms literal and the other words encoded. (Cached: the same sender and
    reply-to names are on every message of a campaign.)"""
    if name.isascii() and "=?" not in name:
        if _PHRASE.match(name):
            return tuple(_words(name))
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return (f'"{quoted}"',)
    return tuple(_mixed(name, lambda word: bool(_ATEXT.match(word)) and "=?" not in word))


@lru_cache(maxsize=1024)
def _unstructured(header: str, text: str) -> str:
    """Subject-like text: printable ASCII words literal, runs of other words encoded."""
    if not text:
        return ""
    return _fold(header, _mixed(text, lambda word: word.isascii() and "=?" not in word))


def _words(text: str) -> list[str]:
    # Each piece keeps the whitespace before it, so folding before a piece and unfolding
    # again gives back exactly the same text.
    return re.findall(r"[ \t]*[^ \t]+", text)


def _mixed(text: str, literal: Callable[[str], bool]) -> list[str]:
    """Pieces for ``_fold``: literal words, and encoded words for the runs between them."""
    pieces: list[str] = []
    run: list[str] = []  # the encoded run so far: its whitespace before, then its text
    for token in _words(text):
        word = token.lstrip(" \t")
        space = token[: len(token) - len(word)]
        if literal(word):
            pieces.extend(_encode_run(run))
            run = []
            pieces.append(token)
        elif not run:
            run = [space, word]
        elif len((run[1] + token).encode()) <= _EW_BYTES:
            run[1] += token  # the space between words stays inside the encoded word
        else:
            pieces.extend(_encode_run(run))
            run = [" ", token]  # a folding space, then this word with its own space
    pieces.extend(_encode_run(run))
    return pieces


def _encode_run(run: list[str]) -> list[str]:
    if not run:
        return []
    space, text = run
    whole = text.encode()
    if len(whole) <= _EW_BYTES:  # the usual case: one encoded word
        return [f"{space}=?utf-8?b?{base64.b64encode(whole).decode('ascii')}?="]
    chunks: list[bytes] = []
    chunk = b""
    for char in text:
        encoded = char.encode()
        if chunk and len(chunk) + len(encoded) > _EW_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += encoded
    chunks.append(chunk)
    return [
        (space if i == 0 else " ") + f"=?utf-8?b?{base64.b64encode(c).decode('ascii')}?="
        for i, c in enumerate(chunks)
    ]


def _fold(header: str, pieces: Sequence[str]) -> str:
    """Join ``pieces``; a piece that starts with whitespace may begin a new line."""
    lines: list[str] = []
    line = ""
    used = len(header) + 2  # "Name: "
    for piece in pieces:
        if line and piece[:1] in (" ", "\t") and used + len(piece) > _FOLD_AT:
            lines.append(line)
            line, used = "", 0
        line += piece
        used += len(piece)
    lines.append(line)
    return "\r\n".join(lines)


def _lines(text: str) -> str:
    # One line-ending convention in; the output has CRLF.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _digest(spec: MailSpec, message_id: str, date: datetime, hashes: Sequence[bytes]) -> str:
    """A hash of everything in the body: a boundary made from it cannot occur in the
    content it separates (and is the same on every build of the same spec). Attachments
    count by their SHA-256 (already computed for the cache), not their bytes, so they are
    hashed once; the old builder hashed the bytes, hence its different boundaries."""
    h = hashlib.sha256()
    for piece in (message_id, date.isoformat(), spec.subject, spec.text, spec.html or ""):
        h.update(piece.encode())
        h.update(b"\x00")
    for attachment, data_hash in zip(spec.attachments, hashes, strict=True):
        h.update(attachment.filename.encode() + b"\x00")
        h.update(attachment.content_type.encode("ascii") + b"\x00")
        h.update(len(attachment.data).to_bytes(8, "big"))
        h.update(data_hash)
    return h.hexdigest()[:32]
