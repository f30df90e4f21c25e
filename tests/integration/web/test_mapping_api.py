"""The notification mapping through the HTTP API, on both databases: save with validation
of the whole document (every problem with its path), revisions and roll-back, dry runs
that send and store nothing, sandbox escapes refused at save, admin only."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.orgs import OrgFixture, new_member, new_org
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

MAPPING_URL = "/api/v1/notification-mapping"

QUESTIONS: list[dict[str, Any]] = [
    {"key": "interest", "label": {"de": "Interesse", "en": "Interest"}, "type": "text"},
    {"key": "budget", "label": {"de": "Budget", "en": "Budget"}, "type": "number"},
    {
        "key": "products",
        "label": {"de": "Produkte", "en": "Products"},
        "type": "multi",
        "options": [
            {"key": "mail", "label": {"de": "Mailing", "en": "Mailing"}},
            {"key": "crm", "label": {"de": "CRM-Anbindung", "en": "CRM link"}},
        ],
    },
    {"key": "call_back", "label": {"de": "Rückruf", "en": "Call back"}, "type": "bool"},
]


def email(to: list[str], subject: str, body: str, **more: Any) -> dict[str, Any]:
    return {"email": {"to": to, "subject": subject, "body": body, **more}}


def regional_mapping(*extra_rules: dict[str, Any]) -> dict[str, Any]:
    """Berlin (1xxxx) → berlin@, Bavaria (8xxxx, 9xxxx) → bavaria@, else sales@."""
    subject = "New lead: {{ lead.company }} ({{ lead.zip }} {{ lead.city }})"
    body = (
        "{{ salutation }},\n"
        "{{ lead.first_name }} {{ lead.last_name }} of {{ lead.company }} wants "
        "{{ answers.interest }}.\nCaptured by {{ reporter.name }}."
    )
    return {
        "version": 1,
        "rules": [
            {
                "name": "Regional teams",
                "event": "*",
                "on": "exported",
                "switch": {
                    "value": "{{ lead.zip[:1] }}",
                    "cases": [
                        {
                            "match": ["1"],
                            "actions": [
                                email(["berlin@acme.example"], subject, body, attach_pdf=True)
                            ],
                        },
                        {
                            "match": ["8", "9"],
                            "actions": [email(["bavaria@acme.example"], subject, body)],
                        },
                    ],
                    "default": [email(["sales@acme.example"], subject, body)],
                },
            },
            *extra_rules,
        ],
    }


async def live_event(client: httpx.AsyncClient, org: OrgFixture) -> dict[str, Any]:
    reply = await client.post(
        "/api/v1/events",
        headers=org.headers,
        json={
            "name": "Hannover Fair",
            "languages": ["de", "en"],
            "questions": QUESTIONS,
            "status": "live",
        },
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def lead(**changes: str) -> dict[str, str]:
    values = {
        "gender": "female",
        "title": "Dr.",
        "first_name": "Anna",
        "last_name": "Müller",
        "company": "Müller GmbH",
        "email": "anna@mueller.example",
        "zip": "10115",
        "city": "Berlin",
        "country": "DE",
        "language": "de",
    }
    values.update(changes)
    return values


def report_body(event_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event_id,
        "lead": lead(),
        "answers": {
            "interest": "Lead-Routing",
            "budget": 5000,
            "products": ["crm", "mail"],
            "call_back": True,
        },
        "notes": "Met at booth 4.",
        "consent": {"follow_up_email": True, "marketing": False},
    }
    body.update(changes)
    return body


async def capture(
    client: httpx.AsyncClient, org: OrgFixture, event_id: str, **changes: Any
) -> dict[str, Any]:
    reply = await client.post(
        "/api/v1/reports", headers=org.headers, json=report_body(event_id, **changes)
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def put_mapping(
    client: httpx.AsyncClient, org: OrgFixture, document: Any, status: int = 200
) -> dict[str, Any]:
    reply = await client.put(MAPPING_URL, headers=org.headers, json=document)
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def outbox_count(client: httpx.AsyncClient, org: OrgFixture) -> int:
    reply = await client.get("/api/v1/messages", headers=org.headers, params={"limit": 200})
    assert reply.status_code == 200, reply.text
    return len(reply.json()["items"])


def problems(reply: httpx.Response) -> dict[str, str]:
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "mapping_invalid"
    return {d["field"]: d["message"] for d in error["details"]}


# --- reading and saving ------------------------------------------------------------------


async def test_before_the_first_save_the_mapping_is_empty(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.get(MAPPING_URL, headers=org.headers)
    assert reply.status_code == 200
    body = reply.json()
    assert body["revision"] == 0 and body["id"] is None
    assert body["document"] == {"version": 1, "rules": []}
    assert (await client.get(f"{MAPPING_URL}/revisions", headers=org.headers)).json() == []


async def test_a_saved_mapping_is_active_and_stored_as_sent(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    document = regional_mapping()
    saved = await put_mapping(client, org, document)
    assert saved["revision"] == 1 and saved["active"] is True and saved["created"] is True
    assert saved["rules"] == 1
    assert saved["document"] == document

    active = (await client.get(MAPPING_URL, headers=org.headers)).json()
    assert active["id"] == saved["id"]
    assert active["document"] == document


async def test_saving_the_same_document_again_stores_nothing(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    first = await put_mapping(client, org, regional_mapping())
    again = await put_mapping(client, org, regional_mapping())
    assert again["id"] == first["id"] and again["created"] is False
    assert len((await client.get(f"{MAPPING_URL}/revisions", headers=org.headers)).json()) == 1


async def test_an_invalid_mapping_is_refused_with_every_path_and_the_active_one_stays(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    good = await put_mapping(client, org, regional_mapping())
    bad = regional_mapping(
        {"name": "Broken", "event": "not-an-id", "on": "sometimes", "actions": []}
    )
    bad["rules"][0]["switch"]["cases"][0]["match"] = [1]
    bad["rules"][0]["switch"]["cases"][1]["actions"][0]["email"]["to"] = ["not an address"]
    bad["rules"][0]["switch"]["default"][0]["email"]["subject"] = "{{ lead.fax }}"
    bad["rules"][0]["colour"] = "red"

    reply = await client.put(MAPPING_URL, headers=org.headers, json=bad)
    found = problems(reply)
    assert reply.json()["error"]["field"] == next(iter(found))
    assert "must be a string" in found["rules[0].switch.cases[0].match[0]"]
    assert "rules[0].switch.cases[1].actions[0].email.to[0]" in found
    assert "rules[0].switch.default[0].email.subject" in found
    assert "unknown key" in found["rules[0].colour"]
    assert "rules[1].event" in found
    assert "rules[1].on" in found
    assert "rules[1].actions" in found

    active = (await client.get(MAPPING_URL, headers=org.headers)).json()
    assert active["id"] == good["id"] and active["document"] == regional_mapping()
    assert len((await client.get(f"{MAPPING_URL}/revisions", headers=org.headers)).json()) == 1


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ lead.__class__.__init__.__globals__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ lead.company|attr('__class__') }}",
        "{{ self._TemplateReference__context }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
async def test_sandbox_escapes_are_refused_at_save_with_the_path(
    client: httpx.AsyncClient, org: OrgFixture, template: str
) -> None:
    document = regional_mapping()
    document["rules"][0]["switch"]["cases"][0]["actions"][0]["email"]["body"] = template
    reply = await client.put(MAPPING_URL, headers=org.headers, json=document)
    found = problems(reply)
    assert list(found) == ["rules[0].switch.cases[0].actions[0].email.body"], found
    assert (await client.get(MAPPING_URL, headers=org.headers)).json()["revision"] == 0


async def test_a_sandbox_escape_in_an_expression_is_refused(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    document = regional_mapping(
        {
            "name": "Escape",
            "event": "*",
            "on": "checked",
            "when": "lead.__class__.__mro__",
            "actions": [email(["x@acme.example"], "s", "b")],
        }
    )
    assert list(problems(await client.put(MAPPING_URL, headers=org.headers, json=document))) == [
        "rules[1].when"
    ]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"version: 1\nrules: []\n", "application/yaml", 415),
        (b"<mapping/>", "application/xml", 415),
        (b"{not json", "application/json", 422),
        (b'{"version": NaN, "rules": []}', "application/json", 422),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 413),
    ],
)
async def test_only_json_documents_are_accepted(
    client: httpx.AsyncClient, org: OrgFixture, content: bytes, content_type: str, status: int
) -> None:
    reply = await client.put(
        MAPPING_URL, headers={**org.headers, "Content-Type": content_type}, content=content
    )
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"]


async def test_deeply_nested_json_is_refused_not_a_server_error(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    content = b"[" * 30_000 + b"]" * 30_000
    reply = await client.put(
        MAPPING_URL, headers={**org.headers, "Content-Type": "application/json"}, content=content
    )
    assert reply.status_code == 422, reply.text


async def test_documents_that_are_not_objects_are_refused_with_a_message(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    documents: list[Any] = [[], "rules", None, {"version": 2, "rules": {}}]
    for document in documents:
        reply = await client.put(
            MAPPING_URL,
            headers={**org.headers, "Content-Type": "application/json"},
            content=json.dumps(document),
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"]["details"]


async def test_unknown_answers_are_refused_at_save_and_in_a_draft_dry_run(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    document: dict[str, Any] = {
        "version": 1,
        "rules": [
            {
                "name": "Typo",
                "event": event["id"],
                "on": "exported",
                "when": "answers.budgte > 1000",
                "actions": [email(["boss@acme.example"], "{{ answers.intrest }}", "x")],
            },
            {
                "name": "Every event",
                "event": "*",
                "on": "exported",
                "switch": {
                    "value": "{{ answers.regoin }}",
                    "cases": [{"match": ["n"], "actions": []}],
                },
            },
        ],
    }
    found = problems(await client.put(MAPPING_URL, headers=org.headers, json=document))
    assert found == {
        "rules[0].when": 'unknown answer "budgte" (did you mean "budget"?) — the event '
        '"Hannover Fair" has interest, budget, products, call_back',
        "rules[0].actions[0].email.subject": 'unknown answer "intrest" (did you mean '
        '"interest"?) — the event "Hannover Fair" has interest, budget, products, call_back',
        "rules[1].switch.value": 'unknown answer "regoin" — no event of the organization has '
        "it; their questions are interest, budget, products, call_back",
    }
    assert (await client.get(MAPPING_URL, headers=org.headers)).json()["revision"] == 0
    dry = await client.post(
        f"{MAPPING_URL}/dry-run",
        headers=org.headers,
        json={"report": report_body(event["id"]), "document": document},
    )
    assert "rules[0].when" in problems(dry)

    document["rules"][0]["when"] = "answers.budget > 1000"
    document["rules"][0]["actions"][0]["email"]["subject"] = "{{ answers['interest'] }}"
    document["rules"][1]["switch"]["value"] = "{{ answers.get('products') }}"
    saved = await put_mapping(client, org, document)
    assert saved["revision"] == 1


# --- revisions and roll-back ---------------------------------------------------------------


async def test_revisions_are_listed_and_an_older_one_is_reactivated(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    first = await put_mapping(client, org, regional_mapping())
    changed = regional_mapping()
    changed["rules"][0]["name"] = "Regional teams, v2"
    second = await put_mapping(client, org, changed)
    assert second["revision"] == 2

    listed = (await client.get(f"{MAPPING_URL}/revisions", headers=org.headers)).json()
    assert [(r["revision"], r["active"]) for r in listed] == [(2, True), (1, False)]
    assert "document" not in listed[0]

    one = await client.get(f"{MAPPING_URL}/revisions/{first['id']}", headers=org.headers)
    assert one.status_code == 200 and one.json()["document"] == regional_mapping()

    rolled = await client.post(
        f"{MAPPING_URL}/revisions/{first['id']}/activate", headers=org.headers
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["revision"] == 1 and rolled.json()["active"] is True
    active = (await client.get(MAPPING_URL, headers=org.headers)).json()
    assert active["id"] == first["id"]
    assert active["document"]["rules"][0]["name"] == "Regional teams"
    listed = (await client.get(f"{MAPPING_URL}/revisions", headers=org.headers)).json()
    assert [(r["revision"], r["active"]) for r in listed] == [(2, False), (1, True)]

    # saving again continues the numbering
    third = await put_mapping(client, org, regional_mapping(*[]) | {"rules": []})
    assert third["revision"] == 3


async def test_expected_revision_refuses_a_lost_update(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await put_mapping(client, org, regional_mapping())
    reply = await client.put(
        MAPPING_URL,
        headers=org.headers,
        params={"expected_revision": 0},
        json={"version": 1, "rules": []},
    )
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"]["field"] == "revision"
    ok = await client.put(
        MAPPING_URL,
        headers=org.headers,
        params={"expected_revision": 1},
        json={"version": 1, "rules": []},
    )
    assert ok.status_code == 200 and ok.json()["revision"] == 2


async def test_another_organizations_revision_is_not_found(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    other = await new_org(runtime, "Other")
    theirs = await put_mapping(client, other, regional_mapping())
    for reply in (
        await client.get(f"{MAPPING_URL}/revisions/{theirs['id']}", headers=org.headers),
        await client.post(f"{MAPPING_URL}/revisions/{theirs['id']}/activate", headers=org.headers),
        await client.post(f"{MAPPING_URL}/revisions/{uuid.uuid4()}/activate", headers=org.headers),
    ):
        assert reply.status_code == 404, reply.text
    assert (await client.get(MAPPING_URL, headers=org.headers)).json()["revision"] == 0


async def test_only_admins_see_or_change_the_mapping(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await put_mapping(client, org, regional_mapping())
    _, token = await new_member(runtime, org, Role.EVENT_MANAGER)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(MAPPING_URL, headers=headers)).status_code == 403
    assert (
        await client.put(MAPPING_URL, headers=headers, json={"version": 1, "rules": []})
    ).status_code == 403
    assert (await client.get(f"{MAPPING_URL}/revisions", headers=headers)).status_code == 403
    dry = await client.post(
        f"{MAPPING_URL}/dry-run", headers=headers, json={"report": {"lead": lead()}}
    )
    assert dry.status_code == 403
    assert (await client.get(MAPPING_URL)).status_code == 401


# --- dry runs ------------------------------------------------------------------------------


async def test_dry_run_of_a_stored_report_renders_the_email_and_sends_nothing(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await put_mapping(client, org, regional_mapping())
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])
    before = await outbox_count(client, org)

    reply = await client.post(
        f"{MAPPING_URL}/dry-run", headers=org.headers, json={"report_id": report["id"]}
    )
    assert reply.status_code == 200, reply.text
    run = reply.json()
    assert run["revision"] == 1 and run["inline"] is False and run["draft"] is False
    (action,) = run["actions"]
    assert action["kind"] == "email"
    assert action["path"] == "rules[0].switch.cases[0].actions[0]"
    mail = action["email"]
    assert mail["to"] == ["berlin@acme.example"]
    assert mail["subject"] == "New lead: Müller GmbH (10115 Berlin)"
    assert "Anna Müller of Müller GmbH wants Lead-Routing." in mail["text"]
    assert mail["attach_pdf"] is True
    assert mail["attachment"].startswith("report-Muller-GmbH-")
    assert mail["sender"] is None  # no SMTP settings: it would not be queued
    assert mail["reply_to"] == org.admin.email

    assert await outbox_count(client, org) == before
    stored = (await client.get(f"/api/v1/reports/{report['id']}", headers=org.headers)).json()
    assert stored["status"] == "draft"


async def test_dry_run_of_an_inline_report_follows_the_switch(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    await put_mapping(client, org, regional_mapping())
    runs = {}
    for zip_code in ("80331", "90402", "20095", ""):
        reply = await client.post(
            f"{MAPPING_URL}/dry-run",
            headers=org.headers,
            json={"report": {"lead": lead(zip=zip_code, city="X")}},
        )
        assert reply.status_code == 200, reply.text
        runs[zip_code] = reply.json()
        assert runs[zip_code]["inline"] is True
    assert runs["80331"]["actions"][0]["email"]["to"] == ["bavaria@acme.example"]
    assert runs["90402"]["actions"][0]["email"]["to"] == ["bavaria@acme.example"]
    assert runs["20095"]["actions"][0]["email"]["to"] == ["sales@acme.example"]
    assert runs[""]["actions"][0]["path"] == "rules[0].switch.default[0]"
    assert await outbox_count(client, org) == 0


async def test_dry_run_with_a_draft_document_and_the_checked_trigger(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    draft: dict[str, Any] = {
        "version": 1,
        "rules": [
            {
                "name": "Big budget",
                "event": event["id"],
                "on": "checked",
                "when": "answers.budget > 1000",
                "actions": [
                    email(
                        ["boss@acme.example", "{{ reporter.email }}"],
                        "Big: {{ lead.company }}",
                        "{{ answers.budget }}",
                    ),
                    {"webhook": {"url": "https://crm.example/hook", "secret_ref": "crm"}},
                ],
            }
        ],
    }
    body = {
        "report": {
            **report_body(event["id"]),
            "reporter": {"name": "Rita", "email": "rita@acme.example"},
        },
        "document": draft,
    }
    exported = await client.post(f"{MAPPING_URL}/dry-run", headers=org.headers, json=body)
    assert exported.status_code == 200, exported.text
    assert exported.json()["actions"] == []  # a `checked` rule does not fire on export

    checked = await client.post(
        f"{MAPPING_URL}/dry-run", headers=org.headers, json={**body, "trigger": "checked"}
    )
    run = checked.json()
    assert run["draft"] is True and run["revision"] is None
    mail, hook = run["actions"]
    assert mail["email"]["to"] == ["boss@acme.example", "rita@acme.example"]
    assert mail["email"]["text"] == "5000"
    assert hook["kind"] == "webhook"
    assert hook["webhook"]["payload"]["type"] == "report.checked"
    assert hook["webhook"]["payload"]["report"]["lead"]["company"] == "Müller GmbH"
    assert (await client.get(MAPPING_URL, headers=org.headers)).json()["revision"] == 0

    invalid = copy.deepcopy(draft)
    invalid["rules"][0]["on"] = "never"
    assert "rules[0].on" in problems(
        await client.post(
            f"{MAPPING_URL}/dry-run", headers=org.headers, json={**body, "document": invalid}
        )
    )


async def test_dry_run_reports_header_injection_as_a_failed_action(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    document = regional_mapping()
    document["rules"][0]["switch"]["cases"][0]["actions"][0]["email"]["subject"] = (
        "Lead {{ answers.interest }}"
    )
    await put_mapping(client, org, document)
    event = await live_event(client, org)
    inline = report_body(event["id"], answers={"interest": "x\r\nBcc: victim@evil.example"})
    reply = await client.post(
        f"{MAPPING_URL}/dry-run", headers=org.headers, json={"report": inline}
    )
    (action,) = reply.json()["actions"]
    assert action["kind"] == "failed"
    assert action["problems"][0]["field"] == "rules[0].switch.cases[0].actions[0].email.subject"
    assert "line break" in action["problems"][0]["message"]


async def test_dry_run_input_is_validated(client: httpx.AsyncClient, org: OrgFixture) -> None:
    url = f"{MAPPING_URL}/dry-run"
    neither = await client.post(url, headers=org.headers, json={})
    assert neither.status_code == 422 and neither.json()["error"]["field"] == "report"
    unknown = await client.post(url, headers=org.headers, json={"report_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    crlf = await client.post(
        url, headers=org.headers, json={"report": {"lead": lead(company="A\r\nBcc: x@y.example")}}
    )
    assert crlf.status_code == 422
    assert crlf.json()["error"]["field"] == "report.lead.company"
    no_event = await client.post(
        url, headers=org.headers, json={"report": {"event_id": str(uuid.uuid4())}}
    )
    assert no_event.status_code == 422
    assert no_event.json()["error"]["field"] == "report.event_id"
    assert json.dumps(no_event.json())  # plain JSON error
