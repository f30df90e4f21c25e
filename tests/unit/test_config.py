from __future__ import annotations

import ipaddress

import pytest

from visitmail.config import ConfigError, Settings, load_settings, to_async_url


def test_defaults_are_embedded_sqlite_under_var() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.effective_database_url == "sqlite+aiosqlite:///var/visitmail.db"
    assert str(settings.effective_key_file) == "var/master.key"


def test_urls_map_to_async_drivers() -> None:
    assert to_async_url("postgresql://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert to_async_url("sqlite:////abs/x.db") == "sqlite+aiosqlite:////abs/x.db"


def test_allowed_networks_parse_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITMAIL_SMTP_ALLOWED_NETWORKS", "127.0.0.0/8, 10.0.0.0/8")
    settings = load_settings()
    assert settings.smtp_allowed_networks == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.0.0.0/8"),
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VISITMAIL_PORT", "99999"),
        ("VISITMAIL_SMTP_ALLOWED_NETWORKS", "not-a-network"),
        ("VISITMAIL_DATABASE_URL", "oracle://x"),
        ("VISITMAIL_LOG_LEVEL", "LOUD"),
    ],
)
def test_broken_settings_raise_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(name)
    assert "\n" not in str(info.value)


def test_master_keys_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITMAIL_MASTER_KEYS", "k1:c2VjcmV0c2VjcmV0")
    assert "c2VjcmV0" not in repr(load_settings())


def test_public_url_must_be_a_plain_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITMAIL_PUBLIC_URL", "https://mail.example.com/")
    assert load_settings().public_url == "https://mail.example.com"
    monkeypatch.setenv("VISITMAIL_PUBLIC_URL", "javascript:alert(1)")
    with pytest.raises(ConfigError, match="VISITMAIL_PUBLIC_URL"):
        load_settings()


def test_dns_nameservers_parse_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITMAIL_DNS_NAMESERVERS", "192.0.2.53, 127.0.0.1:5353,[::1]:53, ::1")
    assert load_settings().dns_nameservers == [
        ("192.0.2.53", 53),
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("::1", 53),
    ]
    monkeypatch.delenv("VISITMAIL_DNS_NAMESERVERS")
    assert load_settings().dns_nameservers == []  # the system's resolver


@pytest.mark.parametrize("bad", ["dns.example", "127.0.0.1:0", "127.0.0.1:99999", "[::1]:x"])
def test_bad_dns_nameservers_name_the_variable(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("VISITMAIL_DNS_NAMESERVERS", bad)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("VISITMAIL_DNS_NAMESERVERS: ")
