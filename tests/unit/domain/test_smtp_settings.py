"""SMTP settings validation names the field; presets are consistent."""

from __future__ import annotations

import dataclasses

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.domain.smtp_presets import PRESETS, find_preset, preset_host
from visitmail.domain.smtp_settings import (
    Limits,
    ProxyKind,
    ProxySettings,
    Security,
    SmtpSecrets,
    SmtpSettings,
    Timeouts,
    TlsOptions,
    validate,
)

BASE = SmtpSettings(
    host="smtp.example.com",
    port=587,
    security=Security.STARTTLS,
    sender_email="sales@example.com",
    sender_name="Sales",
    username="sales@example.com",
)
PIN = "AB:" * 31 + "CD"


def with_(**changes: object) -> SmtpSettings:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def field_of(settings: SmtpSettings) -> str | None:
    with pytest.raises(InvalidInput) as caught:
        validate(settings)
    assert caught.value.message
    return caught.value.field


def test_valid_settings_are_normalized() -> None:
    clean = validate(
        with_(host=" SMTP.Example.COM. ", sender_email="Sales@EXAMPLE.com", sender_name="  Sales ")
    )
    assert clean.host == "smtp.example.com"
    assert clean.sender_email == "sales@example.com"
    assert clean.sender_name == "Sales"


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\n"])
@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("host", lambda v: with_(host=f"smtp{v}.example.com")),
        ("helo_name", lambda v: with_(helo_name=f"client{v}.example.com")),
        ("username", lambda v: with_(username=f"sales{v}RCPT TO:<x@evil.test>")),
        ("sender_email", lambda v: with_(sender_email=f"sales@example.com{v}Bcc: x@evil.test")),
        ("sender_name", lambda v: with_(sender_name=f"Sales{v}Bcc: x@evil.test")),
        ("reply_to", lambda v: with_(reply_to=f"a@example.com{v}Bcc: x@evil.test")),
        (
            "proxy.host",
            lambda v: with_(
                proxy=ProxySettings(kind=ProxyKind.SOCKS5, host=f"proxy{v}.example.com", port=1080)
            ),
        ),
        (
            "proxy.username",
            lambda v: with_(
                proxy=ProxySettings(
                    kind=ProxyKind.HTTP, host="proxy.example.com", port=3128, username=f"u{v}x"
                )
            ),
        ),
    ],
)
def test_line_breaks_and_nul_are_refused_naming_the_field(
    field: str, make: object, bad: str
) -> None:
    assert callable(make)
    assert field_of(make(bad)) == field


@pytest.mark.parametrize("port", [0, -1, 65536, 100_000])
def test_bad_ports_name_the_field(port: int) -> None:
    assert field_of(with_(port=port)) == "port"
    proxy = ProxySettings(kind=ProxyKind.SOCKS5, host="proxy.example.com", port=port)
    assert field_of(with_(proxy=proxy)) == "proxy.port"


@pytest.mark.parametrize("host", ["", "   ", "bad host", "-x.example.com", "a" * 64 + ".com"])
def test_bad_hosts_are_refused(host: str) -> None:
    assert field_of(with_(host=host)) == "host"


def test_ip_literals_are_hosts() -> None:
    assert validate(with_(host="[2001:db8::1]")).host == "2001:db8::1"
    assert validate(with_(host="192.0.2.10")).host == "192.0.2.10"


@pytest.mark.parametrize("kind", [ProxyKind.SOCKS5, ProxyKind.SOCKS4, ProxyKind.HTTP])
def test_proxy_needs_host_and_port(kind: ProxyKind) -> None:
    assert field_of(with_(proxy=ProxySettings(kind=kind, port=1080))) == "proxy.host"
    assert field_of(with_(proxy=ProxySettings(kind=kind, host="p.example.com"))) == "proxy.port"


def test_disabled_proxy_is_reset() -> None:
    clean = validate(with_(proxy=ProxySettings(kind=ProxyKind.NONE, host="x", username="u")))
    assert clean.proxy == ProxySettings()


@pytest.mark.parametrize(
    "pin", ["abc", "zz" * 32, "ab" * 31, "ab" * 33, "sha1:" + "ab" * 32, "ab" * 31 + "a\n"]
)
def test_bad_pin_is_refused(pin: str) -> None:
    assert field_of(with_(tls=TlsOptions(pinned_sha256=pin))) == "tls.pinned_sha256"


@pytest.mark.parametrize("pin", [PIN, PIN.lower(), "sha256:" + "ab" * 32, "AB" * 32])
def test_good_pins_are_accepted_and_normalized(pin: str) -> None:
    clean = validate(with_(tls=TlsOptions(pinned_sha256=pin)))
    assert clean.tls.pin_hex is not None
    assert len(clean.tls.pin_hex) == 64


def test_pem_fields_need_pem_text() -> None:
    assert field_of(with_(tls=TlsOptions(ca_pem="not pem"))) == "tls.ca_pem"
    assert field_of(with_(tls=TlsOptions(client_cert_pem="nope"))) == "tls.client_cert_pem"


@pytest.mark.parametrize(
    ("field", "settings"),
    [
        ("timeouts.connect", with_(timeouts=Timeouts(connect=0))),
        ("timeouts.overall", with_(timeouts=Timeouts(overall=10_000))),
        ("limits.per_minute", with_(limits=Limits(per_minute=0))),
        ("limits.max_connections", with_(limits=Limits(max_connections=-1))),
        ("limits.recipients_per_day", with_(limits=Limits(recipients_per_day=0))),
        ("limits.recipients_per_day", with_(limits=Limits(recipients_per_day=10_000_001))),
        ("sender_email", with_(sender_email="not-an-address")),
        ("reply_to", with_(reply_to="nope")),
        ("sender_name", with_(sender_name="x" * 201)),
        ("username", with_(username="a\tb")),
    ],
)
def test_other_bad_values_name_their_field(field: str, settings: SmtpSettings) -> None:
    assert field_of(settings) == field


def test_sender_domain_warning() -> None:
    assert validate(BASE).sender_domain_warning() is None
    other = validate(with_(username="relay@mailprovider.example"))
    warning = other.sender_domain_warning()
    assert warning is not None
    assert "example.com" in warning
    assert "mailprovider.example" in warning
    assert validate(with_(username="apikey")).sender_domain_warning() is None


def test_mailbox_providers_warn_about_another_sender_on_the_same_domain() -> None:
    m365 = with_(host="smtp.office365.com", username="alice@example.com")
    warning = validate(m365).sender_domain_warning()
    assert warning is not None
    assert "SendAsDenied" in warning and "sales@example.com" in warning
    gmail = with_(host="smtp.gmail.com", username="alice@example.com")
    assert "verified alias" in (validate(gmail).sender_domain_warning() or "")
    own = with_(host="smtp.office365.com", username="Sales@example.com")
    assert validate(own).sender_domain_warning() is None
    assert validate(with_(username="alice@example.com")).sender_domain_warning() is None


def test_secrets_never_print_themselves() -> None:
    secrets = SmtpSecrets(password="hunter2-secret", proxy_password="px-secret")
    for text in (repr(secrets), str(secrets), f"{secrets}"):
        assert "hunter2" not in text
        assert "px-secret" not in text
        assert "password" in text


def test_presets_are_valid_settings() -> None:
    ids = [p.id for p in PRESETS]
    assert len(ids) == len(set(ids))
    for preset in PRESETS:
        settings = with_(host=preset_host(preset), port=preset.port, security=preset.security)
        assert validate(settings).host == preset_host(preset)
        assert preset.note
        lim = preset.limits
        for limit in (lim.per_minute, lim.per_hour, lim.per_day, lim.recipients_per_day):
            assert limit is None or limit > 0
        # The preset's limits make valid settings (the form they fill is saved as is).
        limits = Limits(
            max_connections=lim.max_connections or Limits().max_connections,
            per_minute=lim.per_minute,
            per_hour=lim.per_hour,
            per_day=lim.per_day,
            recipients_per_day=lim.recipients_per_day,
        )
        assert validate(dataclasses.replace(settings, limits=limits)).limits == limits


def test_well_known_presets() -> None:
    sendgrid = find_preset("sendgrid")
    assert sendgrid is not None
    assert (sendgrid.host, sendgrid.port, sendgrid.security) == (
        "smtp.sendgrid.net",
        587,
        Security.STARTTLS,
    )
    assert "apikey" in sendgrid.username_hint
    m365 = find_preset("microsoft-365")
    assert m365 is not None
    assert m365.host == "smtp.office365.com"
    assert "SMTP AUTH" in m365.note
    assert find_preset("nope") is None


def test_ses_region_parameter() -> None:
    ses = find_preset("amazon-ses")
    assert ses is not None
    assert preset_host(ses) == "email-smtp.eu-central-1.amazonaws.com"
    assert preset_host(ses, region="us-east-1") == "email-smtp.us-east-1.amazonaws.com"
    with pytest.raises(InvalidInput) as caught:
        preset_host(ses, region="evil.example.com\r\n")
    assert caught.value.field == "region"


def test_provider_limits_in_the_presets() -> None:
    m365 = find_preset("microsoft-365")
    assert m365 is not None
    assert (m365.host, m365.port, m365.security) == ("smtp.office365.com", 587, Security.STARTTLS)
    assert m365.limits.max_connections == 3
    assert m365.limits.per_minute == 30
    assert m365.limits.recipients_per_day == 10_000
    assert m365.limits.per_day is None  # Microsoft counts recipients, not messages
    google = find_preset("google-workspace")
    assert google is not None
    assert google.host == "smtp.gmail.com"
    assert {
        (google.port, google.security),
        *((a.port, a.security) for a in google.alternatives),
    } == {
        (465, Security.TLS),
        (587, Security.STARTTLS),
    }
    assert google.limits.per_day == 2_000
    assert google.limits.recipients_per_day == 10_000
    gmail = find_preset("gmail")
    assert gmail is not None
    assert gmail.limits.recipients_per_day == 500


def test_a_message_costs_its_recipients_under_a_recipient_limit() -> None:
    assert Limits().recipient_cost(3) == 0  # no recipient limit: nothing to count
    limits = Limits(recipients_per_day=5)
    assert limits.budgeted and not limits.counts_messages
    assert limits.recipient_cost(3) == 3
    assert limits.recipient_cost(0) == 1
    assert limits.recipient_cost(9) == 5  # never more than the whole day's budget
