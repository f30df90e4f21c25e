"""SMTP settings through the HTTP API, on both databases: write-only secrets encrypted at
rest, validation naming the field, roles, tenancy, audit, the connection test (with a fake
diagnoser) and key rotation."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.support.orgs import OrgFixture, new_member, new_org
from tests.support.outbox import LOOPBACK
from tests.support.smtp_servers import start_smtp_server
from visitmail.adapters.crypto.keyring import KeyRing, new_key
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.diagnosis import (
    AutodetectCandidate,
    AutodetectReport,
    DiagnosisReport,
    Step,
    StepName,
    StepStatus,
)
from visitmail.domain.roles import Role
from visitmail.domain.smtp_settings import Security, SmtpSecrets, SmtpSettings
from visitmail.runtime import Runtime
from visitmail.services import smtp_config
from visitmail.services.ports import SmtpSecretField

URL = "/api/v1/smtp-settings"
PASSWORD = "Sup3r-Secret-Passw0rd!"
PROXY_PASSWORD = "Pr0xy-Secret-Value"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIFakeKeyMaterialForTests\n-----END PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIFakeCertificate\n-----END CERTIFICATE-----\n"


def settings_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "username": "sales@example.com",
        "password": PASSWORD,
        "sender_email": "sales@example.com",
        "sender_name": "Acme Sales",
        "timeouts": {"connect": 5, "command": 20, "overall": 15.5},
        "limits": {"max_connections": 3, "per_minute": 30, "recipients_per_day": 10_000},
    }
    body.update(overrides)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class FakeDiagnoser:
    """Records what it was asked; answers a fixed report. ``echo`` leaks the password into
    the report, to prove the service masks it anyway."""

    echo: bool = False
    calls: list[tuple[SmtpSettings, SmtpSecrets, str | None]] = field(default_factory=list)

    async def diagnose(
        self,
        settings: SmtpSettings,
        secrets: SmtpSecrets,
        *,
        send_to: str | None = None,
        on_step: Callable[[Step], None] | None = None,
    ) -> DiagnosisReport:
        self.calls.append((settings, secrets, send_to))
        leaked = f"535 rejected {secrets.password}" if self.echo else "235 accepted"
        steps = [
            Step(StepName.RESOLVE, StepStatus.PASSED, 3, details={"addresses": ["192.0.2.1"]}),
            Step(StepName.CONNECT, StepStatus.PASSED, 10),
            Step(StepName.AUTH, StepStatus.PASSED, 7, reply_code=235, reply_text=leaked),
            Step(StepName.SEND, StepStatus.SKIPPED, explanation="no send_to given"),
        ]
        for step in steps:
            if on_step is not None and step.status is not StepStatus.SKIPPED:
                on_step(step)
                await asyncio.sleep(0)  # as a real test would: steps come one at a time
        return DiagnosisReport(steps=steps, warnings=["fake warning"])

    async def autodetect(self, settings: SmtpSettings, secrets: SmtpSecrets) -> AutodetectReport:
        self.calls.append((settings, secrets, None))
        good = AutodetectCandidate(587, "starttls", True, "STARTTLS on 587 works")
        bad = AutodetectCandidate(465, "tls", False, "no answer on 465")
        return AutodetectReport(candidates=[good, bad], recommended=good)


@pytest.fixture
def diagnoser(app: FastAPI) -> Iterator[FakeDiagnoser]:
    fake = FakeDiagnoser()
    app.state.diagnoser = fake
    try:
        yield fake
    finally:
        app.state.diagnoser = None


@pytest.fixture
async def configured(client: httpx.AsyncClient, org: OrgFixture) -> OrgFixture:
    reply = await client.put(URL, headers=org.headers, json=settings_body())
    assert reply.status_code == 200, reply.text
    return org


async def stored_secrets(runtime: Runtime, org: OrgFixture) -> SmtpSecrets:
    async with runtime.uow() as uow:
        _settings, secrets = await smtp_config.load_for_sending(
            uow, SecretBox(runtime.keyring), org.organization.id
        )
    return secrets


async def raw_row(runtime: Runtime, org: OrgFixture) -> dict[str, Any]:
    async with runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT document, password_enc, proxy_password_enc, client_key_enc "
                    "FROM smtp_settings WHERE organization_id = :org"
                ),
                {
                    "org": org.organization.id.hex
                    if runtime.engine.name == "sqlite"
                    else str(org.organization.id)
                },
            )
        ).one()
    return dict(row._mapping)


# --- read and replace ------------------------------------------------------------------------


async def test_get_before_any_save_is_404_not_configured(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.get(URL, headers=org.headers)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_configured"


async def test_put_then_get_round_trip(client: httpx.AsyncClient, org: OrgFixture) -> None:
    put = await client.put(URL, headers=org.headers, json=settings_body())
    assert put.status_code == 200, put.text
    got = await client.get(URL, headers=org.headers)
    assert got.status_code == 200
    body = got.json()
    assert body == put.json()
    assert body["host"] == "smtp.example.com"
    assert body["port"] == 587
    assert body["security"] == "starttls"
    assert body["username"] == "sales@example.com"
    assert body["password_set"] is True
    assert body["proxy"] == {
        "kind": "none",
        "host": None,
        "port": None,
        "username": None,
        "password_set": False,
    }
    assert body["tls"]["client_key_set"] is False
    assert body["timeouts"] == {"connect": 5.0, "command": 20.0, "overall": 15.5}
    assert body["limits"]["per_minute"] == 30
    assert body["limits"]["max_connections"] == 3
    assert body["limits"]["recipients_per_day"] == 10_000
    assert body["updated_by"] == str(org.admin.id)
    assert "password" not in body
    assert "password" not in body["proxy"]
    assert "client_key_pem" not in body["tls"]


async def test_port_defaults_from_security(client: httpx.AsyncClient, org: OrgFixture) -> None:
    body = settings_body(security="tls")
    del body["port"]
    reply = await client.put(URL, headers=org.headers, json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["port"] == 465


async def test_password_is_encrypted_at_rest(
    client: httpx.AsyncClient, runtime: Runtime, configured: OrgFixture
) -> None:
    row = await raw_row(runtime, configured)
    token = row["password_enc"]
    assert token is not None
    assert token.startswith(f"v1:{runtime.keyring.newest.key_id}:")
    assert PASSWORD not in token
    assert PASSWORD.encode().hex() not in token
    assert PASSWORD not in str(row["document"])
    assert row["proxy_password_enc"] is None
    assert (await stored_secrets(runtime, configured)).password == PASSWORD


async def test_all_three_secrets_are_write_only_and_encrypted(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    body = settings_body(
        proxy={
            "kind": "socks5",
            "host": "proxy.example.com",
            "port": 1080,
            "username": "px",
            "password": PROXY_PASSWORD,
        },
        tls={"client_cert_pem": CERT_PEM, "client_key_pem": KEY_PEM},
    )
    reply = await client.put(URL, headers=org.headers, json=body)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert out["proxy"]["password_set"] is True
    assert out["tls"]["client_key_set"] is True
    assert PROXY_PASSWORD not in reply.text
    assert "FakeKeyMaterial" not in reply.text
    row = await raw_row(runtime, org)
    assert PROXY_PASSWORD not in row["proxy_password_enc"]
    assert "FakeKeyMaterial" not in row["client_key_enc"]
    secrets = await stored_secrets(runtime, org)
    assert secrets.proxy_password == PROXY_PASSWORD
    assert secrets.client_key_pem == KEY_PEM
    # tokens are bound to their field: swapping columns makes them unreadable
    box = SecretBox(runtime.keyring)
    with pytest.raises(Exception, match="integrity"):
        box.open(
            row["proxy_password_enc"],
            organization_id=org.organization.id,
            field=SmtpSecretField.PASSWORD.sealed_as,
        )


async def test_put_without_password_keeps_it_and_null_clears_it(
    client: httpx.AsyncClient, runtime: Runtime, configured: OrgFixture
) -> None:
    org = configured
    body = settings_body(sender_name="Acme Vertrieb")
    del body["password"]
    kept = await client.put(URL, headers=org.headers, json=body)
    assert kept.status_code == 200, kept.text
    assert kept.json()["password_set"] is True
    assert kept.json()["sender_name"] == "Acme Vertrieb"
    assert (await stored_secrets(runtime, org)).password == PASSWORD

    replaced = await client.put(URL, headers=org.headers, json={**body, "password": "N3w-one!"})
    assert replaced.json()["password_set"] is True
    assert (await stored_secrets(runtime, org)).password == "N3w-one!"

    cleared = await client.put(URL, headers=org.headers, json={**body, "password": None})
    assert cleared.status_code == 200
    assert cleared.json()["password_set"] is False
    assert (await stored_secrets(runtime, org)).password is None
    assert (await raw_row(runtime, org))["password_enc"] is None


@pytest.mark.parametrize(
    "change",
    [{"host": "smtp2.example.com"}, {"port": 2525}, {"username": "other@example.com"}],
    ids=["host", "port", "username"],
)
async def test_a_new_destination_needs_the_password_again(
    client: httpx.AsyncClient, runtime: Runtime, configured: OrgFixture, change: dict[str, Any]
) -> None:
    """Issue 10, item 9: the stored password never follows the settings to another server."""
    org = configured
    before = await client.get(URL, headers=org.headers)
    body = settings_body(**change)
    del body["password"]
    refused = await client.put(URL, headers=org.headers, json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["field"] == "password"
    assert "enter the password again" in error["message"]
    assert PASSWORD not in refused.text
    after = await client.get(URL, headers=org.headers)
    assert after.json() == before.json()  # nothing written
    assert (await stored_secrets(runtime, org)).password == PASSWORD

    entered = await client.put(URL, headers=org.headers, json={**body, "password": "N3w-one!"})
    assert entered.status_code == 200, entered.text
    assert (await stored_secrets(runtime, org)).password == "N3w-one!"


async def test_a_new_proxy_needs_the_proxy_password_again(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    proxy = {"kind": "socks5", "host": "proxy.example.com", "port": 1080, "username": "px"}
    saved = await client.put(
        URL, headers=org.headers, json=settings_body(proxy={**proxy, "password": PROXY_PASSWORD})
    )
    assert saved.status_code == 200, saved.text
    moved = settings_body(proxy={**proxy, "host": "proxy2.example.com"})
    refused = await client.put(URL, headers=org.headers, json=moved)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "proxy.password"
    assert (await stored_secrets(runtime, org)).proxy_password == PROXY_PASSWORD
    same = await client.put(URL, headers=org.headers, json=settings_body(proxy=proxy))
    assert same.status_code == 200, same.text  # the same proxy keeps its saved password
    assert same.json()["proxy"]["password_set"] is True


async def test_empty_string_clears_a_secret(
    client: httpx.AsyncClient, runtime: Runtime, configured: OrgFixture
) -> None:
    reply = await client.put(URL, headers=configured.headers, json=settings_body(password=""))
    assert reply.json()["password_set"] is False
    assert (await stored_secrets(runtime, configured)).password is None


async def test_removing_the_username_drops_the_kept_password(
    client: httpx.AsyncClient, runtime: Runtime, configured: OrgFixture
) -> None:
    body = settings_body(username=None)
    del body["password"]
    reply = await client.put(URL, headers=configured.headers, json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["password_set"] is False
    assert (await raw_row(runtime, configured))["password_enc"] is None


async def test_plaintext_password_needs_the_operator(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    reply = await client.put(URL, headers=org.headers, json=settings_body(security="none"))
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "security"
    assert PASSWORD not in reply.text
    no_auth = settings_body(security="none", port=25, username=None, password=None)
    assert (await client.put(URL, headers=org.headers, json=no_auth)).status_code == 200
    # with the operator's switch, the service accepts it
    async with runtime.uow() as uow:
        view = await smtp_config.put_settings(
            uow,
            SecretBox(runtime.keyring),
            org.principal,
            SmtpSettings(
                host="smtp.example.com",
                port=25,
                security=Security.NONE,
                sender_email="sales@example.com",
                username="sales@example.com",
            ),
            {SmtpSecretField.PASSWORD: PASSWORD},
            allow_plaintext_auth=True,
        )
    assert view.is_set(SmtpSecretField.PASSWORD)
    assert any("unencrypted" in w for w in view.warnings)


async def test_sender_domain_warning_is_returned(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.put(
        URL, headers=org.headers, json=settings_body(username="relay@provider.example")
    )
    assert reply.status_code == 200
    assert any("provider.example" in w for w in reply.json()["warnings"])


# --- secrets never leak -------------------------------------------------------------------


async def test_password_never_appears_in_responses_or_logs(
    client: httpx.AsyncClient,
    configured: OrgFixture,
    diagnoser: FakeDiagnoser,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    org = configured
    diagnoser.echo = True  # even an adapter that echoes the password is masked
    bodies = [
        (await client.get(URL, headers=org.headers)).text,
        (await client.put(URL, headers=org.headers, json=settings_body(host="b.example.com"))).text,
        (await client.post(f"{URL}/test", headers=org.headers, json={})).text,
        (
            await client.post(
                f"{URL}/test",
                headers=org.headers,
                json={"settings": settings_body(host="c.example.com")},
            )
        ).text,
        (await client.post(f"{URL}/autodetect", headers=org.headers)).text,
        (await client.get(f"{URL}/audit", headers=org.headers)).text,
        (await client.put(URL, headers=org.headers, json=settings_body(host="bad host"))).text,
        (
            await client.put(
                URL, headers=org.headers, json=settings_body(password="a\r\nb" + PASSWORD)
            )
        ).text,
        (
            await client.put(URL, headers=org.headers, json=settings_body(password=PASSWORD * 100))
        ).text,
    ]
    assert diagnoser.calls, "the fake was used"
    assert diagnoser.calls[0][1].password == PASSWORD  # the stored password reached the test
    for body in bodies:
        assert PASSWORD not in body
    assert "[redacted]" in bodies[2]
    captured = capsys.readouterr()
    assert PASSWORD not in caplog.text
    assert PASSWORD not in captured.out
    assert PASSWORD not in captured.err


async def test_too_long_password_error_does_not_reveal_length(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.put(URL, headers=org.headers, json=settings_body(password="x" * 1500))
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "password"
    assert "1500" not in reply.text


# --- roles and tenancy ----------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.REPORTER, Role.USER, Role.EVENT_CURATOR, Role.EVENT_MANAGER])
async def test_non_admins_get_403_everywhere(
    client: httpx.AsyncClient,
    runtime: Runtime,
    configured: OrgFixture,
    diagnoser: FakeDiagnoser,
    role: Role,
) -> None:
    _user, token = await new_member(runtime, configured, role)
    for method, path, body in [
        ("GET", URL, None),
        ("PUT", URL, settings_body(host="evil.example.com")),
        ("POST", f"{URL}/test", {}),
        ("POST", f"{URL}/autodetect", None),
        ("GET", f"{URL}/presets", None),
        ("GET", f"{URL}/audit", None),
    ]:
        reply = await client.request(method, path, headers=bearer(token), json=body)
        assert reply.status_code == 403, (method, path, reply.text)
        assert reply.json()["error"]["code"] == "forbidden"
        assert PASSWORD not in reply.text
    assert not diagnoser.calls
    still = await client.get(URL, headers=configured.headers)
    assert still.json()["host"] == "smtp.example.com"


async def test_without_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 401


async def test_other_organizations_settings_are_invisible(
    client: httpx.AsyncClient, runtime: Runtime, configured: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    other = await new_org(runtime, name="Other")
    reply = await client.get(URL, headers=other.headers)
    assert reply.status_code == 404
    assert "smtp.example.com" not in reply.text
    assert (await client.post(f"{URL}/test", headers=other.headers)).status_code == 404
    assert not diagnoser.calls
    assert (await client.get(f"{URL}/audit", headers=other.headers)).json() == []
    mine = await client.put(
        URL, headers=other.headers, json=settings_body(host="other.example.com", password=None)
    )
    assert mine.json()["password_set"] is False
    first = await client.get(URL, headers=configured.headers)
    assert first.json()["host"] == "smtp.example.com"
    assert first.json()["password_set"] is True
    # a token sealed for one organization does not open for another
    row = await raw_row(runtime, configured)
    with pytest.raises(Exception, match="integrity"):
        SecretBox(runtime.keyring).open(
            row["password_enc"], organization_id=other.organization.id, field="smtp.password"
        )


# --- validation -----------------------------------------------------------------------------


def _proxy(**kw: Any) -> dict[str, Any]:
    return {"kind": "socks5", "host": "proxy.example.com", "port": 1080, **kw}


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("crlf host", settings_body(host="smtp.example.com\r\nRCPT TO:<x@evil.test>"), "host"),
    ("lf host", settings_body(host="smtp.example.com\n"), "host"),
    ("nul host", settings_body(host="smtp.example.com\x00"), "host"),
    (
        "crlf sender",
        settings_body(sender_email="a@example.com\r\nBcc: x@evil.test"),
        "sender_email",
    ),
    ("crlf name", settings_body(sender_name="Acme\r\nBcc: x@evil.test"), "sender_name"),
    ("crlf username", settings_body(username="sales\r\nMAIL FROM:<x@evil.test>"), "username"),
    ("crlf helo", settings_body(helo_name="client\r\n.example.com"), "helo_name"),
    ("crlf password", settings_body(password="pass\r\nQUIT"), "password"),
    ("nul password", settings_body(password="pass\x00word"), "password"),
    ("crlf proxy host", settings_body(proxy=_proxy(host="p.example.com\r\n")), "proxy.host"),
    (
        "crlf proxy password",
        settings_body(proxy=_proxy(username="u", password="a\nb")),
        "proxy.password",
    ),
    ("proxy without host", settings_body(proxy={"kind": "http", "port": 3128}), "proxy.host"),
    ("unknown field", settings_body(use_ssl=True), "use_ssl"),
    ("unknown nested", settings_body(proxy=_proxy(verify=False)), "proxy.verify"),
    ("unknown tls field", settings_body(tls={"skip_verify": True}), "tls.skip_verify"),
    ("port as text", settings_body(port="587"), "port"),
    ("port as bool", settings_body(port=True), "port"),
    ("port as float", settings_body(port=587.5), "port"),
    ("port too big", settings_body(port=70000), "port"),
    ("bad security", settings_body(security="ssl"), "security"),
    ("host as number", settings_body(host=42), "host"),
    ("password as number", settings_body(password=12345678), "password"),
    ("timeout as text", settings_body(timeouts={"connect": "ten"}), "timeouts.connect"),
    ("timeout zero", settings_body(timeouts={"connect": 0}), "timeouts.connect"),
    ("limit float", settings_body(limits={"per_minute": 1.5}), "limits.per_minute"),
    ("limit zero", settings_body(limits={"per_day": 0}), "limits.per_day"),
    (
        "recipients zero",
        settings_body(limits={"recipients_per_day": 0}),
        "limits.recipients_per_day",
    ),
    (
        "recipients too many",
        settings_body(limits={"recipients_per_day": 10_000_001}),
        "limits.recipients_per_day",
    ),
    ("bad pin", settings_body(tls={"pinned_sha256": "abc"}), "tls.pinned_sha256"),
    ("bad sender", settings_body(sender_email="nope"), "sender_email"),
    (
        "missing sender",
        {k: v for k, v in settings_body().items() if k != "sender_email"},
        "sender_email",
    ),
    ("password without username", settings_body(username=None), "username"),
    ("key without cert", settings_body(tls={"client_key_pem": KEY_PEM}), "tls.client_cert_pem"),
    ("cert without key", settings_body(tls={"client_cert_pem": CERT_PEM}), "tls.client_key_pem"),
    (
        "key not pem",
        settings_body(tls={"client_cert_pem": CERT_PEM, "client_key_pem": "x"}),
        "tls.client_key_pem",
    ),
    ("unknown preset", settings_body(preset="nope"), "preset"),
    ("proxy kind", settings_body(proxy={"kind": "socks6"}), "proxy.kind"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c for c, _, _ in BAD_BODIES])
async def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient,
    configured: OrgFixture,
    case: str,
    body: dict[str, Any],
    field: str,
) -> None:
    org = configured
    before = (await client.get(URL, headers=org.headers)).json()
    audit_before = (await client.get(f"{URL}/audit", headers=org.headers)).json()
    changed = copy.deepcopy(body)
    if "sender_name" in changed and case != "crlf name":
        changed["sender_name"] = "Changed Name"  # would show if half-written
    reply = await client.put(URL, headers=org.headers, json=changed)
    assert reply.status_code == 422, (case, reply.text)
    error = reply.json()["error"]
    assert error["field"] == field, (case, error)
    assert error["message"]
    assert PASSWORD not in reply.text
    after = (await client.get(URL, headers=org.headers)).json()
    assert after == before
    assert (await client.get(f"{URL}/audit", headers=org.headers)).json() == audit_before


async def test_first_put_with_bad_input_leaves_nothing(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.put(URL, headers=org.headers, json=settings_body(host="a\r\nb"))
    assert reply.status_code == 422
    assert (await client.get(URL, headers=org.headers)).status_code == 404


@pytest.mark.parametrize("payload", [b"[1,2]", b'"text"', b"{", b"null"])
async def test_non_object_bodies_are_422(
    client: httpx.AsyncClient, org: OrgFixture, payload: bytes
) -> None:
    headers = {**org.headers, "content-type": "application/json"}
    reply = await client.put(URL, headers=headers, content=payload)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "body"


# --- audit ----------------------------------------------------------------------------------


async def test_audit_lists_changed_field_names_only(
    client: httpx.AsyncClient, configured: OrgFixture
) -> None:
    org = configured
    body = settings_body(sender_name="Acme Vertrieb", security="tls")
    del body["password"]
    await client.put(URL, headers=org.headers, json=body)
    await client.put(URL, headers=org.headers, json=body)  # no change: no entry
    await client.put(URL, headers=org.headers, json={**body, "password": "An0ther-one"})
    reply = await client.get(f"{URL}/audit", headers=org.headers)
    assert reply.status_code == 200
    entries = reply.json()
    assert [e["action"] for e in entries] == [
        "smtp_settings.update",
        "smtp_settings.update",
        "smtp_settings.create",
    ]
    assert entries[0]["fields"] == ["password"]
    assert sorted(entries[1]["fields"]) == ["security", "sender_name"]
    assert "host" in entries[2]["fields"]
    assert "password" in entries[2]["fields"]
    assert all(e["actor_id"] == str(org.admin.id) for e in entries)
    assert PASSWORD not in reply.text
    assert "An0ther-one" not in reply.text
    assert "smtp.example.com" not in reply.text  # names, not values


# --- the connection test --------------------------------------------------------------------


async def test_inline_settings_are_tested_before_saving(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    reply = await client.post(
        f"{URL}/test",
        headers=org.headers,
        json={"send_to": "Check@Example.com", "settings": settings_body(host="new.example.com")},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ok"] is True
    assert [s["name"] for s in body["steps"]] == ["resolve", "connect", "auth", "send"]
    step = body["steps"][2]
    assert step == {
        "name": "auth",
        "status": "passed",
        "duration_ms": 7,
        "reply_code": 235,
        "reply_text": "235 accepted",
        "explanation": None,
        "fix": None,
        "details": {},
    }
    assert body["steps"][0]["details"] == {"addresses": ["192.0.2.1"]}
    assert "fake warning" in body["warnings"]
    settings, secrets, send_to = diagnoser.calls[0]
    assert settings.host == "new.example.com"
    assert secrets.password == PASSWORD
    assert send_to == "check@example.com"
    assert PASSWORD not in reply.text
    # nothing was saved
    assert (await client.get(URL, headers=org.headers)).status_code == 404


async def test_stored_settings_are_tested_with_stored_secrets(
    client: httpx.AsyncClient, configured: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    reply = await client.post(f"{URL}/test", headers=configured.headers)
    assert reply.status_code == 200, reply.text
    settings, secrets, send_to = diagnoser.calls[0]
    assert settings.host == "smtp.example.com"
    assert secrets.password == PASSWORD
    assert send_to is None


async def test_inline_test_reuses_stored_password_only_for_the_same_server(
    client: httpx.AsyncClient, configured: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    same = settings_body(sender_name="Acme Vertrieb", security="tls")
    del same["password"]
    await client.post(f"{URL}/test", headers=configured.headers, json={"settings": same})
    assert diagnoser.calls[-1][1].password == PASSWORD

    elsewhere = {**same, "host": "attacker.example.net"}
    reply = await client.post(
        f"{URL}/test", headers=configured.headers, json={"settings": elsewhere}
    )
    assert reply.status_code == 200
    assert diagnoser.calls[-1][1].password is None
    assert any("saved password was not used" in w for w in reply.json()["warnings"])

    other_port = {**same, "port": 2525}
    reply = await client.post(
        f"{URL}/test", headers=configured.headers, json={"settings": other_port}
    )
    assert diagnoser.calls[-1][1].password is None

    explicit = {**elsewhere, "password": "typed-in-again"}
    await client.post(f"{URL}/test", headers=configured.headers, json={"settings": explicit})
    assert diagnoser.calls[-1][1].password == "typed-in-again"
    cleared = {**same, "password": None}
    await client.post(f"{URL}/test", headers=configured.headers, json={"settings": cleared})
    assert diagnoser.calls[-1][1].password is None
    # testing never saves
    assert (await client.get(URL, headers=configured.headers)).json()["port"] == 587


async def test_test_without_any_settings_is_not_configured(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    reply = await client.post(f"{URL}/test", headers=org.headers)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_configured"
    assert not diagnoser.calls


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"send_to": "nope"}, "send_to"),
        ({"send_to": "a@example.com\r\nBcc: b@example.com"}, "send_to"),
        ({"settings": settings_body(host="a\r\nb")}, "host"),
        ({"settings": settings_body(extra=1)}, "settings.extra"),
        ({"sendto": "a@example.com"}, "sendto"),
    ],
)
async def test_test_input_errors_name_the_field(
    client: httpx.AsyncClient,
    configured: OrgFixture,
    diagnoser: FakeDiagnoser,
    body: dict[str, Any],
    field: str,
) -> None:
    reply = await client.post(f"{URL}/test", headers=configured.headers, json=body)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == field
    assert not diagnoser.calls


async def test_autodetect_recommends(
    client: httpx.AsyncClient, configured: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    reply = await client.post(f"{URL}/autodetect", headers=configured.headers, json={})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["recommended"] == {
        "port": 587,
        "security": "starttls",
        "ok": True,
        "summary": "STARTTLS on 587 works",
        "answer": "failed",
    }
    assert len(body["candidates"]) == 2


async def test_presets_endpoint(client: httpx.AsyncClient, org: OrgFixture) -> None:
    reply = await client.get(f"{URL}/presets", headers=org.headers)
    assert reply.status_code == 200
    presets = {p["id"]: p for p in reply.json()}
    assert presets["sendgrid"]["host"] == "smtp.sendgrid.net"
    # A login name the provider fixes is part of the preset; others leave it to the admin.
    assert presets["sendgrid"]["username"] == "apikey"
    assert presets["brevo"]["username"] is None
    assert presets["amazon-ses"]["host"] == "email-smtp.eu-central-1.amazonaws.com"
    assert presets["amazon-ses"]["parameters"] == {"region": "eu-central-1"}
    assert presets["microsoft-365"]["limits"] == {
        "per_minute": 30,
        "per_hour": None,
        "per_day": None,
        "recipients_per_day": 10_000,
        "max_connections": 3,
    }
    assert presets["google-workspace"]["limits"]["recipients_per_day"] == 10_000
    assert presets["google-workspace"]["limits"]["per_day"] == 2_000
    ok = await client.put(URL, headers=org.headers, json=settings_body(preset="sendgrid"))
    assert ok.json()["preset"] == "sendgrid"


async def test_openapi_documents_the_endpoints_and_write_only_secrets(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    for path in ("", "/test", "/autodetect", "/presets", "/audit"):
        assert URL + path in schema["paths"]
    password = schema["components"]["schemas"]["SmtpSettingsIn"]["properties"]["password"]
    assert password.get("writeOnly") is True


# --- key rotation (both databases) ----------------------------------------------------------


async def test_rotation_reseals_under_the_newest_key_and_is_idempotent(
    client: httpx.AsyncClient, runtime: Runtime, configured: OrgFixture
) -> None:
    org = configured
    old_key = runtime.keyring.newest
    fresh = new_key("rotated1")
    rotated_box = SecretBox(KeyRing([old_key, fresh]))
    try:
        first = await smtp_config.rotate_keys(runtime.uow, rotated_box)
        assert first.reencrypted >= 1
        # Other tests share this database and may leave a deliberately unreadable secret.
        assert org.organization.id not in first.unreadable_organizations
        token = (await raw_row(runtime, org))["password_enc"]
        assert token.startswith("v1:rotated1:")
        async with runtime.uow() as uow:
            _s, secrets = await smtp_config.load_for_sending(uow, rotated_box, org.organization.id)
        assert secrets.password == PASSWORD

        second = await smtp_config.rotate_keys(runtime.uow, rotated_box)
        assert second.reencrypted == 0
        assert second.already_current >= 1
        assert (await raw_row(runtime, org))["password_enc"] == token

        audit = (await client.get(f"{URL}/audit", headers=org.headers)).json()
        assert audit[0]["action"] == "smtp_settings.rotate_keys"
        assert audit[0]["fields"] == ["password"]
        assert audit[0]["actor_id"] is None
    finally:
        # put every organization back under the test key ring's key for the other tests
        await smtp_config.rotate_keys(runtime.uow, SecretBox(KeyRing([fresh, old_key])))
    assert (await stored_secrets(runtime, org)).password == PASSWORD


async def test_without_a_fake_the_real_tester_is_wired_and_guards_loopback(
    client: httpx.AsyncClient, app: FastAPI, org: OrgFixture
) -> None:
    assert getattr(app.state, "diagnoser", None) is None
    body = {"settings": settings_body(host="127.0.0.1", port=25, security="starttls")}
    reply = await client.post(f"{URL}/test", headers=org.headers, json=body)
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["ok"] is False
    failed = [s for s in report["steps"] if s["status"] == "failed"]
    assert [s["name"] for s in failed] == ["resolve"]
    assert "VISITMAIL_SMTP_ALLOWED_NETWORKS" in (failed[0]["explanation"] or "") + (
        failed[0]["fix"] or ""
    )
    assert PASSWORD not in reply.text


async def test_with_the_dev_inbox_only_its_own_port_on_loopback_is_reachable(
    client: httpx.AsyncClient, app: FastAPI, runtime: Runtime, org: OrgFixture
) -> None:
    """Issue 10, item 11: ``--dev-inbox`` opens the sink's port, not every local port (the
    connection test would otherwise scan the machine and echo banners)."""
    app.state.dev_inbox = object()  # what serve --dev-inbox sets
    try:
        for port, reachable in (
            (5432, False),
            (22, False),
            (runtime.settings.dev_inbox_port, True),
        ):
            body = {"settings": settings_body(host="127.0.0.1", port=port, security="none")}
            del body["settings"]["password"]
            del body["settings"]["username"]
            reply = await client.post(f"{URL}/test", headers=org.headers, json=body)
            assert reply.status_code == 200, reply.text
            resolve = next(s for s in reply.json()["steps"] if s["name"] == "resolve")
            assert (resolve["status"] != "failed") is reachable, (port, resolve)
    finally:
        app.state.dev_inbox = None


async def test_autodetect_says_what_each_port_answered_against_a_real_server(
    app: FastAPI, client: httpx.AsyncClient, org: OrgFixture
) -> None:
    # A real aiosmtpd server speaking plain SMTP without STARTTLS on a custom port, typed
    # in with `starttls`: auto-detect tries that port besides the usual ones.
    server = await start_smtp_server(security="none")
    app.state.diagnoser = SmtpConnectionTester(LOOPBACK, autodetect_timeout=2.0)
    try:
        inline = settings_body(host="127.0.0.1", port=server.port, username=None, password=None)
        reply = await client.post(
            f"{URL}/autodetect", headers=org.headers, json={"settings": inline}
        )
    finally:
        app.state.diagnoser = None
        await server.close()
    assert reply.status_code == 200, reply.text
    body = reply.json()
    ports = {p["port"]: p for p in body["ports"]}
    assert ports[server.port]["answer"] == "plain_no_starttls"
    assert ports[server.port]["text"] == "plain SMTP without STARTTLS (not encrypted)"
    assert {465, 587, 25, 2525} <= set(ports)
    assert ports[587]["answer"] in ("refused", "timed_out")
    tried = {(c["port"], c["security"]): c for c in body["candidates"]}
    assert tried[(server.port, "starttls")]["answer"] == "plain_no_starttls"
    assert "speaks plain SMTP without STARTTLS" in tried[(server.port, "starttls")]["summary"]
    assert body["recommended"]["port"] == server.port
    assert body["recommended"]["security"] == "none"


async def test_unencrypted_connection_test_warns_once(
    app: FastAPI, client: httpx.AsyncClient, org: OrgFixture
) -> None:
    server = await start_smtp_server(security="none")
    app.state.diagnoser = SmtpConnectionTester(LOOPBACK)
    try:
        inline = settings_body(
            host="127.0.0.1", port=server.port, security="none", username=None, password=None
        )
        reply = await client.post(f"{URL}/test", headers=org.headers, json={"settings": inline})
    finally:
        app.state.diagnoser = None
        await server.close()
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ok"] is True
    about_encryption = [w for w in body["warnings"] if "encrypt" in w]
    assert len(about_encryption) == 1, body["warnings"]
    assert "not encrypted" in about_encryption[0]
