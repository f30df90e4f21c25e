"""Webhook URL, name and secret rules (pure)."""

from __future__ import annotations

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.services.webhooks import check_name, check_secret, check_url, generate_secret


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/visitmail",
        "https://hooks.example.com:8443/a?b=c",
        "HTTPS://Example.com/",
        "http://localhost:8080/hook",
        "http://127.0.0.1/hook",
        "http://127.1.2.3:9/hook",
        "http://[::1]:8000/hook",
    ],
)
def test_good_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://example.com/hook",
        "http://10.0.0.1/hook",
        "http://localhost.example.com/hook",
        "ftp://example.com/",
        "https:///nohost",
        "https://user:pass@example.com/",
        "https://example.com/#frag",
        "https://example.com/a b",
        "https://example.com/\r\nX: y",
        "https://example.com:99999/",
        "https://example.com/" + "a" * 400,
        "lead@example.com",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_url(url, field="recipients[0]")
    assert refused.value.field == "recipients[0]"


@pytest.mark.parametrize("name", ["crm", "CRM-1", "a.b_c", "x" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x" * 65, "ä"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name)


def test_secret_rules_never_echo_the_value() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_secret("tooshort")
    assert "tooshort" not in refused.value.message
    assert check_secret("x" * 16) == "x" * 16


def test_generated_secrets_are_random_and_valid() -> None:
    a, b = generate_secret(), generate_secret()
    assert a != b and a.startswith("whsec_")
    assert check_secret(a) == a
