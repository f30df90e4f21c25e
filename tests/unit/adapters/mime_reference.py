"""The email-package MIME builder that ``visitmail.adapters.render.mime`` replaced, kept
unchanged as the reference the fast builder is checked against (tests) and timed against
(``scripts/bench_mime.py``). Not used by the application.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from visitmail.domain.mail import BuiltMessage, Mailbox, MailSpec

# SMTP: CRLF line endings. cte_type="7bit": bodies are never sent as 8bit.
# refold_source="none": headers set with set_raw() are written exactly as given. They
# all are: Date, Message-ID and the extra headers (validated printable ASCII; a
# List-Unsubscribe with a long signed URL must not become an encoded word), and the
# address and subject headers, which this module encodes and folds itself (see below).
# Only the Content-* headers of the parts are the email package's work.
POLICY = SMTP.clone(cte_type="7bit", refold_source="none")


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

    msg = MIMEPart(policy=POLICY)
    msg.set_raw("Date", format_datetime(date))
    msg.set_raw("From", _mailboxes("From", [spec.sender]))
    if spec.to:
        msg.set_raw("To", _mailboxes("To", spec.to))
    else:
        msg.set_raw("To", "undisclosed-recipients:;")
    if spec.cc:
        msg.set_raw("Cc", _mailboxes("Cc", spec.cc))
    if spec.reply_to is not None:
        msg.set_raw("Reply-To", _mailboxes("Reply-To", [spec.reply_to]))
    msg.set_raw("Subject", _unstructured("Subject", spec.subject))
    msg.set_raw("Message-ID", message_id)
    for name, value in spec.headers:
        msg.set_raw(name, value)
    msg.set_raw("MIME-Version", "1.0")

    msg.set_content(_lines(spec.text), subtype="plain", charset="utf-8")
    if spec.html is not None:
        msg.add_alternative(_lines(spec.html), subtype="html", charset="utf-8")
    for attachment in spec.attachments:
        msg.add_attachment(
            attachment.data,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    _fix_boundaries(msg, _digest(spec, message_id, date))

    recipients = spec.envelope_recipients()
    return BuiltMessage(
        message_id=message_id,
        mime=msg.as_bytes(policy=POLICY),
        envelope_from=spec.envelope_from or spec.sender.address,
        envelope_recipients=tuple(address for address, _ in recipients),
        subject=spec.subject,
        recipient_roles=tuple(role for _, role in recipients),
    )


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


def _phrase(name: str) -> list[str]:
    """A display name: atoms as they are; other ASCII as one quoted string; with
    non-ASCII, atoms literal and the other words encoded."""
    if name.isascii() and "=?" not in name:
        if _PHRASE.match(name):
            return _words(name)
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return [f'"{quoted}"']
    return _mixed(name, lambda word: bool(_ATEXT.match(word)) and "=?" not in word)


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
    return "\n".join(lines)  # the generator writes each line break as CRLF


def _lines(text: str) -> str:
    # One line-ending convention in; the generator writes CRLF.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _digest(spec: MailSpec, message_id: str, date: datetime) -> str:
    """A hash of everything in the body: a boundary made from it cannot occur in the
    content it separates (and is the same on every build of the same spec)."""
    h = hashlib.sha256()
    for piece in (message_id, date.isoformat(), spec.subject, spec.text, spec.html or ""):
        h.update(piece.encode())
        h.update(b"\x00")
    for attachment in spec.attachments:
        h.update(attachment.filename.encode() + b"\x00")
        h.update(attachment.content_type.encode("ascii") + b"\x00")
        h.update(len(attachment.data).to_bytes(8, "big"))
        h.update(attachment.data)
    return h.hexdigest()[:32]


def _fix_boundaries(msg: MIMEPart, digest: str) -> None:
    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_vm_{digest}.{index}")
