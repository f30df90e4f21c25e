"""What one dev inbox mail shows, from its bytes: bodies, decoded headers, attachments
with safe types and names, inline images as ``data:``, the search text."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from visitmail.services import dev_inbox_content as content_of

PNG = b"\x89PNG\r\n\x1a\nfake"


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_bodies_headers_and_attachments_of_a_full_mail() -> None:
    mail = EmailMessage()
    mail["From"] = "Jürgen <j@example.com>"
    mail["Subject"] = "Grüße aus Hannover"
    mail.set_content("Hallo")
    mail.add_alternative(
        '<p>Hi <img src="cid:logo@x"><img src="cid:unknown@x"></p>', subtype="html"
    )
    html = mail.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    html.add_related(PNG, "image", "png", cid="<logo@x>")
    mail.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="Straße.pdf")
    mail.add_attachment(b"<svg/>", maintype="image", subtype="svg+xml", filename="x.svg")
    shown = content_of.content(parse(mail.as_bytes()))

    assert shown.text is not None and shown.text.strip() == "Hallo"
    assert shown.html is not None and "data:image/png;base64," in shown.html
    assert "cid:unknown@x" in shown.html  # no such part: left as it is (nothing loads)
    assert ("Subject", "Grüße aus Hannover") in shown.headers  # decoded from RFC 2047
    assert [(a.filename, a.content_type, a.opens_inline) for a in shown.attachments] == [
        ("part-1.png", "image/png", True),
        ("Straße.pdf", "application/pdf", True),
        ("x.svg", "image/svg+xml", False),  # SVG can carry scripts: always a download
    ]
    found = content_of.attachment(parse(mail.as_bytes()), 1)
    assert found is not None and found[1] == b"%PDF-1.4"
    assert content_of.attachment(parse(mail.as_bytes()), 3) is None


def test_odd_mail_is_shown_as_well_as_it_can_be() -> None:
    raw = (
        b"Subject: =?x-unknown?q?odd?=\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nbody \xff\r\n"
        b'--b\r\nContent-Type: bad type\r\nContent-Disposition: attachment; filename="\x07"\r\n'
        b"\r\ndata\r\n--b--\r\n"
    )
    shown = content_of.content(parse(raw))
    assert shown.text is not None and shown.text.startswith("body ")
    (only,) = shown.attachments
    assert only.content_type in {"text/plain", "application/octet-stream"}
    assert only.filename.startswith("part-1.")  # a name of control characters is no name
    assert any(k == "Subject" for k, _ in shown.headers)


def test_search_text_is_lower_case_and_bounded() -> None:
    mail = EmailMessage()
    mail["Subject"] = "Katalog"
    mail["To"] = "Lead <Lead@Example.org>"
    mail.set_content("A" * (content_of.SEARCH_TEXT_LIMIT * 2))
    text = content_of.search_text(parse(mail.as_bytes()), "s@x r@y")
    assert text.startswith("katalog lead <lead@example.org> s@x r@y aaa")
    assert len(text) == content_of.SEARCH_TEXT_LIMIT


def test_an_html_only_mail_is_searched_by_its_words() -> None:
    mail = EmailMessage()
    mail.set_content("<p>Gr&uuml;&szlig;e <b>aus</b>&nbsp;Bonn</p>", subtype="html")
    text = content_of.search_text(parse(mail.as_bytes()), "")
    assert "grüße" in text and "bonn" in text and "<b>" not in text
