"""Visit reports through the HTTP API, on both databases: capture, validation that stores
nothing, who sees what, updates and revisions, export and check with the trigger hook."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.orgs import OrgFixture, new_member, new_org
from visitmail.domain.errors import InvalidInput
from visitmail.domain.reports import Report, ReportStatus
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services.report_ports import (
    FiredNotification,
    ReportsUnitOfWork,
    ReportTrigger,
)
from visitmail.web.api.reports import report_triggers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


QUESTIONS: list[dict[str, Any]] = [
    {"key": "interest", "label": {"de": "Interesse"}, "type": "text"},
    {"key": "budget", "label": {"de": "Budget"}, "type": "number"},
    {
        "key": "size",
        "label": {"de": "Größe"},
        "type": "single",
        "options": [{"key": "small"}, {"key": "large"}],
    },
    {
        "key": "products",
        "label": {"de": "Produkte"},
        "type": "multi",
        "options": [{"key": "mail"}, {"key": "crm"}],
    },
    {"key": "call_back", "label": {"de": "Rückruf"}, "type": "bool"},
]


async def live_event(
    client: httpx.AsyncClient, org: OrgFixture, status: str = "live"
) -> dict[str, Any]:
    reply = await client.post(
        "/api/v1/events",
        headers=org.headers,
        json={"name": "Fair", "languages": ["de", "en"], "questions": QUESTIONS, "status": status},
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def report_body(event_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event_id,
        "lead": {
            "gender": "female",
            "title": "Dr.",
            "first_name": "Anna",
            "last_name": "Müller",
            "company": "Müller GmbH",
            "position": "CTO",
            "department": "IT",
            "email": "Anna.Mueller@Example.DE",
            "phone": "+49 30 1234",
            "mobile": "+49 170 1234",
            "street": "Hauptstr. 1",
            "zip": "10115",
            "city": "Berlin",
            "state": "Berlin",
            "country": "de",
            "website": "https://example.de",
            "language": "de",
        },
        "answers": {
            "interest": "Mailing",
            "budget": 5000,
            "size": "large",
            "products": ["crm", "mail"],
            "call_back": True,
        },
        "notes": "Met at booth 4.\nWants a demo.",
        "consent": {"follow_up_email": True, "marketing": False},
    }
    body.update(changes)
    return body


async def capture(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: str, **changes: Any
) -> dict[str, Any]:
    reply = await client.post(
        "/api/v1/reports", headers=headers, json=report_body(event_id, **changes)
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def count_reports(client: httpx.AsyncClient, org: OrgFixture) -> int:
    return len((await client.get("/api/v1/reports", headers=org.headers)).json())


async def test_a_reporter_captures_a_report(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    reporter, token = await new_member(runtime, org, Role.REPORTER)
    report = await capture(client, bearer(token), event["id"])

    assert report["status"] == "draft"
    assert report["revision"] == 1
    assert report["captured_by"] == str(reporter.id)
    assert report["reporter"] == {"name": reporter.display_name, "email": reporter.email}
    assert report["lead"]["email"] == "anna.mueller@example.de"
    assert report["lead"]["country"] == "DE"
    assert report["lead"]["gender"] == "female"
    assert report["answers"]["products"] == ["crm", "mail"]
    assert report["consent"] == {"follow_up_email": True, "marketing": False}
    assert report["exported_at"] is None and report["checked_at"] is None

    got = await client.get(f"/api/v1/reports/{report['id']}", headers=bearer(token))
    assert got.status_code == 200 and got.json() == report


@pytest.mark.parametrize(
    ("answers", "path"),
    [
        ({"colour": "red"}, "answers.colour"),
        ({"budget": "a lot"}, "answers.budget"),
        ({"size": "medium"}, "answers.size"),
        ({"products": ["crm", "fax"]}, "answers.products"),
        ({"products": "crm"}, "answers.products"),
        ({"call_back": "yes"}, "answers.call_back"),
        ({"interest": {"nested": 1}}, "answers.interest"),
    ],
)
async def test_wrong_answers_answer_422_and_store_nothing(
    client: httpx.AsyncClient, org: OrgFixture, answers: dict[str, Any], path: str
) -> None:
    event = await live_event(client, org)
    reply = await client.post(
        "/api/v1/reports", headers=org.headers, json=report_body(event["id"], answers=answers)
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == path
    assert await count_reports(client, org) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-address"),
        ("email", "ann@example.com\r\nBcc: victim@example.org"),
        ("country", "Germany"),
        ("country", "XX"),
        ("first_name", "Anna\r\nBcc: victim@example.org"),
        ("last_name", "Mül\nler"),
        ("company", "ACME\x00"),
        ("title", "Dr.\r"),
        ("city", "x" * 201),
        ("language", "deutsch"),
        ("gender", "robot"),
    ],
)
async def test_bad_lead_fields_answer_422_naming_them_and_store_nothing(
    client: httpx.AsyncClient, org: OrgFixture, field: str, value: str
) -> None:
    event = await live_event(client, org)
    body = report_body(event["id"])
    body["lead"][field] = value
    reply = await client.post("/api/v1/reports", headers=org.headers, json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == f"lead.{field}"
    assert await count_reports(client, org) == 0


async def test_malformed_bodies_are_4xx_naming_the_field(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    for body, field in [
        ({"lead": {}}, "event_id"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        (report_body(event["id"], mood="happy"), "mood"),
        (
            report_body(event["id"], consent={"follow_up_email": "perhaps"}),
            "consent.follow_up_email",
        ),
        (report_body(event["id"], lead={"nickname": "Annie"}), "lead.nickname"),
    ]:
        reply = await client.post("/api/v1/reports", headers=org.headers, json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json()["error"]["field"] == field
    broken = await client.post(
        "/api/v1/reports",
        headers={**org.headers, "content-type": "application/json"},
        content=b"{not json",
    )
    assert broken.status_code == 422
    assert await count_reports(client, org) == 0


async def test_an_unknown_or_foreign_event_is_no_such_event(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    other = await new_org(runtime, "Rival")
    foreign = await live_event(client, other)
    for event_id in (foreign["id"], str(uuid.uuid4())):
        reply = await client.post(
            "/api/v1/reports", headers=org.headers, json=report_body(event_id)
        )
        assert reply.status_code == 422
        assert reply.json()["error"]["field"] == "event_id"
        assert reply.json()["error"]["message"] == "no such event"
    assert await count_reports(client, org) == 0
    assert await count_reports(client, other) == 0


async def test_draft_events_take_reports_from_curators_only(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    draft = await live_event(client, org, status="draft")
    _, reporter = await new_member(runtime, org, Role.REPORTER)
    _, curator = await new_member(runtime, org, Role.EVENT_CURATOR)
    refused = await client.post(
        "/api/v1/reports", headers=bearer(reporter), json=report_body(draft["id"])
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "event_id"
    await capture(client, bearer(curator), draft["id"])


async def test_unanswered_questions_and_an_empty_lead_are_fine(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    reply = await client.post(
        "/api/v1/reports",
        headers=org.headers,
        json={"event_id": event["id"], "answers": {"budget": None}, "lead": {"email": None}},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["answers"] == {}
    assert reply.json()["lead"]["email"] == ""
    assert reply.json()["lead"]["gender"] == "unknown"


async def test_who_sees_which_reports(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    second = await live_event(client, org)
    _, ann = await new_member(runtime, org, Role.REPORTER)
    _, bob = await new_member(runtime, org, Role.USER)
    _, curator = await new_member(runtime, org, Role.EVENT_CURATOR)
    anns = await capture(client, bearer(ann), event["id"])
    bobs = await capture(client, bearer(bob), second["id"])

    assert (
        await client.get(f"/api/v1/reports/{bobs['id']}", headers=bearer(ann))
    ).status_code == 404
    put = await client.put(
        f"/api/v1/reports/{bobs['id']}", headers=bearer(ann), json={"notes": "mine now"}
    )
    assert put.status_code == 404
    export = await client.post(f"/api/v1/reports/{bobs['id']}/export", headers=bearer(ann))
    assert export.status_code == 404

    own = await client.get("/api/v1/reports", headers=bearer(ann))
    assert [r["id"] for r in own.json()] == [anns["id"]]
    everyone = await client.get("/api/v1/reports", headers=bearer(curator))
    assert {r["id"] for r in everyone.json()} == {anns["id"], bobs["id"]}
    by_event = await client.get(f"/api/v1/reports?event_id={second['id']}", headers=bearer(curator))
    assert [r["id"] for r in by_event.json()] == [bobs["id"]]
    got = await client.get(f"/api/v1/reports/{anns['id']}", headers=bearer(curator))
    assert got.status_code == 200


async def test_another_organizations_report_is_not_found(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"])
    other = await new_org(runtime, "Rival")
    for method, path, body in [
        ("GET", f"/api/v1/reports/{report['id']}", None),
        ("PUT", f"/api/v1/reports/{report['id']}", {"notes": "stolen"}),
        ("POST", f"/api/v1/reports/{report['id']}/export", None),
        ("POST", f"/api/v1/reports/{report['id']}/check", None),
    ]:
        reply = await client.request(method, path, headers=other.headers, json=body)
        assert reply.status_code == 404, (method, path)
        assert "Müller" not in reply.text
    assert (await client.get("/api/v1/reports", headers=other.headers)).json() == []
    unchanged = await client.get(f"/api/v1/reports/{report['id']}", headers=org.headers)
    assert unchanged.json() == report


async def test_updates_bump_the_revision_and_keep_what_is_left_out(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    _, token = await new_member(runtime, org, Role.REPORTER)
    report = await capture(client, bearer(token), event["id"])
    url = f"/api/v1/reports/{report['id']}"

    notes = await client.put(url, headers=bearer(token), json={"notes": "Call next week"})
    assert notes.status_code == 200, notes.text
    assert notes.json()["revision"] == 2
    assert notes.json()["notes"] == "Call next week"
    assert notes.json()["lead"] == report["lead"]
    assert notes.json()["answers"] == report["answers"]

    full = report_body(event["id"], answers={"size": "small"})
    replaced = await client.put(url, headers=bearer(token), json=full)
    assert replaced.json()["revision"] == 3
    assert replaced.json()["answers"] == {"size": "small"}

    same = await client.put(url, headers=bearer(token), json=full)
    assert same.json()["revision"] == 3  # nothing changed: no new revision

    stale = await client.put(url, headers=bearer(token), json={"revision": 2, "notes": "x"})
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "revision"
    current = await client.put(url, headers=bearer(token), json={"revision": 3, "notes": "x"})
    assert current.json()["revision"] == 4

    other_event = await live_event(client, org)
    moved = await client.put(url, headers=bearer(token), json={"event_id": other_event["id"]})
    assert moved.status_code == 422 and moved.json()["error"]["field"] == "event_id"


async def test_an_invalid_update_changes_nothing(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"])
    url = f"/api/v1/reports/{report['id']}"
    bad_lead = report_body(event["id"])
    bad_lead["lead"]["last_name"] = "X\r\nBcc: a@b.c"
    for body, field in [
        ({"answers": {"budget": "lots"}}, "answers.budget"),
        (bad_lead, "lead.last_name"),
        ({"notes": "a\x00b"}, "notes"),
    ]:
        reply = await client.put(url, headers=org.headers, json=body)
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"]["field"] == field
    assert (await client.get(url, headers=org.headers)).json() == report


async def test_export_and_check(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    _, reporter = await new_member(runtime, org, Role.REPORTER)
    _, curator = await new_member(runtime, org, Role.EVENT_CURATOR)
    report = await capture(client, bearer(reporter), event["id"])
    url = f"/api/v1/reports/{report['id']}"

    refused = await client.post(f"{url}/check", headers=bearer(reporter))
    assert refused.status_code == 403

    exported = await client.post(f"{url}/export", headers=bearer(reporter))
    assert exported.status_code == 200, exported.text
    assert exported.json()["status"] == "exported"
    assert exported.json()["notifications"] == []
    assert exported.json()["exported_at"] is not None
    assert exported.json()["revision"] == 1

    listed = await client.get("/api/v1/reports?status=exported", headers=bearer(curator))
    assert [r["id"] for r in listed.json()] == [report["id"]]

    checked = await client.post(f"{url}/check", headers=bearer(curator))
    assert checked.status_code == 200
    assert checked.json()["status"] == "checked"
    assert checked.json()["notifications"] == []
    assert checked.json()["checked_at"] is not None

    again = await client.post(f"{url}/export", headers=bearer(reporter))
    assert again.status_code == 200
    assert again.json()["status"] == "checked"  # a checked report stays checked
    stored = await client.get(url, headers=bearer(reporter))
    assert stored.json()["status"] == "checked"


class RecordingTriggers:
    """A hook like the notification mapping's: it sees the report with its new status."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[ReportTrigger, ReportStatus]] = []
        self.fail = fail

    async def fired(
        self, uow: ReportsUnitOfWork, report: Report, trigger: ReportTrigger
    ) -> list[FiredNotification]:
        self.calls.append((trigger, report.status))
        if self.fail:
            raise InvalidInput("the mapping could not render", field="mapping")
        return [
            FiredNotification(rule="berlin", kind="email", outbox_id=None, recipients=("a@x.de",))
        ]


@pytest.fixture
def hooked(app: FastAPI) -> Iterator[RecordingTriggers]:
    hook = RecordingTriggers()
    app.dependency_overrides[report_triggers] = lambda: hook
    try:
        yield hook
    finally:
        app.dependency_overrides.pop(report_triggers, None)


async def test_the_trigger_hook_runs_with_the_new_status(
    client: httpx.AsyncClient, org: OrgFixture, hooked: RecordingTriggers
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"])
    exported = await client.post(f"/api/v1/reports/{report['id']}/export", headers=org.headers)
    assert exported.json()["notifications"] == [
        {
            "rule": "berlin",
            "kind": "email",
            "message_id": None,
            "recipients": ["a@x.de"],
            "duplicate": False,
            "error": None,
        }
    ]
    await client.post(f"/api/v1/reports/{report['id']}/check", headers=org.headers)
    assert hooked.calls == [
        (ReportTrigger.EXPORTED, ReportStatus.EXPORTED),
        (ReportTrigger.CHECKED, ReportStatus.CHECKED),
    ]


async def test_a_failing_trigger_leaves_the_status_unchanged(
    client: httpx.AsyncClient, org: OrgFixture, hooked: RecordingTriggers
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"])
    hooked.fail = True
    reply = await client.post(f"/api/v1/reports/{report['id']}/export", headers=org.headers)
    assert reply.status_code == 422 and reply.json()["error"]["field"] == "mapping"
    stored = await client.get(f"/api/v1/reports/{report['id']}", headers=org.headers)
    assert stored.json()["status"] == "draft" and stored.json()["exported_at"] is None


async def test_report_endpoints_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    for path, method in [
        ("/api/v1/reports", "post"),
        ("/api/v1/reports", "get"),
        ("/api/v1/reports/{report_id}", "get"),
        ("/api/v1/reports/{report_id}", "put"),
        ("/api/v1/reports/{report_id}/export", "post"),
        ("/api/v1/reports/{report_id}/check", "post"),
    ]:
        assert paths[path][method]["summary"], (method, path)
    params = {p["name"] for p in paths["/api/v1/reports"]["get"]["parameters"]}
    assert {"event_id", "status"} <= params
