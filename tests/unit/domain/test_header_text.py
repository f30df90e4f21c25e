"""Issue 10, item 6: save and send apply one rule to text that may reach a header. Every
character the send path refuses is refused at save, naming the field — so nothing saved
can make every later send fail."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.domain.events import clean_filename, clean_title
from visitmail.domain.follow_up import FollowUpTemplateSpec, checked_template
from visitmail.domain.header_text import header_safe
from visitmail.domain.identity import clean_name
from visitmail.domain.mail import Attachment, Mailbox, MailSpec
from visitmail.domain.reports import checked_lead
from visitmail.domain.smtp_settings import Security, SmtpSettings, validate

# NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR, a C1 control (CSI), a C0 control, DEL, VT.
REFUSED_AT_SEND = ["\x85", "\u2028", "\u2029", "\x9b", "\x1b", "\x7f", "\x0b"]

SETTINGS = SmtpSettings(
    host="smtp.example.com",
    port=587,
    security=Security.STARTTLS,
    sender_email="sales@example.com",
    sender_name="Sales",
)


def _sender_name(v: str) -> object:
    return validate(dataclasses.replace(SETTINGS, sender_name=f"Sales{v}Team"))


def _lead_name(v: str) -> object:
    return checked_lead({"last_name": f"Mül{v}ler", "email": "a@example.de"})


def _company(v: str) -> object:
    return checked_lead({"company": f"ACME{v}GmbH"})


def _user_name(v: str) -> object:
    return clean_name(f"Anna{v}Admin", field="display_name")


def _subject(v: str) -> object:
    return checked_template(FollowUpTemplateSpec(subject=f"Hello{v}there", text="Hi"))


def _title(v: str) -> object:
    return clean_title(f"Dr.{v}med.")


SAVES: dict[str, tuple[Callable[[str], object], str]] = {
    "sender_name": (_sender_name, "sender_name"),
    "lead name": (_lead_name, "lead.last_name"),
    "lead company": (_company, "lead.company"),
    "user name": (_user_name, "display_name"),
    "subject": (_subject, "subject"),
    "title": (_title, "title"),
}


@pytest.mark.parametrize("char", REFUSED_AT_SEND, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("save", list(SAVES))
def test_what_the_send_refuses_is_refused_at_save(save: str, char: str) -> None:
    check, field = SAVES[save]
    with pytest.raises(InvalidInput) as at_save:
        check(char)
    assert at_save.value.field == field
    # ... and it is exactly what the send path would have refused:
    with pytest.raises(InvalidInput):
        Mailbox("a@example.com", f"x{char}y").checked("to")


@pytest.mark.parametrize("char", REFUSED_AT_SEND, ids=lambda c: f"U+{ord(c):04X}")
def test_a_file_name_is_cleaned_at_upload_so_the_send_accepts_it(char: str) -> None:
    name = clean_filename(f"Bro{char}schüre.pdf", "application/pdf")
    assert name == "Bro_schüre.pdf"
    spec = MailSpec(
        sender=Mailbox("sales@example.com"),
        to=(Mailbox("a@example.com"),),
        subject="s",
        text="t",
        attachments=[Attachment(name, "application/pdf", b"%PDF")],
    )
    assert spec.attachments[0].filename == "Bro_schüre.pdf"


@pytest.mark.parametrize("save", list(SAVES))
def test_ordinary_text_passes_every_save(save: str) -> None:
    check, _ = SAVES[save]
    check(" \u2013 Ünïcödé ✓ ")


def test_tab_is_legal_in_a_header_but_not_in_a_name() -> None:
    assert header_safe("a\tb", field="subject") == "a\tb"
    with pytest.raises(InvalidInput):
        header_safe("a\tb", field="display_name", allow_tab=False)
