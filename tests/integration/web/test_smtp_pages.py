"""The admin's "Outgoing mail server" page over HTTP, on both databases: role checks, CSRF,
field errors next to their field with the entered values kept, write-only secrets, and the
page's JSON connection test (with a fake diagnoser)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.web.test_smtp_settings_api import FakeDiagnoser
from tests.integration.web.test_ui_login import log_in
from tests.support.orgs import OrgFixture, unique_email
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import identity

PAGE = "/settings/smtp"
PASSWORD = "Ui-Secret-Passw0rd-7391"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_body(csrf: str | None, **overrides: str) -> dict[str, str]:
    body = {
        "preset": "",
        "host": "smtp.example.com",
        "port": "587",
        "security": "starttls",
        "username": "sales@example.com",
        "password": PASSWORD,
        "auth_method": "auto",
        "sender_email": "sales@example.com",
        "sender_name": "Acme Sales",
        "reply_to": "",
        "helo_name": "",
        "timeouts.connect": "5",
        "timeouts.command": "20",
        "timeouts.overall": "15",
        "tls.ca_pem": "",
        "tls.pinned_sha256": "",
        "tls.client_cert_pem": "",
        "tls.client_key_pem": "",
        "proxy.kind": "none",
        "proxy.host": "",
        "proxy.port": "",
        "proxy.username": "",
        "proxy.password": "",
        "limits.max_connections": "3",
        "limits.max_messages_per_connection": "100",
        "limits.per_minute": "30",
        "limits.per_hour": "",
        "limits.per_day": "",
    }
    if csrf is not None:
        body["csrf_token"] = csrf
    body.update(overrides)
    return body


async def admin_page(client: httpx.AsyncClient, org: OrgFixture) -> tuple[httpx.Response, str]:
    reply = await log_in(client, org.admin.email, org.admin_password)
    assert reply.status_code == 303
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match
    return page, match.group(1)


def input_tag(html: str, name: str) -> str:
    match = re.search(rf'<(?:input|textarea|select)[^>]*\bname="{re.escape(name)}"[^>]*>', html)
    assert match, f"no field {name}"
    return match.group(0)


@pytest.fixture
def diagnoser(app: FastAPI) -> Iterator[FakeDiagnoser]:
    fake = FakeDiagnoser()
    app.state.diagnoser = fake
    try:
        yield fake
    finally:
        app.state.diagnoser = None


async def test_not_logged_in_goes_to_login(client: httpx.AsyncClient) -> None:
    reply = await client.get(PAGE)
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/login?next={PAGE}"


async def test_admin_sees_the_form_presets_and_nav(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    page, _csrf = await admin_page(client, org)
    html = page.text
    assert "Outgoing mail server" in html
    assert 'href="/settings/smtp"' in html and "Mail server" in html
    assert '<label for="f-host">Host</label>' in html
    assert "implicit TLS, usually 465" in html
    assert "STARTTLS required, usually 587" in html
    assert "passwords are refused unless the operator allows it" in html
    assert "SendGrid" in html and "smtp.sendgrid.net" in html
    assert "Test connection" in html and "Auto-detect" in html
    assert "not set" in html  # no password stored yet
    assert "Nothing is saved yet" in html


async def test_reporter_gets_403(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    email = unique_email("reporter")
    async with runtime.uow() as uow:
        made = await identity.create_user(
            uow,
            runtime.hasher,
            org.principal,
            email=email,
            role=Role.REPORTER,
            display_name="Rita Reporter",
        )
    assert made.initial_password
    assert (await log_in(client, email, made.initial_password)).status_code == 303
    page = await client.get(PAGE)
    assert page.status_code == 403
    assert "Only admins" in page.text
    assert 'href="/settings/smtp"' not in (await client.get("/")).text
    home = await client.get("/")
    csrf = CSRF.search(home.text)
    assert csrf
    saved = await client.post(PAGE, data=form_body(csrf.group(1)))
    assert saved.status_code == 403
    tested = await client.post(f"{PAGE}/test", data=form_body(csrf.group(1)))
    assert tested.status_code == 403
    assert tested.json()["error"]["code"] == "forbidden"


async def test_saving_without_csrf_changes_nothing(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await admin_page(client, org)
    missing = await client.post(PAGE, data=form_body(None))
    forged = await client.post(PAGE, data=form_body("forged-token"))
    assert missing.status_code == forged.status_code == 403
    assert "CSRF" in missing.text
    reply = await client.get("/api/v1/smtp-settings", headers=org.headers)
    assert reply.status_code == 404  # still not configured
    test = await client.post(f"{PAGE}/test", data=form_body("forged-token"))
    assert test.status_code == 403


async def test_line_break_in_host_is_shown_next_to_host_and_values_are_kept(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    _page, csrf = await admin_page(client, org)
    reply = await client.post(
        PAGE, data=form_body(csrf, host="smtp.example.com\r\nRCPT TO:<x@evil.test>")
    )
    assert reply.status_code == 422
    html = reply.text
    host = input_tag(html, "host")
    assert 'aria-invalid="true"' in host
    assert 'aria-describedby="f-host-hint f-host-error"' in host
    assert re.search(r'<p class="error" id="f-host-error">Host must not contain line breaks', html)
    assert 'value="Acme Sales"' in input_tag(html, "sender_name")
    assert 'value="30"' in input_tag(html, "limits.per_minute")
    assert PASSWORD not in html  # a typed secret is never echoed back
    assert (await client.get("/api/v1/smtp-settings", headers=org.headers)).status_code == 404


async def test_field_error_from_a_nested_field(client: httpx.AsyncClient, org: OrgFixture) -> None:
    _page, csrf = await admin_page(client, org)
    reply = await client.post(PAGE, data=form_body(csrf, **{"proxy.kind": "socks5"}))
    assert reply.status_code == 422
    assert 'aria-invalid="true"' in input_tag(reply.text, "proxy.host")
    assert 'id="f-proxy-host-error"' in reply.text


async def test_saved_password_shows_as_stored_never_its_value(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    _page, csrf = await admin_page(client, org)
    saved = await client.post(PAGE, data=form_body(csrf))
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{PAGE}?saved=1"
    page = await client.get(saved.headers["location"])
    html = page.text
    assert "Settings saved" in html
    assert "stored" in html
    assert PASSWORD not in html
    assert 'name="password_action" value="keep"' in html
    assert 'value="smtp.example.com"' in input_tag(html, "host")
    # the audit log names the fields, never the values
    assert "password" in html.split("Change log", 1)[1]
    assert org.admin.email in html

    api = (await client.get("/api/v1/smtp-settings", headers=org.headers)).json()
    assert api["password_set"] is True

    # saving again with an empty password keeps it; "clear" removes it
    again = await client.post(PAGE, data=form_body(csrf, password="", sender_name="Acme"))
    assert again.status_code == 303
    api = (await client.get("/api/v1/smtp-settings", headers=org.headers)).json()
    assert api["password_set"] is True and api["sender_name"] == "Acme"
    cleared = await client.post(
        PAGE, data=form_body(csrf, password="", password_action="clear", username="")
    )
    assert cleared.status_code == 303
    api = (await client.get("/api/v1/smtp-settings", headers=org.headers)).json()
    assert api["password_set"] is False


async def test_test_endpoint_returns_steps_for_unsaved_values(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    _page, csrf = await admin_page(client, org)
    diagnoser.echo = True  # the fake leaks the password into a reply; the page must not
    reply = await client.post(
        f"{PAGE}/test", data=form_body(csrf, host="relay.example.org", send_to="me@example.org")
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert [s["name"] for s in body["steps"]] == ["resolve", "connect", "auth", "send"]
    assert [s["status"] for s in body["steps"]] == ["passed", "passed", "passed", "skipped"]
    assert PASSWORD not in reply.text
    settings, secrets, send_to = diagnoser.calls[-1]
    assert settings.host == "relay.example.org"
    assert secrets.password == PASSWORD
    assert send_to == "me@example.org"
    # nothing was saved
    assert (await client.get("/api/v1/smtp-settings", headers=org.headers)).status_code == 404


async def test_test_endpoint_reuses_the_stored_password_for_the_same_host(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    _page, csrf = await admin_page(client, org)
    assert (await client.post(PAGE, data=form_body(csrf))).status_code == 303
    reply = await client.post(f"{PAGE}/test", data=form_body(csrf, password=""))
    assert reply.status_code == 200
    assert diagnoser.calls[-1][1].password == PASSWORD
    assert PASSWORD not in reply.text
    other = await client.post(f"{PAGE}/test", data=form_body(csrf, password="", host="x.test"))
    assert diagnoser.calls[-1][1].password is None
    assert any("saved password was not used" in w for w in other.json()["warnings"])


async def test_test_endpoint_names_the_bad_field(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    _page, csrf = await admin_page(client, org)
    reply = await client.post(f"{PAGE}/test", data=form_body(csrf, port="five"))
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "port"
    assert not diagnoser.calls


async def test_autodetect_returns_candidates_and_recommendation(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    _page, csrf = await admin_page(client, org)
    reply = await client.post(
        f"{PAGE}/autodetect", data=form_body(csrf), headers={"X-CSRF-Token": csrf}
    )
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


async def test_the_test_streams_each_step_then_the_report_without_secrets(
    client: httpx.AsyncClient, org: OrgFixture, diagnoser: FakeDiagnoser
) -> None:
    import json

    diagnoser.echo = True  # a leaky diagnoser: the stream must still mask the password
    _page, csrf = await admin_page(client, org)
    body = form_body(csrf)
    reply = await client.post(
        f"{PAGE}/test",
        data=body,
        headers={"Accept": "application/x-ndjson", "X-CSRF-Token": csrf},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in reply.text.splitlines() if line.strip()]
    assert [m["step"]["name"] for m in lines[:-1]] == ["resolve", "connect", "auth"]
    assert lines[-1]["report"]["ok"] is True
    assert [s["name"] for s in lines[-1]["report"]["steps"]][-1] == "send"
    assert PASSWORD not in reply.text


async def test_streamed_steps_leave_before_the_test_ends() -> None:
    """The stream yields a step while the test is still running (not all at the end)."""
    import asyncio
    import json

    from visitmail.domain.diagnosis import DiagnosisReport, Step, StepName, StepStatus
    from visitmail.web.ui.smtp_pages import _stream

    release = asyncio.Event()

    async def run(on_step):  # type: ignore[no-untyped-def]
        assert on_step is not None
        on_step(Step(StepName.RESOLVE, StepStatus.PASSED, 1))
        await release.wait()  # the rest of the test is still "on the wire"
        return DiagnosisReport(steps=[Step(StepName.RESOLVE, StepStatus.PASSED, 1)])

    stream = _stream(run)
    first = json.loads(await asyncio.wait_for(anext(stream), 2))
    assert first["step"]["name"] == "resolve"
    release.set()
    rest = [json.loads(chunk) async for chunk in stream]
    assert rest[-1]["report"]["ok"] is True


async def test_recipients_per_day_is_saved_from_the_form_and_filled_by_the_preset(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    page, csrf = await admin_page(client, org)
    presets = json.loads(
        re.search(r'id="smtp-presets">(.*?)</script>', page.text, re.S).group(1)  # type: ignore[union-attr]
    )
    m365 = next(p for p in presets if p["id"] == "microsoft-365")
    assert m365["limits"] == {
        "per_minute": 30,
        "per_hour": None,
        "per_day": None,
        "recipients_per_day": 10_000,
        "max_connections": 3,
    }
    saved = await client.post(PAGE, data=form_body(csrf, **{"limits.recipients_per_day": "10000"}))
    assert saved.status_code == 303
    stored = await client.get("/api/v1/smtp-settings", headers=org.headers)
    assert stored.json()["limits"]["recipients_per_day"] == 10_000
    html = (await client.get(PAGE)).text
    assert 'value="10000"' in input_tag(html, "limits.recipients_per_day")
    refused = await client.post(PAGE, data=form_body(csrf, **{"limits.recipients_per_day": "0"}))
    assert refused.status_code == 422
    assert 'aria-invalid="true"' in input_tag(refused.text, "limits.recipients_per_day")


async def test_unencrypted_settings_warn_once_with_code_and_no_empty_sender_strip(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    _page, csrf = await admin_page(client, org)
    saved = await client.post(
        PAGE, data=form_body(csrf, security="none", port="25", username="", password="")
    )
    assert saved.status_code == 303, saved.text
    html = (await client.get(saved.headers["location"])).text

    # The sender strip exists for smtp.js but is hidden: there is no sender warning.
    strip = re.search(r'<p id="sender-warning"[^>]*>(.*?)</p>', html, re.S)
    assert strip is not None
    assert " hidden" in strip.group(0) and strip.group(1).strip() == ""
    # "Not encrypted" said once, with `none` shown as code, no literal backticks.
    assert html.count("not encrypted") == 1
    assert "<code>none</code>" in html and "<code>starttls</code>" in html
    warnings = re.findall(r'<p class="card warning"[^>]*>(.*?)</p>', html, re.S)
    assert warnings and not any("`" in w for w in warnings)


async def test_sender_strip_shows_the_sender_warning(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    _page, csrf = await admin_page(client, org)
    saved = await client.post(PAGE, data=form_body(csrf, sender_email="sales@other.example"))
    assert saved.status_code == 303, saved.text
    html = (await client.get(saved.headers["location"])).text
    strip = re.search(r'<p id="sender-warning"([^>]*)>(.*?)</p>', html, re.S)
    assert strip is not None
    assert "hidden" not in strip.group(1)
    assert "The sender address is on other.example" in strip.group(2)
