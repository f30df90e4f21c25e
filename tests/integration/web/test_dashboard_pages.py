"""The dashboard's setup checklist and health, the report's PDF and labelled answers, and
the outbox message's content, on both databases, through the UI as a user meets it: a real
aiosmtpd server, the real connection tester, real exports and deliveries."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.web.test_follow_ups_api import lead, put_template
from tests.integration.web.test_mapping_api import QUESTIONS, email
from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.integration.web.test_report_pages import log_in_member
from tests.integration.web.test_reports_api import capture as capture_with
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import LOOPBACK, ManualClock, configure_server, enqueue, make_worker
from tests.support.smtp_servers import Script, SmtpServer, start_smtp_server
from visitmail.adapters.db.health_repo import SqlHealth
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.web.app import create_app

ANSWERS = {"interest": "Demo", "budget": 12500.5, "products": ["crm", "mail"], "call_back": True}
STEP = re.compile(r'data-step="(\w+)" data-done="(yes|no)"')
REFUSED = "gone@example.net"
BUSY = "busy@example.net"


@pytest.fixture
def tester_app(runtime: Runtime) -> FastAPI:
    app = create_app(runtime)
    # The real connection tester, allowed to reach the test's server on loopback.
    app.state.diagnoser = SmtpConnectionTester(LOOPBACK, allow_plaintext_auth=True)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    address = f"10.8.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    transport = httpx.ASGITransport(app=app, client=(address, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


@pytest.fixture
async def ui(tester_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(tester_app) as client:
        yield client


@pytest.fixture
async def stranger(tester_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser: another organization's admin logs in here."""
    async with _client(tester_app) as client:
        yield client


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    script = Script(
        rcpt=lambda a: {
            REFUSED: "550 5.1.1 no such mailbox here",
            BUSY: "451 4.3.0 try again later",
        }.get(a)
    )
    server = await start_smtp_server(script=script)
    try:
        yield server
    finally:
        await server.close()


async def capture(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: str, **changes: Any
) -> dict[str, Any]:
    """A report with answers to :data:`QUESTIONS` (the event's questions here)."""
    return await capture_with(client, headers, event_id, **{"answers": ANSWERS, **changes})


async def steps(client: httpx.AsyncClient) -> dict[str, bool]:
    page = await client.get("/")
    assert page.status_code == 200, page.text
    return {key: done == "yes" for key, done in STEP.findall(page.text)}


async def make_event(client: httpx.AsyncClient, org: OrgFixture) -> dict[str, Any]:
    reply = await client.post(
        "/api/v1/events",
        headers=org.headers,
        json={"name": "Fair", "languages": ["de", "en"], "questions": QUESTIONS, "status": "live"},
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def put_rules(client: httpx.AsyncClient, org: OrgFixture, *actions: Any) -> None:
    rule = {"name": "Sales", "event": "*", "on": "exported", "actions": list(actions)}
    reply = await client.put(
        "/api/v1/notification-mapping", headers=org.headers, json={"version": 1, "rules": [rule]}
    )
    assert reply.status_code in (200, 201), reply.text


async def export(client: httpx.AsyncClient, org: OrgFixture, report_id: str) -> str:
    reply = await client.post(f"/api/v1/reports/{report_id}/export", headers=org.headers)
    assert reply.status_code == 200, reply.text
    (fired,) = reply.json()["notifications"]
    assert fired["message_id"], fired
    message_id: str = fired["message_id"]
    return message_id


async def set_up_everything(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, port: int
) -> None:
    """Another organization's complete setup, through the same calls."""
    await configure_server(runtime, org, port)
    assert (await client.post("/api/v1/smtp-settings/test", headers=org.headers)).json()["ok"]
    event = await make_event(client, org)
    await put_template(client, org, event["id"], "de", {"subject": "Danke", "text": "Hallo"})
    await put_rules(client, org, email(["team@acme.example"], "Lead", "Neu"))
    report = await capture(client, org.headers, event["id"], lead=lead())
    await export(client, org, report["id"])


async def test_the_checklist_ticks_step_by_step_from_real_state(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    other = await new_org(runtime, name="Other")
    await set_up_everything(ui, runtime, other, smtp.port)

    await log_in_as(ui, runtime, org, Role.ADMIN)
    page = await ui.get("/")
    assert 'data-setup="open"' in page.text and "0 of 5 done" in page.text
    # another organization's setup ticks nothing here
    assert await steps(ui) == dict.fromkeys(
        ("smtp", "event", "template", "mapping", "export"), False
    )
    assert 'href="/settings/smtp"' in page.text and 'href="/events/new"' in page.text
    # nothing configured: no health strip claiming the server sends
    assert "sending" not in page.text.lower()

    await configure_server(runtime, org, smtp.port)
    page = await ui.get("/")
    assert (await steps(ui))["smtp"] is False  # saved, not tested
    assert "no connection test passed since the settings last changed" in page.text

    # a passing test of other, unsaved values says nothing about the saved ones
    unsaved = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
    unsaved |= {"sender_email": "other@example.com", "sender_name": "Other"}
    other_values = await ui.post(
        "/api/v1/smtp-settings/test", headers=org.headers, json={"settings": unsaved}
    )
    assert other_values.status_code == 200 and other_values.json()["ok"], other_values.text
    assert (await steps(ui))["smtp"] is False

    tested = await ui.post("/api/v1/smtp-settings/test", headers=org.headers)
    assert tested.status_code == 200 and tested.json()["ok"], tested.text
    assert (await steps(ui))["smtp"] is True

    # changing the settings needs a new test; a failing test does not tick it
    await configure_server(runtime, org, smtp.port, sender_email="team@example.com")
    assert (await steps(ui))["smtp"] is False
    await configure_server(runtime, org, 1, sender_email="team@example.com")
    failed = await ui.post("/api/v1/smtp-settings/test", headers=org.headers)
    assert failed.status_code == 200 and not failed.json()["ok"]
    assert (await steps(ui))["smtp"] is False
    await configure_server(runtime, org, smtp.port, sender_email="team@example.com")
    assert (await ui.post("/api/v1/smtp-settings/test", headers=org.headers)).json()["ok"]
    assert (await steps(ui))["smtp"] is True

    event = await make_event(ui, org)
    now = await steps(ui)
    assert now["event"] is True and now["template"] is False
    assert f'href="/events/{event["id"]}"' in (await ui.get("/")).text  # templates live there

    await put_template(ui, org, event["id"], "de", {"subject": "Danke", "text": "Hallo"})
    assert (await steps(ui))["template"] is True

    await put_rules(ui, org, email(["team@acme.example"], "Lead", "Neu"))
    page = await ui.get("/")
    assert (await steps(ui))["mapping"] is True and "1 active rule." in page.text

    report = await capture(ui, org.headers, event["id"], lead=lead())
    assert (await steps(ui))["export"] is False  # captured, not exported
    await export(ui, org, report["id"])

    page = await ui.get("/")
    assert 'data-setup="done"' in page.text and 'data-setup="open"' not in page.text
    assert "visitmail is set up" in page.text
    assert not STEP.findall(page.text)  # collapsed to one line


async def test_an_event_manager_sees_only_the_steps_they_can_take(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_member(ui, runtime, org, Role.EVENT_MANAGER)
    assert set(await steps(ui)) == {"event", "template", "export"}
    page = (await ui.get("/")).text
    assert "An admin still has 2 steps to do." in page
    assert 'data-health="not_configured"' in page and "sending" not in page.lower()


async def test_a_reporter_gets_no_checklist_and_no_health(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_member(ui, runtime, org, Role.REPORTER)
    page = await ui.get("/")
    assert page.status_code == 200
    assert "data-setup" not in page.text and "data-health" not in page.text


async def test_health_shows_the_pause_with_its_reason_and_failed_mail(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    await configure_server(runtime, org, smtp.port)
    await enqueue(runtime, org, [REFUSED], subject="Refused")
    await make_worker(runtime, org).run_until_idle()
    await log_in_as(ui, runtime, org, Role.ADMIN)

    page = await ui.get("/")
    assert 'href="/outbox?status=failed"' in page.text
    assert "1 message failed" in page.text
    assert "data-health" not in page.text  # the server itself is fine

    now = datetime.now(UTC)
    async with runtime.uow() as uow:
        await SqlHealth(uow.session).record_failure(
            org.organization.id,
            "535 5.7.8 Authentication credentials invalid",
            now,
            pause_after=1,
            probe_in=timedelta(minutes=5),
        )
        await uow.commit()
    page = await ui.get("/")
    assert 'data-health="paused"' in page.text
    assert "Sending is paused" in page.text
    assert "535 5.7.8 Authentication credentials invalid" in page.text

    # another organization's failures are not counted here
    other = await new_org(runtime, name="Other")
    await log_in_as(ui, runtime, other, Role.ADMIN)
    page = await ui.get("/")
    assert "data-health" not in page.text and "failed</a>" not in page.text


async def test_deferred_mail_counts_and_failures_older_than_a_day_do_not(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    await configure_server(runtime, org, smtp.port)
    two_days_ago = ManualClock(datetime.now(UTC) - timedelta(days=2))
    await enqueue(runtime, org, [REFUSED], subject="Old", clock=two_days_ago)
    await make_worker(runtime, org, clock=two_days_ago).run_until_idle()
    await log_in_as(ui, runtime, org, Role.ADMIN)
    assert "failed</a>" not in (await ui.get("/")).text  # failed, but two days ago

    # a 451: deferred; the test's clock stands still, so the retry is not due yet
    today = ManualClock()
    await enqueue(runtime, org, [BUSY], subject="Busy", clock=today)
    await make_worker(runtime, org, clock=today).run_until_idle()
    page = await ui.get("/")
    assert 'href="/outbox?status=deferred"' in page.text
    assert "1 message deferred, to be retried" in page.text
    assert "failed</a>" not in page.text


async def test_the_smtp_page_does_not_say_sending_without_settings(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(ui, runtime, org, Role.ADMIN)
    page = await ui.get("/settings/smtp")
    assert page.status_code == 200
    state = re.search(r"<dt>State</dt><dd>([^<]*)", page.text)
    assert state and state.group(1).startswith("not configured"), state


async def test_the_report_pdf_opens_for_its_organization_only(
    ui: httpx.AsyncClient, stranger: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await make_event(ui, org)
    report = await capture(
        ui, org.headers, event["id"], lead=lead(company="Große Straße GmbH", last_name="Weiß")
    )
    await log_in_as(ui, runtime, org, Role.ADMIN)
    page = await ui.get(f"/reports/{report['id']}")
    assert f'href="/reports/{report["id"]}.pdf"' in page.text

    pdf = await ui.get(f"/reports/{report['id']}.pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    day = report["captured_at"][:10]
    assert pdf.headers["content-disposition"] == (
        f'inline; filename="report-Grosse-Strasse-GmbH-{day}.pdf"'
    )

    other = await new_org(runtime, name="Other")
    await log_in_as(stranger, runtime, other, Role.ADMIN)
    assert (await stranger.get(f"/reports/{report['id']}.pdf")).status_code == 404
    assert (await stranger.get("/reports/not-a-uuid.pdf")).status_code == 404


async def test_answers_show_their_labels_and_values_in_the_viewers_language(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await make_event(ui, org)
    report = await capture(ui, org.headers, event["id"], lead=lead(country="DE"))
    await log_in_as(ui, runtime, org, Role.ADMIN)

    english = (await ui.get(f"/reports/{report['id']}", headers={"Accept-Language": "en"})).text
    assert "<dt>Interest</dt><dd>Demo</dd>" in english
    assert "<dt>Budget</dt><dd>12,500.5</dd>" in english
    assert "<dt>Products</dt><dd>CRM link, Mailing</dd>" in english
    assert "<dt>Call back</dt><dd>Yes</dd>" in english
    assert "<dd>Germany</dd>" in english
    assert "call_back" not in english

    german = (
        await ui.get(f"/reports/{report['id']}", headers={"Accept-Language": "de-DE,de;q=0.9"})
    ).text
    assert "<dt>Interesse</dt><dd>Demo</dd>" in german
    assert "<dt>Budget</dt><dd>12.500,5</dd>" in german
    assert "<dt>Produkte</dt><dd>CRM-Anbindung, Mailing</dd>" in german
    assert "<dt>Rückruf</dt><dd>Ja</dd>" in german
    assert "<dd>Deutschland</dd>" in german


async def test_a_reporter_sees_the_labels_of_their_own_report(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await make_event(ui, org)
    token = await log_in_member(ui, runtime, org, Role.REPORTER)
    mine = await capture(ui, {"Authorization": f"Bearer {token}"}, event["id"], lead=lead())
    page = await ui.get(f"/reports/{mine['id']}", headers={"Accept-Language": "en"})
    assert "<dt>Interest</dt>" in page.text
    assert (await ui.get(f"/reports/{mine['id']}.pdf")).content.startswith(b"%PDF")


async def test_the_outbox_detail_shows_body_attachments_and_report(
    ui: httpx.AsyncClient,
    stranger: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    smtp: SmtpServer,
) -> None:
    await configure_server(runtime, org, smtp.port)
    event = await make_event(ui, org)
    await put_rules(
        ui,
        org,
        email(
            ["team@acme.example"],
            "Lead: {{ lead.company }}",
            "New lead from {{ lead.company }}.",
            html="<p>New lead <b>{{ lead.company }}</b></p>",
            attach_pdf=True,
        ),
    )
    report = await capture(ui, org.headers, event["id"], lead=lead(company="Weiß AG"))
    message_id = await export(ui, org, report["id"])
    await log_in_as(ui, runtime, org, Role.ADMIN)

    page = await ui.get(f"/outbox/{message_id}")
    assert page.status_code == 200
    assert "New lead from Weiß AG." in page.text
    assert f'src="/outbox/{message_id}/body.html"' in page.text and "sandbox" in page.text
    assert f'href="/reports/{report["id"]}"' in page.text
    assert f'href="/outbox/{message_id}/attachments/0"' in page.text
    assert "application/pdf" in page.text and "report-Weiss-AG-" in page.text
    # queued: both actions apply
    assert "Retry now" in page.text and "Cancel message" in page.text

    html = await ui.get(f"/outbox/{message_id}/body.html")
    assert html.status_code == 200 and "<b>Weiß AG</b>" in html.text
    policy = html.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'") and "sandbox" in policy
    assert "script-src" not in policy

    attached = await ui.get(f"/outbox/{message_id}/attachments/0")
    assert attached.status_code == 200 and attached.content.startswith(b"%PDF")
    assert attached.headers["content-type"] == "application/pdf"
    assert attached.headers["content-disposition"].startswith('attachment; filename="report-')
    assert (await ui.get(f"/outbox/{message_id}/attachments/1")).status_code == 404

    await make_worker(runtime, org).run_until_idle()
    sent = await ui.get(f"/outbox/{message_id}")
    assert "badge status-sent" in sent.text
    assert "Retry now" not in sent.text and "Cancel message" not in sent.text
    assert "New lead from Weiß AG." in sent.text  # still readable after sending

    other = await new_org(runtime, name="Other")
    await log_in_as(stranger, runtime, other, Role.ADMIN)
    for path in ("", "/body.html", "/attachments/0"):
        assert (await stranger.get(f"/outbox/{message_id}{path}")).status_code == 404


async def test_a_plain_message_has_no_html_frame_and_a_csrf_checked_cancel(
    ui: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    message_id, _ = await enqueue(runtime, org, ["wait@example.com"], subject="Plain")
    await log_in_as(ui, runtime, org, Role.ADMIN)
    page = await ui.get(f"/outbox/{message_id}")
    assert "Thanks for visiting our booth." in page.text
    assert "<iframe" not in page.text and "Attachments</h3>" not in page.text
    assert (await ui.get(f"/outbox/{message_id}/body.html")).status_code == 404
    token = await csrf_of(ui, f"/outbox/{message_id}")
    forged = await ui.post(
        f"/outbox/{message_id}/cancel", data={"csrf_token": "forged", "confirm": "yes"}
    )
    assert forged.status_code == 403
    done = await ui.post(
        f"/outbox/{message_id}/cancel", data={"csrf_token": token, "confirm": "yes"}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?done=cancelled")
