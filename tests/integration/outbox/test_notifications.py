"""Notification emails end to end, on both databases: a mapping saved through the API, a
report captured and exported through the API, a real worker delivering to a real SMTP
server (aiosmtpd); the received mail is parsed, its PDF's text read back."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from tests.integration.web.test_mapping_api import (
    capture,
    email,
    live_event,
    put_mapping,
    regional_mapping,
    report_body,
)
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server, make_worker
from tests.support.smtp_servers import ReceivedMessage, SmtpServer, start_smtp_server
from visitmail.adapters.db.tables import OutboxMessageRow
from visitmail.runtime import Runtime


@pytest.fixture
async def server(runtime: Runtime, org: OrgFixture) -> AsyncIterator[SmtpServer]:
    smtp = await start_smtp_server()
    await configure_server(runtime, org, smtp.port)
    try:
        yield smtp
    finally:
        await smtp.close()


async def export(client: httpx.AsyncClient, org: OrgFixture, report_id: str) -> dict[str, Any]:
    reply = await client.post(f"/api/v1/reports/{report_id}/export", headers=org.headers)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def check(client: httpx.AsyncClient, org: OrgFixture, report_id: str) -> dict[str, Any]:
    reply = await client.post(f"/api/v1/reports/{report_id}/check", headers=org.headers)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def deliver(runtime: Runtime, org: OrgFixture) -> None:
    await make_worker(runtime, org).run_until_idle()


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def received_by(server: SmtpServer) -> list[list[str]]:
    return [m.rcpt_tos for m in server.recorder.messages]


def only(messages: list[ReceivedMessage]) -> ReceivedMessage:
    assert len(messages) == 1, [m.rcpt_tos for m in messages]
    return messages[0]


async def test_an_exported_report_reaches_exactly_the_berlin_team_with_the_pdf(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    await put_mapping(client, org, regional_mapping())
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])

    done = await export(client, org, report["id"])
    assert done["status"] == "exported"
    (fired,) = done["notifications"]
    assert fired["kind"] == "email" and fired["rule"] == "Regional teams"
    assert fired["recipients"] == ["berlin@acme.example"]
    assert fired["duplicate"] is False and fired["message_id"]

    await deliver(runtime, org)

    received = only(server.recorder.messages)
    assert received.rcpt_tos == ["berlin@acme.example"]
    assert received.mail_from == "sales@example.com"
    mail = received.parsed()
    assert str(mail["From"]) == "Sales <sales@example.com>"
    assert str(mail["To"]) == "berlin@acme.example"
    assert str(mail["Subject"]) == "New lead: Müller GmbH (10115 Berlin)"
    assert mail["Reply-To"].addresses[0].addr_spec == org.admin.email  # the reporter
    assert mail["X-Visitmail-Report"] == report["id"]
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Anna Müller of Müller GmbH wants Lead-Routing." in text
    assert "{{" not in text

    (attachment,) = list(mail.iter_attachments())
    filename = attachment.get_filename()
    assert filename is not None
    assert re.fullmatch(r"report-Muller-GmbH-\d{4}-\d{2}-\d{2}\.pdf", filename), filename
    assert attachment.get_content_type() == "application/pdf"
    pdf = attachment.get_content()
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
    words = "".join(pdf_text(pdf).split())
    for expected in ("Anna", "Müller", "MüllerGmbH", "Lead-Routing", "CRM-Anbindung", "Rückruf"):
        assert expected in words, expected

    # exporting again notifies nobody again
    again = await export(client, org, report["id"])
    (fired_again,) = again["notifications"]
    assert fired_again["duplicate"] is True
    assert fired_again["message_id"] == fired["message_id"]
    await deliver(runtime, org)
    assert len(server.recorder.messages) == 1


async def test_the_switch_routes_bavaria_and_the_default(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    await put_mapping(client, org, regional_mapping())
    event = await live_event(client, org)
    munich = await capture(
        client, org, event["id"], lead={**report_body(event["id"])["lead"], "zip": "80331"}
    )
    hamburg = await capture(
        client, org, event["id"], lead={**report_body(event["id"])["lead"], "zip": "20095"}
    )
    await export(client, org, munich["id"])
    await export(client, org, hamburg["id"])
    await deliver(runtime, org)
    assert sorted(received_by(server)) == [["bavaria@acme.example"], ["sales@acme.example"]]
    assert all(not list(m.parsed().iter_attachments()) for m in server.recorder.messages)


async def test_a_checked_rule_fires_on_check_only(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    checked_rule = {
        "name": "Checked",
        "event": "*",
        "on": "checked",
        "actions": [email(["quality@acme.example"], "Checked: {{ lead.company }}", "{{ id }}")],
    }
    await put_mapping(client, org, regional_mapping(checked_rule))
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])

    exported = await export(client, org, report["id"])
    assert [n["rule"] for n in exported["notifications"]] == ["Regional teams"]
    await deliver(runtime, org)
    assert received_by(server) == [["berlin@acme.example"]]

    checked = await check(client, org, report["id"])
    assert [n["rule"] for n in checked["notifications"]] == ["Checked"]
    await deliver(runtime, org)
    assert received_by(server) == [["berlin@acme.example"], ["quality@acme.example"]]
    last = server.recorder.messages[-1].parsed()
    assert str(last["Subject"]) == "Checked: Müller GmbH"
    assert last.get_body(preferencelist=("plain",)).get_content().strip() == report["id"]  # type: ignore[union-attr]

    again = await check(client, org, report["id"])
    assert [n["duplicate"] for n in again["notifications"]] == [True]
    await deliver(runtime, org)
    assert len(server.recorder.messages) == 2


async def test_notify_every_export_notifies_again_only_for_a_changed_report(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    rule = {
        "name": "Every change",
        "event": "*",
        "on": "exported",
        "notify_every_export": True,
        "actions": [email(["crm@acme.example"], "{{ lead.company }}", "{{ notes }}")],
    }
    await put_mapping(client, org, {"version": 1, "rules": [rule]})
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])
    await export(client, org, report["id"])
    unchanged = await export(client, org, report["id"])
    assert unchanged["notifications"][0]["duplicate"] is True

    updated = await client.put(
        f"/api/v1/reports/{report['id']}", headers=org.headers, json={"notes": "Second visit."}
    )
    assert updated.status_code == 200 and updated.json()["revision"] == 2
    changed = await export(client, org, report["id"])
    assert changed["notifications"][0]["duplicate"] is False

    await deliver(runtime, org)
    bodies = [
        m.parsed().get_body(preferencelist=("plain",)).get_content().strip()  # type: ignore[union-attr]
        for m in server.recorder.messages
    ]
    assert sorted(bodies) == ["Met at booth 4.", "Second visit."]


async def test_header_injection_through_a_lead_field_is_refused_for_that_action(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    document = regional_mapping()
    case = document["rules"][0]["switch"]["cases"][0]
    case["actions"] = [
        email(["berlin@acme.example"], "Lead: {{ lead.company }}", "x", attach_pdf=True),
        email(["audit@acme.example"], "Lead: {{ answers.interest }}", "y"),
        email(["safe@acme.example"], "A new lead", "{{ lead.company }} {{ answers.interest }}"),
    ]
    await put_mapping(client, org, document)
    event = await live_event(client, org)

    # CR/LF in a lead field never gets in
    refused = await client.post(
        "/api/v1/reports",
        headers=org.headers,
        json=report_body(
            event["id"],
            lead={**report_body(event["id"])["lead"], "company": "ACME\r\nBcc: v@evil.example"},
        ),
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "lead.company"

    # a Unicode line separator in a lead field is refused at save as well (issue 10, item
    # 6: save and send apply one rule), so it can never make a later send fail
    separator = await client.post(
        "/api/v1/reports",
        headers=org.headers,
        json=report_body(
            event["id"],
            lead={**report_body(event["id"])["lead"], "company": "ACME\u2028Bcc: v@evil.example"},
        ),
    )
    assert separator.status_code == 422
    assert separator.json()["error"]["field"] == "lead.company"

    # a CR/LF in a free-text answer (answers may hold line breaks) fails only the action
    # whose subject uses it
    report = await capture(
        client, org, event["id"], answers={"interest": "demo\r\nBcc: victim@evil.example"}
    )
    done = await export(client, org, report["id"])
    assert done["status"] == "exported"  # the export itself succeeds
    first, second, third = done["notifications"]
    assert first["kind"] == "email" and first["message_id"]
    assert second["kind"] == "failed" and second["message_id"] is None
    assert "rules[0].switch.cases[0].actions[1].email.subject" in second["error"]
    assert "line break" in second["error"]
    assert third["kind"] == "email" and third["message_id"]

    listed = (await client.get("/api/v1/messages", headers=org.headers)).json()["items"]
    assert {m["id"] for m in listed} == {first["message_id"], third["message_id"]}
    await deliver(runtime, org)
    received = server.recorder.messages
    assert sorted(a for m in received for a in m.rcpt_tos) == [
        "berlin@acme.example",
        "safe@acme.example",
    ]
    for message in received:
        assert b"evil.example" not in message.content.split(b"\r\n\r\n", 1)[0]


async def test_without_smtp_settings_emails_are_not_queued_but_the_export_succeeds(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await put_mapping(client, org, regional_mapping())
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])
    done = await export(client, org, report["id"])
    assert done["status"] == "exported"
    (fired,) = done["notifications"]
    assert fired["kind"] == "failed" and "SMTP settings" in fired["error"]
    assert (await client.get("/api/v1/messages", headers=org.headers)).json()["items"] == []


async def test_a_webhook_action_is_queued_with_its_payload(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    rule = {
        "name": "CRM",
        "event": "*",
        "on": "exported",
        "actions": [{"webhook": {"url": "https://crm.example/hook", "secret_ref": "crm"}}],
    }
    await put_mapping(client, org, {"version": 1, "rules": [rule]})
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])
    (fired,) = (await export(client, org, report["id"]))["notifications"]
    assert fired["kind"] == "webhook" and fired["recipients"] == ["https://crm.example/hook"]

    import json
    import uuid

    async with runtime.uow() as uow:
        row = await uow.session.get(OutboxMessageRow, uuid.UUID(fired["message_id"]))
        assert row is not None
        assert row.kind == "webhook"
        assert row.meta == {
            "url": "https://crm.example/hook",
            "secret_ref": "crm",
            "content_type": "application/json",
        }
        payload = json.loads(row.mime)
    assert payload["type"] == "report.exported"
    assert payload["report"]["id"] == report["id"]
    assert payload["report"]["lead"]["last_name"] == "Müller"

    again = await export(client, org, report["id"])
    assert again["notifications"][0]["duplicate"] is True


async def test_a_rolled_back_revision_decides_the_next_export(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    first = await put_mapping(client, org, regional_mapping())
    everything_to_sales = {
        "version": 1,
        "rules": [
            {
                "name": "All to sales",
                "event": "*",
                "on": "exported",
                "actions": [email(["sales@acme.example"], "{{ lead.company }}", "-")],
            }
        ],
    }
    await put_mapping(client, org, everything_to_sales)
    event = await live_event(client, org)
    one = await capture(client, org, event["id"])
    await export(client, org, one["id"])

    rolled = await client.post(
        f"/api/v1/notification-mapping/revisions/{first['id']}/activate", headers=org.headers
    )
    assert rolled.status_code == 200, rolled.text
    two = await capture(client, org, event["id"])
    await export(client, org, two["id"])

    await deliver(runtime, org)
    assert received_by(server) == [["sales@acme.example"], ["berlin@acme.example"]]


async def test_an_export_webhook_arrives_signed_and_is_retried_when_the_receiver_fails(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    """End to end: mapping → export → outbox → worker → a real HTTP receiver, which fails
    once (HTTP 500) and then accepts; the signature verifies with the stored secret."""
    import hashlib
    import hmac
    import json

    from tests.integration.outbox.test_webhooks import SECRET, Receiver, put_secret
    from tests.support.outbox import LOOPBACK, make_worker
    from visitmail.adapters.webhooks.sender import WebhookTransport

    receiver = await Receiver(status=lambda n: 500 if n == 1 else 200).start()
    try:
        await put_secret(runtime, org, "crm", SECRET)
        rule = {
            "name": "CRM",
            "event": "*",
            "on": "exported",
            "actions": [
                {"webhook": {"url": receiver.url(), "secret_ref": "crm", "allow_http": True}}
            ],
        }
        await put_mapping(client, org, {"version": 1, "rules": [rule]})
        event = await live_event(client, org)
        report = await capture(client, org, event["id"])
        (fired,) = (await export(client, org, report["id"]))["notifications"]
        assert fired["kind"] == "webhook"

        await make_worker(runtime, org, webhooks=WebhookTransport(LOOPBACK)).run_until_idle()
    finally:
        await receiver.close()

    assert len(receiver.requests) == 2  # the 500, then the retry
    got = receiver.requests[-1]
    assert got.body == receiver.requests[0].body  # the same bytes on every attempt
    payload = json.loads(got.body)
    assert payload["type"] == "report.exported"
    assert payload["report"]["id"] == report["id"]
    timestamp = got.headers["x-visitmail-timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + got.body, hashlib.sha256)
    assert got.headers["x-visitmail-signature"] == "sha256=" + expected.hexdigest()
    detail = await client.get(f"/api/v1/messages/{fired['message_id']}", headers=org.headers)
    assert detail.json()["status"] == "sent"
    outcomes = [(a["outcome"], (a["text"] or "")[:8]) for a in detail.json()["attempts"]]
    assert outcomes == [("deferred", "HTTP 500"), ("accepted", "HTTP 200")]
