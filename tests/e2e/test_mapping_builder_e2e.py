"""An admin builds the notification mapping with forms only in real Chromium: a switch on
the postcode's first digit and a condition on an event question; saved, reloaded and seen
in the form again; the JSON view shows the same document, and an edit of the JSON shows in
the form; a report exported through the API reaches the right colleague in the dev inbox.
The builder fits a 390 px screen."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import Server, screenshot
from tests.e2e.test_login_e2e import log_in
from tests.e2e.test_mapping_outbox_e2e import api

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REGION: dict[str, Any] = {
    "key": "region",
    "label": {"en": "Sales region"},
    "type": "single",
    "options": [
        {"key": "north", "label": {"en": "North"}},
        {"key": "south", "label": {"en": "South"}},
    ],
}
BUDGET: dict[str, Any] = {"key": "budget", "label": {"en": "Budget"}, "type": "number"}


def rule(page: Page, index: int) -> Locator:
    return page.locator("article.b-rule").nth(index)


def fits(page: Page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll}px wide on a {width}px screen"


def builder_document(page: Page) -> Any:
    page.get_by_role("tab", name="JSON (advanced)").click()
    editor = page.get_by_label("Mapping document (JSON)")
    expect(editor).to_be_visible()
    document = json.loads(editor.input_value())
    page.get_by_role("tab", name="Form").click()
    return document


def test_admin_builds_a_switch_and_a_condition_with_forms_only(
    page: Page, server: Server
) -> None:
    fair = f"Builder Fair {uuid.uuid4().hex[:6]}"
    event = api(
        server,
        "POST",
        "/api/v1/events",
        {"name": fair, "languages": ["en"], "questions": [REGION, BUDGET], "status": "live"},
    )
    page.set_viewport_size({"width": 1366, "height": 900})
    log_in(page, server)
    page.goto(f"{server.url}/mapping")
    expect(page.get_by_role("tab", name="Form")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Mapping document (JSON)")).to_be_hidden()
    # start from nothing: other tests leave their rules behind
    while page.locator("article.b-rule").count():
        page.get_by_role("button", name="Remove rule 1").click()

    # rule 1: a switch on the postcode's first digit
    page.get_by_role("button", name="Add a rule").click()
    first = rule(page, 0)
    first.get_by_label("Name").fill("Regional teams")
    first.get_by_label("Event").select_option(label=fair)
    first.get_by_label("the report is exported from the app").check()
    first.get_by_label("a switch: pick the recipients by a field's value").check()
    first.get_by_label("Value of the field").select_option(label="Postcode")
    first.get_by_label("Only its first N characters").fill("1")
    case1 = first.locator("section.b-case").nth(0)
    case1.get_by_label("Matches these values").fill("1")
    case1.get_by_label("To", exact=True).fill("berlin@acme.example")
    first.get_by_role("button", name="Add a case").click()
    case2 = first.locator("section.b-case").nth(1)
    case2.get_by_label("Matches these values").fill("8, 9")
    case2.get_by_label("To", exact=True).fill("bavaria@acme.example")
    case2.get_by_label("Subject", exact=True).fill("Bavaria: ")
    case2.get_by_label("Subject", exact=True).press("End")
    case2.get_by_label("Insert placeholder", exact=True).select_option(label="Company")
    expect(case2.get_by_label("Subject", exact=True)).to_have_value("Bavaria: {{ lead.company }}")
    default = first.locator("section.b-case", has_text="Default (no case matches)")
    default.get_by_role("button", name="Add an email to Default actions").click()
    default.get_by_label("To", exact=True).fill("sales@acme.example")

    # rule 2: only when the event's question "Sales region" is North
    page.get_by_role("button", name="Add a rule").click()
    second = rule(page, 1)
    second.get_by_label("Name").fill("North desk")
    second.get_by_label("Event").select_option(label=fair)
    second.get_by_label("only when a condition holds").check()
    condition = second.get_by_role("group", name="Condition 1")
    condition.get_by_label("Field").select_option(label="Sales region")
    condition.get_by_label("Operator").select_option(label="is")
    condition.get_by_label("Value").select_option(label="North")
    second.get_by_label("To", exact=True).fill("north-desk@acme.example, {{ reporter.email }}")
    second.get_by_label("Attach the report as a PDF").check()

    document = builder_document(page)
    assert document["rules"][1]["when"] == "answers.region == 'north'"
    assert document["rules"][0]["switch"]["value"] == "{{ lead.zip[:1] }}"
    page.get_by_role("button", name="Save as new revision").click()
    expect(page.get_by_role("status")).to_contain_text("it is active now")

    # reloaded: the form shows the saved rules; the JSON view is the stored document
    page.reload()
    first, second = rule(page, 0), rule(page, 1)
    expect(first.get_by_label("Name")).to_have_value("Regional teams")
    expect(first.get_by_label("Value of the field")).to_have_value("lead.zip")
    expect(first.get_by_label("Only its first N characters")).to_have_value("1")
    expect(first.locator("section.b-case").nth(1).get_by_label("Matches these values")).to_have_value(
        "8, 9"
    )
    condition = second.get_by_role("group", name="Condition 1")
    expect(condition.get_by_label("Field")).to_have_value("answers.region")
    expect(condition.get_by_label("Value")).to_have_value("north")
    expect(second.get_by_label("To", exact=True)).to_have_value(
        "north-desk@acme.example, {{ reporter.email }}"
    )
    stored = api(server, "GET", "/api/v1/notification-mapping")
    assert builder_document(page) == stored["document"]
    assert stored["document"]["rules"][0]["event"] == event["id"]
    page.locator("#mapping-builder").scroll_into_view_if_needed()
    screenshot(page, "mapping-builder")

    # the JSON edited by hand: the form follows, and what it cannot show is kept
    edited = json.loads(json.dumps(stored["document"]))
    edited["rules"][1]["when"] = "answers.region == 'south'"
    edited["rules"][0]["description"] = "kept though the form has no field for it"
    page.get_by_role("tab", name="JSON (advanced)").click()
    page.get_by_label("Mapping document (JSON)").fill(json.dumps(edited, indent=2))
    page.get_by_role("tab", name="Form").click()
    expect(rule(page, 1).get_by_role("group", name="Condition 1").get_by_label("Value")).to_have_value(
        "south"
    )
    edited["rules"][1]["when"] = "answers.budget > 1000 or lead.country == 'AT'"
    page.get_by_role("tab", name="JSON (advanced)").click()
    page.get_by_label("Mapping document (JSON)").fill(json.dumps(edited, indent=2))
    page.get_by_role("tab", name="Form").click()
    custom = rule(page, 1).get_by_label("Custom expression")
    expect(custom).to_have_value("answers.budget > 1000 or lead.country == 'AT'")
    rule(page, 0).get_by_label("Name").fill("Regional teams (renamed)")
    assert builder_document(page) == {
        **edited,
        "rules": [{**edited["rules"][0], "name": "Regional teams (renamed)"}, edited["rules"][1]],
    }

    # the saved mapping at work: a Bavarian lead from the north region
    company = f"Builder {uuid.uuid4().hex[:8]} GmbH"
    report = api(
        server,
        "POST",
        "/api/v1/reports",
        {
            "event_id": event["id"],
            "lead": {"first_name": "Eva", "last_name": "Tester", "company": company, "zip": "80331"},
            "answers": {"region": "north", "budget": 5000},
        },
    )
    exported = api(server, "POST", f"/api/v1/reports/{report['id']}/export")
    recipients = sorted(r for n in exported["notifications"] for r in n["recipients"])
    assert recipients == ["admin@example.com", "bavaria@acme.example", "north-desk@acme.example"]
    page.goto(f"{server.url}/dev-inbox")
    row = page.locator("tr.dev-inbox-mail", has_text=f"Bavaria: {company}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not row.count():
        time.sleep(0.5)
        page.reload()
    expect(row).to_contain_text("bavaria@acme.example")
    expect(page.locator("tr.dev-inbox-mail", has_text="berlin@acme.example")).to_have_count(0)

    # a phone: the builder and its help fit
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/mapping")
    expect(rule(page, 0).get_by_label("Name")).to_have_value("Regional teams")
    fits(page, 390)
    page.get_by_role("link", name="How the rules work").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("How the notification mapping works")
    expect(page.locator("main")).to_contain_text("lead.zip")
    fits(page, 390)
