"""Reading stored MIME for the outbox detail: bodies, numbered attachments, safe names."""

from __future__ import annotations

from email.message import EmailMessage

from visitmail.domain.mail_view import (
    MAX_ATTACHMENTS,
    MAX_TEXT_CHARS,
    ascii_filename,
    attachment,
    content_type_of,
    view,
)


def mail(*attachments: tuple[str, str, bytes], html: str | None = None) -> bytes:
    message = EmailMessage()
    message["Subject"] = "Hallo"
    message.set_content("Grüße aus Köln\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, kind, data in attachments:
        main, sub = kind.split("/")
        message.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return message.as_bytes()


def test_text_html_and_attachments_in_document_order() -> None:
    raw = mail(
        ("Broschüre Straße.pdf", "application/pdf", b"%PDF-1.7 x"),
        ("notes.txt", "text/plain", b"plain attachment"),
        html="<p>Grüße</p>",
    )
    seen = view(raw)
    assert seen.text == "Grüße aus Köln\n"
    assert seen.html is not None and "<p>Grüße</p>" in seen.html
    assert [(a.index, a.filename, a.content_type, a.size) for a in seen.attachments] == [
        (0, "Broschüre Straße.pdf", "application/pdf", 10),
        (1, "notes.txt", "text/plain", 16),
    ]
    found = attachment(raw, 1)
    assert found is not None and found[1] == b"plain attachment"
    assert attachment(raw, 2) is None


def test_a_plain_message_has_no_html_and_no_attachments() -> None:
    seen = view(mail())
    assert seen.html is None and seen.attachments == ()


def test_attachments_are_bounded() -> None:
    raw = mail(*[(f"f{i}.txt", "text/plain", b"x") for i in range(MAX_ATTACHMENTS + 5)])
    assert len(view(raw).attachments) == MAX_ATTACHMENTS
    assert attachment(raw, MAX_ATTACHMENTS) is None


def test_download_names_fold_to_ascii_with_sz_as_ss() -> None:
    assert ascii_filename("Broschüre Straße.pdf") == "Broschure-Strasse.pdf"
    assert ascii_filename('a"b\r\nc.pdf') == "a-b-c.pdf"
    assert ascii_filename("Łódź Æsir.txt") == "Lodz-AEsir.txt"
    assert ascii_filename("日本") == "file"
    long = ascii_filename("x" * 300 + ".pdf")
    assert len(long) == 100 and long.endswith(".pdf")


def test_a_malformed_type_is_octet_stream() -> None:
    message = EmailMessage()
    message["Content-Type"] = 'text/plain"><script>'
    assert content_type_of(message) in ("text/plain", "application/octet-stream")
    assert "<" not in content_type_of(message)


def test_a_huge_body_is_cut_and_says_so() -> None:
    message = EmailMessage()
    message.set_content("x" * (MAX_TEXT_CHARS + 10))
    seen = view(message.as_bytes())
    assert seen.text is not None and len(seen.text) == MAX_TEXT_CHARS and seen.truncated
    assert not view(mail()).truncated
