"""Addresses: what SMTP accepts is accepted, including special-use and internal domains
(issue 10, item 3); syntax errors and header injection are refused naming the field."""

from __future__ import annotations

import pytest

from visitmail.domain.addresses import normalize_email
from visitmail.domain.errors import InvalidInput
from visitmail.domain.mail import Mailbox, ascii_address


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("Anna.Mueller@Firma.LOCAL", "anna.mueller@firma.local"),  # on-premises Exchange
        ("lab@mail.test", "lab@mail.test"),
        ("ops@corp.internal", "ops@corp.internal"),
        ("bounce@relay.invalid", "bounce@relay.invalid"),
        ("root@localhost", "root@localhost"),
        ("postmaster@mailhub", "postmaster@mailhub"),  # a dotless internal host
        ("ops@[10.0.0.7]", "ops@[10.0.0.7]"),  # an address literal
        ("info@bücher.de", "info@bücher.de"),
    ],
)
def test_every_address_smtp_accepts_is_accepted(typed: str, normalized: str) -> None:
    assert normalize_email(typed, field="email") == normalized


def test_the_wire_form_keeps_internal_domains_and_encodes_idna() -> None:
    assert ascii_address("Anna@Firma.Local", field="to") == "Anna@firma.local"
    assert ascii_address("info@bücher.de", field="to") == "info@xn--bcher-kva.de"
    assert Mailbox("sales@firma.local", "Vertrieb").checked("sender").address == (
        "sales@firma.local"
    )


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("anna mueller@firma.local", "invalid characters"),
        ("anna@", "There must be something after the @-sign"),
        ("@firma.local", "There must be something before the @-sign"),
        ("anna@-firma.local", "hyphen"),
        ("anna@firma.local\r\nBcc: x@evil.example", "line breaks"),
    ],
)
def test_invalid_syntax_and_injection_are_refused_naming_the_field(typed: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_email(typed, field="lead.email")
    assert caught.value.field == "lead.email"
    assert reason in caught.value.message
