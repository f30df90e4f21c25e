"""The Notification mapping page, on both databases: the editor with problems at their
paths (the submitted text kept, the active mapping unchanged), new revisions, activate,
the diff, and a dry run that sends nothing. Admin only; CSRF on every form."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx

from tests.integration.web.test_mapping_api import (
    MAPPING_URL,
    capture,
    live_event,
    outbox_count,
    put_mapping,
    regional_mapping,
)
from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.integration.web.test_ui_login import CSRF
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.web.ui.mapping_pages import locate_paths


async def active(client: httpx.AsyncClient, org: OrgFixture) -> dict[str, Any]:
    reply = await client.get(MAPPING_URL, headers=org.headers)
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


async def revisions(client: httpx.AsyncClient, org: OrgFixture) -> list[dict[str, Any]]:
    reply = await client.get(f"{MAPPING_URL}/revisions", headers=org.headers)
    assert reply.status_code == 200
    body: list[dict[str, Any]] = reply.json()
    return body


def csrf_in(page: str) -> str:
    found = CSRF.search(page)
    assert found
    return found.group(1)


def editor_text(page: str) -> str:
    found = re.search(r'<textarea id="mapping-document"[^>]*>(.*?)</textarea>', page, re.S)
    assert found
    return html.unescape(found.group(1))


async def test_the_page_shows_the_active_document_in_the_editor(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await put_mapping(client, org, regional_mapping())
    await log_in_as(client, runtime, org, Role.ADMIN)
    page = await client.get("/mapping")
    assert page.status_code == 200
    assert json.loads(editor_text(page.text)) == regional_mapping()
    assert '<label for="mapping-document">' in page.text
    assert "Revision 1 (active)" in page.text
    assert org.admin.email in page.text  # who saved it


async def test_an_invalid_mapping_shows_every_problem_at_its_path_and_keeps_the_text(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    good = await put_mapping(client, org, regional_mapping())
    await log_in_as(client, runtime, org, Role.ADMIN)
    token = await csrf_of(client, "/mapping")
    bad = regional_mapping({"name": "Broken", "event": "*", "on": "sometimes", "actions": []})
    bad["rules"][0]["switch"]["cases"][1]["actions"][0]["email"]["to"] = ["not an address"]
    text = json.dumps(bad, indent=2, ensure_ascii=False)

    reply = await client.post("/mapping", data={"document": text, "csrf_token": token})
    assert reply.status_code == 422
    assert 'aria-invalid="true" aria-describedby="mapping-problems"' in reply.text
    for path in ("rules[1].on", "rules[0].switch.cases[1].actions[0].email.to[0]"):
        assert f"<code>{path}</code>" in reply.text, path
    lines = locate_paths(text)
    assert f'data-line="{lines["rules[1].on"]}"' in reply.text
    assert f"line {lines['rules[1].on']}" in reply.text
    assert editor_text(reply.text) == text  # the submitted text is kept

    after = await active(client, org)
    assert after["id"] == good["id"] and after["document"] == regional_mapping()
    assert len(await revisions(client, org)) == 1


async def test_an_unknown_answer_is_refused_by_the_page_as_by_the_api(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.ADMIN)
    token = await csrf_of(client, "/mapping")
    document = regional_mapping()
    document["rules"][0]["event"] = event["id"]
    document["rules"][0]["switch"]["value"] = "{{ answers.intrest[:1] }}"
    text = json.dumps(document, indent=2)
    reply = await client.post("/mapping", data={"document": text, "csrf_token": token})
    assert reply.status_code == 422
    assert "<code>rules[0].switch.value</code>" in reply.text
    shown = html.unescape(reply.text)
    assert 'unknown answer "intrest" (did you mean "interest"?)' in shown
    assert 'the event "Hannover Fair" has interest, budget' in shown
    assert editor_text(reply.text) == text
    assert (await active(client, org))["revision"] == 0


async def test_a_json_syntax_error_is_shown_with_its_line(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.ADMIN)
    token = await csrf_of(client, "/mapping")
    text = '{\n  "version": 1,\n  "rules": [\n}\n'
    reply = await client.post("/mapping", data={"document": text, "csrf_token": token})
    assert reply.status_code == 422
    assert "not valid JSON" in reply.text and 'data-line="4"' in reply.text
    assert editor_text(reply.text) == text
    assert (await active(client, org))["revision"] == 0


async def test_saving_a_valid_mapping_creates_a_revision_and_needs_csrf(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.ADMIN)
    token = await csrf_of(client, "/mapping")
    text = json.dumps(regional_mapping(), indent=2)

    refused = await client.post("/mapping", data={"document": text})
    assert refused.status_code == 403
    assert (await active(client, org))["revision"] == 0

    saved = await client.post(
        "/mapping", data={"document": text, "csrf_token": token, "expected_revision": "0"}
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/mapping?saved=1"
    shown = await client.get(saved.headers["location"])
    assert "Saved as revision 1" in shown.text
    after = await active(client, org)
    assert after["revision"] == 1 and after["document"] == regional_mapping()

    same = await client.post("/mapping", data={"document": text, "csrf_token": token})
    assert same.headers["location"] == "/mapping?unchanged=1"
    assert len(await revisions(client, org)) == 1

    other = json.dumps(regional_mapping({**regional_mapping()["rules"][0], "name": "More"}))
    stale = await client.post(
        "/mapping", data={"document": other, "csrf_token": token, "expected_revision": "0"}
    )
    assert stale.status_code == 409  # someone saved meanwhile: the text is kept
    assert "reload and retry" in stale.text and editor_text(stale.text) == other
    assert len(await revisions(client, org)) == 1


async def test_activate_an_older_revision_and_see_the_diff(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    first = await put_mapping(client, org, regional_mapping())
    changed = regional_mapping()
    changed["rules"][0]["name"] = "Regional sales teams"
    await put_mapping(client, org, changed)
    await log_in_as(client, runtime, org, Role.ADMIN)

    view = await client.get("/mapping", params={"view": first["id"]})
    assert view.status_code == 200
    assert (
        '<span class="diff-del">-      &#34;name&#34;: &#34;Regional sales teams&#34;,' in view.text
    )
    assert '<span class="diff-add">+      &#34;name&#34;: &#34;Regional teams&#34;,' in view.text
    # One line per diff line: every line is a block span (app.css `.diff span`), so a
    # newline between the spans as well rendered the diff double-spaced.
    pre = re.search(r'<pre class="diff"[^>]*>(.*?)</pre>', view.text, re.S)
    assert pre is not None
    between = re.sub(r"<span[^>]*>.*?</span>", "", pre.group(1))
    assert between == "", repr(between[:40])
    assert pre.group(1).count("<span") > 3

    token = csrf_in(view.text)
    forged = await client.post(f"/mapping/revisions/{first['id']}/activate")
    assert forged.status_code == 403
    assert (await active(client, org))["revision"] == 2

    done = await client.post(
        f"/mapping/revisions/{first['id']}/activate", data={"csrf_token": token}
    )
    assert done.status_code == 303 and done.headers["location"] == "/mapping?activated=1"
    assert (await active(client, org))["revision"] == 1
    assert "Revision 1 is active now" in (await client.get(done.headers["location"])).text

    missing = await client.post(
        "/mapping/revisions/00000000-0000-0000-0000-000000000000/activate",
        data={"csrf_token": token},
    )
    assert missing.status_code == 404


async def test_dry_run_of_a_stored_report_shows_the_subject_and_sends_nothing(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)
    await put_mapping(client, org, regional_mapping())
    event = await live_event(client, org)
    report = await capture(client, org, event["id"])
    await log_in_as(client, runtime, org, Role.ADMIN)
    page = await client.get("/mapping")
    assert f'<option value="{report["id"]}"' in page.text
    assert "Anna Müller · Müller GmbH" in page.text
    token = csrf_in(page.text)
    before = await outbox_count(client, org)

    refused = await client.post("/mapping/dry-run", data={"report_id": report["id"]})
    assert refused.status_code == 403

    run = await client.post(
        "/mapping/dry-run",
        data={"report_id": report["id"], "trigger": "exported", "csrf_token": token},
    )
    assert run.status_code == 200, run.text
    assert "New lead: Müller GmbH (10115 Berlin)" in run.text
    assert "berlin@acme.example" in run.text
    assert "Sales &lt;sales@example.com&gt;" in run.text
    assert "nothing was sent" in run.text
    assert await outbox_count(client, org) == before


async def test_dry_run_of_the_unsaved_text_against_the_sample_lead(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.ADMIN)
    token = await csrf_of(client, "/mapping")
    text = json.dumps(regional_mapping(), indent=2)
    run = await client.post(
        "/mapping/dry-run",
        data={"document": text, "use_draft": "on", "report_id": "", "csrf_token": token},
    )
    assert run.status_code == 200, run.text
    assert "the unsaved text" in run.text
    assert "New lead: Beispiel GmbH (10115 Berlin)" in run.text
    assert editor_text(run.text) == text  # the unsaved text stays in the editor
    assert (await active(client, org))["revision"] == 0

    broken = await client.post(
        "/mapping/dry-run",
        data={"document": '{"version": 2}', "use_draft": "on", "csrf_token": token},
    )
    assert broken.status_code == 422
    assert 'id="dry-run-error"' in broken.text and "<code>version</code>" in broken.text


async def test_the_builder_gets_the_events_questions_and_the_help_page_explains_the_rules(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.ADMIN)
    page = (await client.get("/mapping")).text
    assert 'href="/mapping/help"' in page and "docs/mapping.md" not in page
    block = re.search(
        r'<script type="application/json" id="mapping-builder-data">(.*?)</script>', page, re.S
    )
    assert block
    data = json.loads(block.group(1))
    (fair,) = [e for e in data["events"] if e["id"] == event["id"]]
    assert fair["name"] == "Hannover Fair"
    products = next(q for q in fair["questions"] if q["key"] == "products")
    assert products["label"] == "Produkte"  # the event's default language, de
    assert products["options"] == [
        {"key": "mail", "label": "Mailing"},
        {"key": "crm", "label": "CRM-Anbindung"},
    ]
    assert {"key": "zip", "label": "Postcode"} in data["lead_fields"]
    assert '<script src="/static/mapping_builder.js" defer></script>' in page
    assert '<textarea id="mapping-document" name="document"' in page  # works without JS

    help_page = await client.get("/mapping/help")
    assert help_page.status_code == 200
    text = " ".join(html.unescape(help_page.text).split())
    assert "How the notification mapping works" in text
    assert "{{ lead.zip }}" in text and "Postcode" in text
    assert "{{ reporter.email }}" in text
    assert "someone checked the report in the dashboard" in text


async def test_only_admins_open_the_mapping_page(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.REPORTER)
    assert (await client.get("/mapping")).status_code == 403
    assert (await client.get("/mapping/help")).status_code == 403
    assert 'href="/mapping"' not in (await client.get("/")).text


def test_locate_paths_finds_lines_of_nested_values() -> None:
    text = '{\n "a": [\n  {"b": 1},\n  2\n ],\n "c": {"d": null}\n}'
    assert locate_paths(text) == {
        "": 1,
        "a": 2,
        "a[0]": 3,
        "a[0].b": 3,
        "a[1]": 4,
        "c": 6,
        "c.d": 6,
    }
    assert locate_paths('{"a": [1, ') == {"": 1, "a": 1, "a[0]": 1, "a[1]": 1}
