"""The DKIM rules: selectors, signing domains and alignment, the DNS record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from visitmail.domain.dkim import (
    SIGNED_HEADERS,
    DkimAlgorithm,
    aligned,
    check_algorithm,
    check_selector,
    check_signing_domain,
    default_selector,
    domain_of,
    record_name,
    record_value,
    txt_strings,
    zone_line,
)
from visitmail.domain.errors import InvalidInput


def test_default_selector_is_vm_and_the_month() -> None:
    assert default_selector(datetime(2026, 3, 9, tzinfo=UTC)) == "vm202603"


@pytest.mark.parametrize("value", ["vm202612", "s1", "Mail-2026", "a" * 63, "0"])
def test_selectors_that_are_one_dns_label(value: str) -> None:
    assert check_selector(value) == value.lower()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "1 to 63"),
        ("a" * 64, "1 to 63"),
        ("a.b", "one DNS label"),
        ("-vm", "one DNS label"),
        ("vm-", "one DNS label"),
        ("vm_1", "one DNS label"),
        ("vm 1", "one DNS label"),
        ("vm\r\n1", "one DNS label"),
        ("sélecteur", "one DNS label"),
    ],
)
def test_bad_selectors_are_refused_naming_the_field(value: str, why: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_selector(value)
    assert caught.value.field == "selector"
    assert why in caught.value.message


def test_alignment_is_the_same_domain_or_a_parent() -> None:
    assert aligned("example.com", "example.com")
    assert aligned("example.com", "eu.mail.example.com")
    assert not aligned("mail.example.com", "example.com")  # a child is not aligned
    assert not aligned("ample.com", "example.com")  # a suffix that is not a parent
    assert not aligned("example.org", "example.com")


def test_signing_domain_is_normalized_and_checked_for_alignment() -> None:
    assert check_signing_domain("Example.COM.", "eu.example.com") == "example.com"
    assert check_signing_domain("bücher.example", "bücher.example".encode("idna").decode()) == (
        "xn--bcher-kva.example"
    )
    with pytest.raises(InvalidInput) as caught:
        check_signing_domain("example.org", "example.com")
    assert caught.value.field == "domain"
    assert "(example.com) or a parent of it" in caught.value.message
    assert "DMARC" in caught.value.message


@pytest.mark.parametrize("value", ["com", "exa mple.com", "a..b", "-a.com", "a" * 254, ""])
def test_bad_domain_names_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_signing_domain(value, "example.com")
    assert caught.value.field == "domain"


def test_domain_of_an_address() -> None:
    assert domain_of("Sales@Example.COM") == "example.com"
    assert domain_of("a@bücher.example") == "xn--bcher-kva.example"


def test_algorithm_names() -> None:
    assert check_algorithm("rsa") is DkimAlgorithm.RSA
    assert DkimAlgorithm.ED25519.signature_algorithm == "ed25519-sha256"
    with pytest.raises(InvalidInput) as caught:
        check_algorithm("dsa")
    assert caught.value.field == "algorithm"


def test_the_record_and_its_255_octet_strings() -> None:
    assert record_name("vm202612", "example.com") == "vm202612._domainkey.example.com"
    value = record_value(DkimAlgorithm.RSA, "A" * 392)  # an RSA-2048 SPKI is 392 base64 chars
    assert value == "v=DKIM1; k=rsa; p=" + "A" * 392
    strings = txt_strings(value)
    assert [len(s) for s in strings] == [255, len(value) - 255]
    assert "".join(strings) == value
    line = zone_line("s._domainkey.example.com", strings)
    assert line == f's._domainkey.example.com. IN TXT ( "{strings[0]}" "{strings[1]}" )'
    short = record_value(DkimAlgorithm.ED25519, "B" * 44)
    assert txt_strings(short) == ["v=DKIM1; k=ed25519; p=" + "B" * 44]
    assert zone_line("n", [short]) == f'n. IN TXT "{short}"'


def test_from_is_oversigned_and_the_list_is_what_was_asked() -> None:
    assert SIGNED_HEADERS.count("from") == 2
    for name in ("to", "cc", "subject", "date", "message-id", "reply-to", "mime-version",
                 "content-type", "list-unsubscribe", "list-unsubscribe-post"):  # fmt: skip
        assert name in SIGNED_HEADERS
