"""MIME building: what arrives parses back to what was meant, and nothing else arrives."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage, MIMEPart
from typing import Any

import pytest

from visitmail.adapters.render.mime import build_message
from visitmail.domain.errors import InvalidInput
from visitmail.domain.mail import Attachment, BuiltMessage, Mailbox, MailSpec

DATE = datetime(2025, 3, 4, 10, 30, tzinfo=timezone(timedelta(hours=1)))
MESSAGE_ID = "<report.42.7f3c@example.com>"
PDF = bytes(range(256)) * 40  # every byte value, several base64 lines
SUBJECT = ("Grüße aus Łódź: Ihr Besuch am Stand \u2013 »Müller & Söhne« " * 3).strip()


def spec(**overrides: Any) -> MailSpec:
    fields: dict[str, Any] = {
        "sender": Mailbox("sales@example.com", "Vertrieb Müller, Süd"),
        "to": [Mailbox("jurgen@kunde.de", "Jürgen Müller"), Mailbox("ola@lodz.pl", "Ola Łódź")],
        "cc": [Mailbox("team@example.com", 'Team "Nord"')],
        "bcc": ["reporter@example.com"],
        "reply_to": Mailbox("anna@example.com", "Anna Ärger"),
        "subject": SUBJECT,
        "text": "Sehr geehrter Herr Müller,\n\nvielen Dank für Ihren Besuch.\n.\nGrüße\n",
        "html": "<p>Sehr geehrter Herr Müller,</p><p>vielen Dank für Ihren Besuch.</p>",
        "attachments": [Attachment("Broschüre Łódź 2025.pdf", "application/pdf", PDF)],
        "headers": [
            ("List-Unsubscribe", "<https://mail.example.com/u/" + "a1" * 120 + ">"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("X-Visitmail-Report", "6f1c2a8e-0000-4000-8000-000000000001"),
        ],
        "message_id": MESSAGE_ID,
        "date": DATE,
    }
    fields.update(overrides)
    return MailSpec(**fields)


def parse(built: BuiltMessage) -> EmailMessage:
    parsed = email.message_from_bytes(built.mime, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(part: MIMEPart) -> str:
    """A text part's content with the wire's CRLF (kept by quoted-printable) as LF."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_headers_decode_back_to_the_original_unicode() -> None:
    mail = parse(build_message(spec()))

    sender = mail["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Vertrieb Müller, Süd", "sales@example.com")
    to = [(a.display_name, a.addr_spec) for a in mail["To"].addresses]
    assert to == [("Jürgen Müller", "jurgen@kunde.de"), ("Ola Łódź", "ola@lodz.pl")]
    assert [(a.display_name, a.addr_spec) for a in mail["Cc"].addresses] == [
        ('Team "Nord"', "team@example.com")
    ]
    assert mail["Reply-To"].addresses[0].display_name == "Anna Ärger"
    assert str(mail["Subject"]) == SUBJECT
    assert mail["Date"].datetime == DATE
    assert mail["MIME-Version"] == "1.0"


@pytest.mark.parametrize(
    "name",
    [
        "Dr. Jürgen Müller-Lüdenscheidt, Leiter Vertrieb Süd (Bayern & Baden-Württemberg)",
        "Александр Сергеевич Пушкин",
        "Łukasz Żółkiewski-Brzęczyszczykiewicz",
        'Smith, John "Johnny"',
        "Mary O'Neil",
    ],
)
def test_long_and_special_display_names_round_trip(name: str) -> None:
    built = build_message(spec(to=[Mailbox("x@example.com", name), Mailbox("y@example.com", name)]))
    mail = parse(built)

    assert [a.addr_spec for a in mail["To"].addresses] == ["x@example.com", "y@example.com"]
    # Python's address parser keeps the space between two adjacent encoded words (RFC
    # 2047 says to drop it), so compare it with spaces normalized...
    for address in mail["To"].addresses:
        assert " ".join(address.display_name.split()) == name
    # ...and the exact text with the RFC 2047 decoder.
    if not name.isascii():
        raw = email.message_from_bytes(built.mime, policy=email.policy.compat32)["To"]
        decoded = str(make_header(decode_header("".join(raw.splitlines()))))
        assert decoded.count(name) == 2


def test_ascii_words_stay_readable_and_long_subjects_fold() -> None:
    subject = "Ihr Besuch bei uns auf der Hannover Messe 2025 in Halle 7 am Stand der Firma Müller"
    built = build_message(spec(subject=subject))

    assert b"Subject: Ihr Besuch bei uns" in built.mime
    header = built.mime.split(b"\r\nSubject: ", 1)[1].split(b"\r\nMessage-ID", 1)[0]
    assert b"\r\n " in header  # folded
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert str(parse(built)["Subject"]) == subject


def test_bcc_is_in_the_envelope_only() -> None:
    built = build_message(spec())
    mail = parse(built)

    assert "Bcc" not in mail
    assert b"reporter@example.com" not in built.mime
    assert built.envelope_recipients == (
        "jurgen@kunde.de",
        "ola@lodz.pl",
        "team@example.com",
        "reporter@example.com",
    )
    assert built.recipient_roles == ("to", "to", "cc", "bcc")
    assert built.envelope_from == "sales@example.com"
    assert built.subject == SUBJECT


def test_envelope_recipients_are_deduplicated_first_role_wins() -> None:
    built = build_message(
        spec(
            to=[Mailbox("a@example.com")],
            cc=[Mailbox("A@Example.com"), Mailbox("b@example.com")],
            bcc=["b@example.com", "a@example.com", "c@example.com"],
        )
    )
    assert built.envelope_recipients == ("a@example.com", "b@example.com", "c@example.com")
    assert built.recipient_roles == ("to", "cc", "bcc")


def test_bcc_only_message_says_undisclosed_recipients() -> None:
    built = build_message(spec(to=[], cc=[], bcc=["x@example.com"]))
    assert b"\r\nTo: undisclosed-recipients:;\r\n" in built.mime
    assert built.envelope_recipients == ("x@example.com",)


def test_text_and_html_are_alternatives_and_the_attachment_round_trips() -> None:
    original = spec()
    mail = parse(build_message(original))

    assert mail.get_content_type() == "multipart/mixed"
    body, attachment = list(mail.iter_parts())
    assert body.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in body.iter_parts()] == ["text/plain", "text/html"]
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert text_of(plain) == original.text
    assert text_of(html).rstrip("\n") == original.html

    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "Broschüre Łódź 2025.pdf"
    assert attachment.get_content() == PDF


@pytest.mark.parametrize(
    "filename",
    [
        "Produktübersicht Förderanlagen und Schüttguttechnik \u2013 Ausgabe Frühjahr 2025.pdf",
        'Angebot "final" (v2); Kopie.pdf',
        "Łódź.png",
    ],
)
def test_attachment_filenames_round_trip(filename: str) -> None:
    built = build_message(spec(attachments=[Attachment(filename, "image/png", b"\x89PNG")]))
    attachment = next(parse(built).iter_attachments())
    assert attachment.get_filename() == filename
    assert attachment.get_content() == b"\x89PNG"
    assert built.mime.isascii()


def test_text_only_message_is_a_single_part() -> None:
    mail = parse(build_message(spec(html=None, attachments=[])))
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert text_of(mail) == spec().text


def test_attachments_without_html_are_mixed_after_the_text() -> None:
    csv = Attachment("leads.csv", "text/csv", "name;city\nMüller;Köln\n".encode())
    mail = parse(build_message(spec(html=None, attachments=[csv, spec().attachments[0]])))
    parts = list(mail.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/csv", "application/pdf"]
    assert parts[1].get_filename() == "leads.csv"
    assert parts[1].get_payload(decode=True) == csv.data


def test_message_id_and_date_are_preserved_and_the_bytes_are_repeatable() -> None:
    first = build_message(spec())
    second = build_message(spec())

    assert first.message_id == MESSAGE_ID
    assert parse(first)["Message-ID"] == MESSAGE_ID
    assert first.mime == second.mime


def test_a_missing_message_id_is_made_under_the_senders_domain() -> None:
    built = build_message(spec(message_id=None, sender=Mailbox("news@Mail.Example.ORG")))
    assert built.message_id.startswith("<")
    assert built.message_id.endswith("@mail.example.org>")
    assert parse(built)["Message-ID"] == built.message_id


def test_a_missing_date_is_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    built = build_message(spec(date=None))
    assert before <= parse(built)["Date"].datetime <= datetime.now(UTC)


def test_extra_headers_are_written_verbatim_with_their_canonical_names() -> None:
    unsubscribe = "<https://mail.example.com/u/" + "a1" * 120 + ">"
    built = build_message(spec(headers=[("list-unsubscribe", unsubscribe)]))
    assert f"\r\nList-Unsubscribe: {unsubscribe}\r\n".encode() in built.mime
    assert parse(built)["List-Unsubscribe"] == unsubscribe


def test_the_wire_is_seven_bit_crlf_and_lines_fit() -> None:
    built = build_message(
        spec(
            text="Ein sehr langer Absatz ohne Umbruch über Straßen " * 200,
            html="<p>" + "x" * 5000 + "ü</p>",
        )
    )
    assert built.mime.isascii()
    assert b"\n" not in built.mime.replace(b"\r\n", b"")
    assert b"\r" not in built.mime.replace(b"\r\n", b"")
    assert max(len(line) for line in built.mime.split(b"\r\n")) <= 998
    assert b"Content-Transfer-Encoding: 8bit" not in built.mime
    assert b"Content-Transfer-Encoding: binary" not in built.mime


def test_mixed_line_endings_in_bodies_become_crlf() -> None:
    mail = parse(build_message(spec(html=None, attachments=[], text="one\r\ntwo\rthree\n")))
    assert text_of(mail) == "one\ntwo\nthree\n"


def test_internationalized_domains_use_their_ascii_form() -> None:
    built = build_message(
        spec(sender=Mailbox("vertrieb@müller.de", "Müller"), to=[Mailbox("kunde@bücher.example")])
    )
    assert built.envelope_from == "vertrieb@xn--mller-kva.de"
    assert built.envelope_recipients[0] == "kunde@xn--bcher-kva.example"
    assert parse(built)["From"].addresses[0].domain == "xn--mller-kva.de"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"subject": "Hello\r\nBcc: victim@example.com"}, "subject"),
        ({"subject": "Hello\nX-Injected: 1"}, "subject"),
        ({"subject": "Hello\x00"}, "subject"),
        ({"subject": "Hello\u2028World"}, "subject"),
        ({"sender": Mailbox("sales@example.com", "Sales\r\nBcc: x@evil.test")}, "from.name"),
        ({"sender": Mailbox("sales@example.com\r\n", "Sales")}, "from.address"),
        ({"to": [Mailbox("a@example.com", "A\nB")]}, "to[0].name"),
        (
            {"to": [Mailbox("a@example.com"), Mailbox("b@example.com\nBcc: c@x.test")]},
            "to[1].address",
        ),
        ({"cc": [Mailbox("a@example.com\r")]}, "cc[0].address"),
        ({"bcc": ["a@example.com", "b@example.com\r\nX: y"]}, "bcc[1]"),
        ({"reply_to": Mailbox("anna@example.com", "Anna\r\nX: y")}, "reply_to.name"),
        ({"envelope_from": "bounce@example.com\n"}, "envelope_from"),
        (
            {
                "attachments": [
                    Attachment("a.pdf\r\nContent-Type: text/html", "application/pdf", b"")
                ]
            },
            "attachments[0].filename",
        ),
        (
            {"attachments": [Attachment("a.pdf", "application/pdf\r\nX: y", b"")]},
            "attachments[0].content_type",
        ),
        ({"headers": [("X-Visitmail-Report", "1\r\nBcc: x@evil.test")]}, "headers[0].value"),
        ({"headers": [("X-Visitmail-Report\r\nBcc", "1")]}, "headers[0].name"),
        ({"message_id": "<a@example.com>\r\nBcc: x@evil.test"}, "message_id"),
    ],
)
def test_line_breaks_in_header_bound_fields_are_refused(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        build_message(spec(**overrides))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"to": [], "cc": [], "bcc": []}, "to"),
        ({"to": [Mailbox("not an address")]}, "to[0].address"),
        ({"to": [Mailbox("jörg@example.com")]}, "to[0].address"),  # needs SMTPUTF8
        ({"headers": [("Bcc", "x@evil.test")]}, "headers[0].name"),
        ({"headers": [("Content-Type", "text/html")]}, "headers[0].name"),
        (
            {"headers": [("Auto-Submitted", "auto-generated"), ("auto-submitted", "no")]},
            "headers[1].name",
        ),
        ({"headers": [("X-Visitmail-Report", "Größe")]}, "headers[0].value"),
        ({"headers": [("List-Id", "x" * 990)]}, "headers[0].value"),
        ({"message_id": "no-angle-brackets@example.com"}, "message_id"),
        ({"message_id": "<two@at@example.com>"}, "message_id"),
        ({"date": datetime(2025, 3, 4, 10, 30)}, "date"),  # naive on purpose
        ({"attachments": [Attachment("  ", "application/pdf", b"")]}, "attachments[0].filename"),
        ({"attachments": [Attachment("a", "pdf", b"")]}, "attachments[0].content_type"),
        ({"attachments": [Attachment("a", "multipart/mixed", b"")]}, "attachments[0].content_type"),
        ({"text": "a\x00b"}, "text"),
        ({"html": "<p>\udcff</p>"}, "html"),
        ({"subject": "x" * 901}, "subject"),
        ({"bcc": [f"r{i}@example.com" for i in range(101)]}, "to"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        spec(**overrides)
    assert caught.value.field == field


def test_a_spec_is_frozen_and_holds_tuples() -> None:
    made = spec()
    assert isinstance(made.to, tuple)
    assert isinstance(made.attachments, tuple)
    with pytest.raises(AttributeError):
        made.subject = "changed"  # type: ignore[misc]
