"""Follow-up templates on both databases: ``event`` and ``questions`` placeholders, choice
answers rendered as their labels in the template's language (still equal to their keys),
sample answers in previews, and scripts in the HTML part refused at save (422 ``html``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from tests.integration.web.test_follow_ups_api import follow_up, lead, put_template, received_by
from tests.integration.web.test_reports_api import capture
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server, make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.runtime import Runtime

QUESTIONS: list[dict[str, Any]] = [
    {
        "key": "interest",
        "label": {"de": "Interesse", "en": "Interest"},
        "type": "single",
        "options": [
            {"key": "pla", "label": {"de": "Produktlinie A", "en": "Product line A"}},
            {"key": "plb", "label": {"de": "Produktlinie B", "en": "Product line B"}},
        ],
    },
    {
        "key": "topics",
        "label": {"de": "Themen", "en": "Topics"},
        "type": "multi",
        "options": [
            {"key": "mail", "label": {"de": "E-Mail", "en": "Email"}},
            {"key": "crm", "label": {"de": "CRM & Vertrieb", "en": "CRM & sales"}},
        ],
    },
]
TEMPLATE = {
    "subject": "{{ event.name }}: {{ answers.interest }}",
    "text": "{{ questions.interest }}: {{ answers.interest }}\n"
    "{% if answers.interest == 'pla' %}key still matches{% endif %}\n"
    "{{ answers.topics | join(', ') }}\n",
    "html": "<p>{{ questions.topics }}: {{ answers.topics | join(', ') }}</p>",
}


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    started = await start_smtp_server()
    yield started
    await started.close()


async def labeled_event(client: httpx.AsyncClient, org: OrgFixture) -> dict[str, Any]:
    reply = await client.post(
        "/api/v1/events",
        headers=org.headers,
        json={
            "name": "Messe Berlin 2027",
            "languages": ["de", "en"],
            "questions": QUESTIONS,
            "status": "live",
        },
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def part(message: EmailMessage, kind: str) -> str:
    found = message.get_body(preferencelist=(kind,))
    assert isinstance(found, EmailMessage)
    return str(found.get_content())


async def test_a_sent_follow_up_shows_the_event_and_the_labels_of_the_leads_language(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    await configure_server(runtime, org, server.port)
    event = await labeled_event(client, org)
    await put_template(client, org, event["id"], "en", TEMPLATE)
    answers = {"interest": "pla", "topics": ["crm", "mail"]}
    report = await capture(
        client, org.headers, event["id"], lead=lead(language="en"), answers=answers
    )
    reply = await follow_up(client, org.headers, report["id"])
    assert reply.json()["status"] == "queued", reply.text
    await make_worker(runtime, org).run_until_idle()
    [mail] = received_by(server, report["lead"]["email"])

    assert mail["Subject"] == "Messe Berlin 2027: Product line A"
    text = part(mail, "plain")
    assert "Interest: Product line A" in text
    assert "key still matches" in text  # templates written against keys keep working
    assert "CRM & sales, Email" in text
    assert "<p>Topics: CRM &amp; sales, Email</p>" in part(mail, "html")


async def test_the_preview_uses_sample_answers_from_the_events_questions(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await labeled_event(client, org)
    await put_template(client, org, event["id"], "de", TEMPLATE)
    reply = await client.post(
        f"/api/v1/events/{event['id']}/templates/de/preview", headers=org.headers
    )
    assert reply.status_code == 200, reply.text
    preview = reply.json()
    assert preview["subject"] == "Messe Berlin 2027: Produktlinie A"
    assert "Interesse: Produktlinie A" in preview["text"]
    assert "E-Mail, CRM &amp; Vertrieb" in preview["html"]


@pytest.mark.parametrize(
    "html",
    [
        "<p>Hi</p><script>alert(1)</script>",
        "<SCRIPT src='https://x.example/a.js'></SCRIPT>",
        '<a href="javascript:alert(1)">x</a>',
        '<a href="java&#115;cript:alert(1)">x</a>',
        '<img src="x.png" onerror="alert(1)">',
        '<body ONLOAD = "go()">',
    ],
)
async def test_scripts_in_the_html_part_are_refused_at_save(
    client: httpx.AsyncClient, org: OrgFixture, html: str
) -> None:
    event = await labeled_event(client, org)
    reply = await client.put(
        f"/api/v1/events/{event['id']}/templates/en",
        headers=org.headers,
        json={**TEMPLATE, "html": html},
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "html"
    listed = await client.get(f"/api/v1/events/{event['id']}/templates", headers=org.headers)
    assert listed.json() == []
    preview = await client.post(
        f"/api/v1/events/{event['id']}/templates/en/preview",
        headers=org.headers,
        json={"template": {**TEMPLATE, "html": html}},
    )
    assert preview.status_code == 422 and preview.json()["error"]["field"] == "html"


async def test_an_unknown_event_field_is_named_at_save(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await labeled_event(client, org)
    reply = await client.put(
        f"/api/v1/events/{event['id']}/templates/en",
        headers=org.headers,
        json={**TEMPLATE, "subject": "{{ event.start }}"},
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "subject"
