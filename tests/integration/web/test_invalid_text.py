"""Issue 10, item 5: a lone surrogate anywhere in a JSON body is a 422 naming the field,
nothing is stored, and the organization's lists keep answering (both databases)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.web.test_reports_api import QUESTIONS, live_event, report_body
from tests.support.orgs import OrgFixture
from visitmail.web.text_guard import find_invalid_text

LONE = "\ud800"


async def send_raw(
    client: httpx.AsyncClient, method: str, url: str, org: OrgFixture, body: Any
) -> httpx.Response:
    # json.dumps escapes the surrogate as \ud800, exactly as a hostile client would send it.
    return await client.request(
        method,
        url,
        headers={**org.headers, "Content-Type": "application/json"},
        content=json.dumps(body).encode(),
    )


def refused(reply: httpx.Response, field: str) -> None:
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_text"
    assert error["field"] == field


async def test_an_answer_and_an_answer_key_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    value = report_body(event["id"], answers={"interest": f"CRM {LONE}"})
    refused(await send_raw(client, "POST", "/api/v1/reports", org, value), "answers.interest")
    key = report_body(event["id"], answers={f"inter{LONE}est": "CRM"})
    refused(await send_raw(client, "POST", "/api/v1/reports", org, key), "answers")
    listed = await client.get("/api/v1/reports", headers=org.headers)
    assert listed.status_code == 200
    assert listed.json() == []


async def test_a_question_label_is_refused_naming_its_path(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    questions = [dict(q) for q in QUESTIONS]
    questions[2] = {**questions[2], "label": {"de": f"Gr{LONE}e"}}
    body = {"name": "Fair", "languages": ["de"], "questions": questions}
    refused(await send_raw(client, "POST", "/api/v1/events", org, body), "questions[2].label.de")
    listed = await client.get("/api/v1/events", headers=org.headers)
    assert listed.status_code == 200
    assert listed.json() == []


async def test_a_mapping_document_is_refused_and_the_active_one_stays(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    before = await client.get("/api/v1/notification-mapping", headers=org.headers)
    document = {
        "rules": [
            {
                "on": "exported",
                "event": "*",
                "actions": [{"type": "email", "to": ["a@example.com"], "subject": LONE}],
            }
        ]
    }
    reply = await send_raw(client, "PUT", "/api/v1/notification-mapping", org, document)
    refused(reply, "rules[0].actions[0].subject")
    after = await client.get("/api/v1/notification-mapping", headers=org.headers)
    assert after.status_code == 200
    assert after.json() == before.json()
    revisions = await client.get("/api/v1/notification-mapping/revisions", headers=org.headers)
    assert revisions.status_code == 200


async def test_a_webhook_secret_is_refused(client: httpx.AsyncClient, org: OrgFixture) -> None:
    body = {"secret": "s" * 40 + LONE}
    reply = await send_raw(client, "PUT", "/api/v1/webhook-secrets/crm", org, body)
    refused(reply, "secret")
    listed = await client.get("/api/v1/webhook-secrets", headers=org.headers)
    assert listed.status_code == 200
    assert listed.json() == []


async def test_well_formed_pairs_and_plain_text_pass(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    body = report_body(event["id"], answers={"interest": "CRM \U0001f600 \u00e4"})
    reply = await send_raw(client, "POST", "/api/v1/reports", org, body)
    assert reply.status_code == 201, reply.text
    assert reply.json()["answers"]["interest"] == "CRM \U0001f600 \u00e4"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"a": [1, {"b": "\udfff"}]}, "a[1].b"),
        (["ok", "\udc00"], "[1]"),
        ("\ud800", "body"),
        ({"\ud800": 1}, "body"),
        ({"x": {"ok": 1, "\udbff": 2}}, "x"),
    ],
)
def test_the_first_offender_is_named_by_its_path(document: Any, field: str) -> None:
    found = find_invalid_text(document)
    assert found is not None
    assert found[0] == field


def test_valid_documents_have_no_offender() -> None:
    assert find_invalid_text({"a": ["\U0001f600", 1, None, {"b": "ü"}]}) is None
