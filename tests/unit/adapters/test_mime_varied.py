"""MIME building over many varied specs: every message parses back to its spec, the wire is
7-bit CRLF with lines that fit, and the bytes are those of the old email-package builder
(``mime_reference``; boundaries aside). Also the quoted-printable encoder against the
standard library's, and the attachment cache."""

from __future__ import annotations

import email
import email.policy
import email.utils
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from email import quoprimime
from email.message import EmailMessage, MIMEPart

import pytest

from tests.unit.adapters.mime_reference import build_message as reference_build
from visitmail.adapters.render import mime
from visitmail.adapters.render.mime import ATTACHMENT_CACHE, AttachmentCache, build_message
from visitmail.domain.mail import ALLOWED_EXTRA_HEADERS, Attachment, Mailbox, MailSpec

WORDS = [
    "Hello", "Messe", "2025", "Stand", "&", "(v2)", "a.b", "x-y", "Müller", "Łódź", "Söhne,",
    "Grüße", "Пушкин", "日本語", "😀", "naïve", '"quoted"', "O'Neil", "=?utf-8?q?x?=", "a=?b",
    "back\\slash", "semi;colon", "<angle>", "@", "Straßenbahnhaltestelle", "x" * 40, "é" * 30,
]  # fmt: skip
LINES = [
    "", ".", "..", ". leading dot and space", "From the desk of", "trailing space ",
    "trailing tab\t", "=", "a=b=c", "=C3=BC literal", "x" * 77, "x" * 78, "x" * 79,
    "y" * 76 + " ", "z" * 75 + "=", "ü" * 39, "ü" * 40, "form\x0cfeed", "tab\tinside",
    "Sehr geehrter Herr Müller, vielen Dank für Ihren Besuch an unserem Stand. " * 3,
    "a " * 60, "€" * 100, "\u2028 line separator", "<p>" + "w" * 1200 + "</p>",
]  # fmt: skip
FILENAMES = [
    "a.pdf", "Broschüre 2025.pdf", "Łódź.png", 'Angebot "final" (v2); Kopie.pdf',
    "report-Mueller-und-Soehne-GmbH-Co-KG-Niederlassung-Sued-2025-03-04.pdf",
    "Produktübersicht Förderanlagen und Schüttguttechnik \u2013 Ausgabe Frühjahr 2025.pdf",
    "日本語のファイル名.txt", "back\\slash.txt", "x" * 200 + ".bin", "two  spaces.csv",
]  # fmt: skip
CONTENT_TYPES = [
    "application/pdf", "image/png", "text/csv", "image/svg+xml", "application/octet-stream",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
]  # fmt: skip
BOUNDARY = re.compile(rb"=_vm_[0-9a-f]{32}")


def _name(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 7)))


def _mailboxes(rng: random.Random, prefix: str, most: int) -> list[Mailbox]:
    return [
        Mailbox(f"{prefix}{i}@example{rng.randint(1, 3)}.com", _name(rng))
        for i in range(rng.randint(0, most))
    ]


def _body(rng: random.Random) -> str:
    ending = rng.choice(["\n", "\r\n", "\r"])
    lines = [rng.choice(LINES) for _ in range(rng.randint(0, 25))]
    return ending.join(lines) + rng.choice(["", ending])


def varied_spec(seed: int) -> MailSpec:
    rng = random.Random(seed)
    to = _mailboxes(rng, "to", 4)
    bcc = [f"bcc{i}@example.com" for i in range(rng.randint(0 if to else 1, 2))]
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30)))
    attachments = [
        Attachment(
            rng.choice(FILENAMES),
            rng.choice(CONTENT_TYPES),
            rng.randbytes(rng.choice([0, 1, 56, 57, 58, 300, 5000])),
        )
        for _ in range(rng.choice([0, 0, 1, 3]))
    ]
    extras = rng.sample(sorted(ALLOWED_EXTRA_HEADERS.values()), rng.randint(0, 3))
    return MailSpec(
        sender=Mailbox("sales@example.com", _name(rng)),
        to=to,
        cc=_mailboxes(rng, "cc", 2),
        bcc=bcc,
        reply_to=rng.choice([None, Mailbox("reply@example.com", _name(rng))]),
        subject=subject[: rng.choice([900, 70, 20])],
        text=_body(rng),
        html=rng.choice([None, _body(rng)]),
        attachments=attachments,
        headers=[(name, f"<https://example.com/{'u' * rng.randint(1, 300)}>") for name in extras],
        message_id=f"<m.{seed}@example.com>",
        date=datetime(2025, 3, 4, 10, 30, tzinfo=timezone(timedelta(hours=rng.randint(-12, 12)))),
    )


def _as_delivered(text: str) -> str:
    """A body as it reads after the round trip: LF line ends, ending with one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _text(part: MIMEPart) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def _names(header: object) -> list[tuple[str, str]]:
    # Python's address parser keeps the folding space between two adjacent encoded words
    # (RFC 2047 says to drop it), so a word longer than one encoded word comes back split
    # in Python: compare display names without whitespace (test_mime checks the exact
    # text with the RFC 2047 decoder).
    addresses = header.addresses  # type: ignore[attr-defined]
    return [("".join(a.display_name.split()), a.addr_spec) for a in addresses]


def _expected(mailboxes: Sequence[Mailbox]) -> list[tuple[str, str]]:
    return [("".join(m.name.split()), m.address) for m in mailboxes]


@pytest.mark.parametrize("seed", range(150))
def test_a_varied_message_parses_back_to_its_spec(seed: int) -> None:
    spec = varied_spec(seed)
    built = build_message(spec)
    wire = built.mime

    assert wire.isascii()
    assert b"\r" not in wire.replace(b"\r\n", b"") and b"\n" not in wire.replace(b"\r\n", b"")
    assert max(len(line) for line in wire.split(b"\r\n")) <= 998
    assert BOUNDARY.sub(b"", wire) == BOUNDARY.sub(b"", reference_build(spec).mime)

    mail = email.message_from_bytes(wire, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert not mail.defects
    assert _names(mail["From"]) == _expected([spec.sender])
    if spec.to:
        assert _names(mail["To"]) == _expected(spec.to)
    if spec.cc:
        assert _names(mail["Cc"]) == _expected(spec.cc)
    assert ("Reply-To" in mail) == (spec.reply_to is not None)
    if spec.reply_to is not None:
        assert _names(mail["Reply-To"]) == _expected([spec.reply_to])
    assert "Bcc" not in mail
    assert str(mail["Subject"]) == spec.subject
    assert mail["Message-ID"] == spec.message_id
    assert mail["Date"].datetime == spec.date
    for name, value in spec.headers:
        assert mail[name] == value

    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None and _text(plain) == _as_delivered(spec.text)
    html = mail.get_body(preferencelist=("html",))
    if spec.html is None:
        assert html is None
    else:
        assert html is not None and _text(html) == _as_delivered(spec.html)
    files = list(mail.iter_attachments())
    assert [
        (f.get_filename(), f.get_content_type(), f.get_payload(decode=True)) for f in files
    ] == [(a.filename, a.content_type, a.data) for a in spec.attachments]


@pytest.mark.parametrize("seed", range(200))
def test_quoted_printable_is_the_standard_librarys(seed: int) -> None:
    rng = random.Random(seed)
    pieces = ["a", " ", "\t", ".", "=", "ü", "\x7f", "\x01", "€", "\n", "x" * 80, " \n", "=3D"]
    pieces += ["y" * 74, "\x0b", "\x85", "\n.\n"]
    text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60))) + "\n"
    data = text.encode()
    expected = quoprimime.body_encode(data.decode("latin-1"), 78).replace("\n", "\r\n")
    assert mime._qp(data) == expected


def _folded_by_the_email_package(filename: str) -> str:
    if filename.isascii():
        value = f'attachment; filename="{email.utils.quote(filename)}"'
    else:
        value = "attachment; filename*=" + email.utils.encode_rfc2231(filename, "utf-8", "")
    header = email.policy.SMTP.header_factory("Content-Disposition", value)
    folded: str = header.fold(policy=email.policy.SMTP)
    return folded


@pytest.mark.parametrize("seed", range(20))
def test_file_names_are_folded_as_the_email_package_folds_them(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = [*"abcXYZ019._-+ ", "ü", "€", "日", "😀", '"', "\\", ";", "(", "\t", "%", "'"]
    names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 140))) for _ in range(50)]
    names += [c * k + t for k in range(seed * 8, seed * 8 + 8) for c in "rü😀" for t in ("", "ü")]
    for name in filter(None, (n.strip() for n in names)):
        assert mime._disposition(name) == _folded_by_the_email_package(name), name


def _with_files(*files: Attachment) -> MailSpec:
    return MailSpec(
        sender=Mailbox("sales@example.com"),
        to=[Mailbox("lead@example.com")],
        text="Anbei.",
        attachments=files,
        message_id="<a@example.com>",
        date=datetime(2025, 1, 1, tzinfo=UTC),
    )


PDF = Attachment("Broschüre.pdf", "application/pdf", bytes(range(256)) * 200)


def test_an_attachment_is_encoded_once_and_the_cached_part_gives_the_same_bytes() -> None:
    ATTACHMENT_CACHE.clear()
    cold = build_message(_with_files(PDF)).mime
    misses = ATTACHMENT_CACHE.misses
    warm = build_message(_with_files(Attachment(PDF.filename, PDF.content_type, bytes(PDF.data))))
    assert warm.mime == cold
    assert (ATTACHMENT_CACHE.hits, ATTACHMENT_CACHE.misses) == (1, misses)

    renamed = build_message(_with_files(Attachment("other.pdf", PDF.content_type, PDF.data)))
    assert ATTACHMENT_CACHE.misses == misses + 1  # the name is part of the key
    parsed = email.message_from_bytes(renamed.mime, policy=email.policy.default)
    assert [f.get_filename() for f in parsed.iter_attachments()] == ["other.pdf"]


def test_the_attachment_cache_is_bounded_by_entries_and_bytes_least_recent_out() -> None:
    cache = AttachmentCache(max_entries=3, max_bytes=40_000)
    files = [
        Attachment(f"f{i}.bin", "application/octet-stream", bytes([i]) * 3000) for i in range(5)
    ]
    parts = [cache.part(f, bytes([i]) * 32) for i, f in enumerate(files)]
    assert len(cache) == 3
    assert cache.part(files[4], bytes([4]) * 32) is parts[4]  # kept: the same object
    assert cache.part(files[0], bytes([0]) * 32) == parts[0]  # evicted, made again
    assert cache.misses == 6 and cache.hits == 1

    big = Attachment("big.bin", "application/octet-stream", bytes(9000))  # > max_bytes / 4
    cache.part(big, b"b" * 32)
    assert len(cache) <= 3 and cache.size_bytes <= 40_000
    assert all(len(key) == 3 for key in cache._parts)
    assert b"b" * 32 not in {key[0] for key in cache._parts}
