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
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.conftest import ARTIFACTS, Server, api, screenshot
from tests.e2e.test_login_e2e import log_in

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


def test_admin_builds_a_switch_and_a_condition_with_forms_only(page: Page, server: Server) -> None:
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
    # a choice question's values are whole keys: picking one drops the postcode's "first 1"
    expect(first.get_by_label("Only its first N characters")).to_have_value("1")
    first.get_by_label("Value of the field").select_option(label="Sales region")
    expect(first.get_by_label("Only its first N characters")).to_have_value("")
    expect(first.locator(".b-switch code").first).to_have_text("{{ answers.region }}")
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
    expect(
        first.locator("section.b-case").nth(1).get_by_label("Matches these values")
    ).to_have_value("8, 9")
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
    expect(
        rule(page, 1).get_by_role("group", name="Condition 1").get_by_label("Value")
    ).to_have_value("south")
    edited["rules"][1]["when"] = "answers.budget > 1000 or lead.country == 'AT'"
    edited["rules"].append({"name": "Broken", "event": "*", "on": "exported", "actions": "oops"})
    page.get_by_role("tab", name="JSON (advanced)").click()
    page.get_by_label("Mapping document (JSON)").fill(json.dumps(edited, indent=2))
    page.get_by_role("tab", name="Form").click()
    custom = rule(page, 1).get_by_label("Custom expression")
    expect(custom).to_have_value("answers.budget > 1000 or lead.country == 'AT'")
    expect(rule(page, 2)).to_contain_text("This list of actions has a form the builder cannot show")
    rule(page, 0).get_by_label("Name").fill("Regional teams (renamed)")
    assert builder_document(page) == {
        **edited,
        "rules": [
            {**edited["rules"][0], "name": "Regional teams (renamed)"},
            *edited["rules"][1:],
        ],
    }

    # the saved mapping at work: a Bavarian lead from the north region
    company = f"Builder {uuid.uuid4().hex[:8]} GmbH"
    report = api(
        server,
        "POST",
        "/api/v1/reports",
        {
            "event_id": event["id"],
            "lead": {
                "first_name": "Eva",
                "last_name": "Tester",
                "company": company,
                "zip": "80331",
            },
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
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mapping-builder-390.png"), full_page=True)
    page.get_by_role("link", name="How the rules work").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("How the notification mapping works")
    expect(page.locator("main")).to_contain_text("lead.zip")
    fits(page, 390)
    page.screenshot(path=str(ARTIFACTS / "mapping-help-390.png"), full_page=True)


# --- the condition compiler and parser (JavaScript, run in Chromium) --------------------

TYPES_JS = """(f) => ({'answers.budget': 'number', 'answers.ok': 'bool'})[f] || 'text'"""
LEAD_KEYS = ["zip", "country", "company", "city"]

ROUND_TRIPS: list[tuple[list[dict[str, Any]], str, str]] = [
    (
        [
            {"field": "answers.region", "op": "is", "value": "north"},
            {"field": "lead.country", "op": "is", "value": "DE"},
        ],
        "and",
        "answers.region == 'north' and lead.country == 'DE'",
    ),
    (
        [
            {"field": "answers.region", "op": "is_not", "value": "south"},
            {"field": "answers.budget", "op": "is", "value": "5000"},
            {"field": "answers.ok", "op": "is", "value": "true"},
        ],
        "or",
        "answers.region != 'south' or answers.budget == 5000 or answers.ok == true",
    ),
    (
        [{"field": "lead.country", "op": "one_of", "value": ["DE", "AT", "CH"]}],
        "and",
        "lead.country in ['DE', 'AT', 'CH']",
    ),
    (
        [
            {"field": "answers.topics", "op": "contains", "value": "crm"},
            {"field": "lead.zip", "op": "starts", "value": "8"},
            {"field": "answers.code", "op": "starts", "value": "X"},
        ],
        "and",
        "'crm' in answers.topics and lead.zip.startswith('8') "
        "and (answers.code ~ '').startswith('X')",
    ),
    (
        [
            {"field": "lead.company", "op": "is", "value": "O'Neil \\ Sons"},
            {"field": "answers.notes", "op": "empty", "value": ""},
            {"field": "lead.city", "op": "not_empty", "value": ""},
        ],
        "and",
        "lead.company == 'O\\'Neil \\\\ Sons' and not answers.notes and lead.city",
    ),
]

NOT_READABLE = [
    "answers.budget > 1000",
    "lead.fax == 'x'",
    "lead.zip == '1' and lead.city == 'x' or lead.country == 'DE'",
    "answers.region == 'north' and",
    "lead.zip[:1] == '1'",
    "answers.budget == '5000'",  # a string for a number question: the form would change it
    "answers.region == north",
    "lead.company|upper == 'X'",
    "",
]


def test_the_condition_compiler_and_parser_round_trip(page: Page, server: Server) -> None:
    from visitmail.domain.sandbox import check_expression, evaluate

    log_in(page, server)
    page.goto(f"{server.url}/mapping")
    # the view tabs work from the keyboard too (one tab stop, arrows switch)
    form_tab, json_tab = (
        page.get_by_role("tab", name="Form"),
        page.get_by_role("tab", name="JSON (advanced)"),
    )
    form_tab.focus()
    page.keyboard.press("ArrowRight")
    expect(json_tab).to_be_focused()
    expect(json_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Mapping document (JSON)")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(form_tab).to_be_focused()
    expect(page.locator("#mapping-builder")).to_be_visible()
    for conds, joiner, expected in ROUND_TRIPS:
        compiled = page.evaluate(
            f"([c, j]) => window.VisitmailWhen.compile(c, j, {TYPES_JS})", [conds, joiner]
        )
        assert compiled == expected
        check_expression(compiled)  # the server accepts what the form writes
        parsed = page.evaluate(
            f"(s) => window.VisitmailWhen.parse(s, {TYPES_JS}, {json.dumps(LEAD_KEYS)})", compiled
        )
        assert parsed == {"conds": conds, "joiner": joiner}
    for text in NOT_READABLE:
        parsed = page.evaluate(
            f"(s) => window.VisitmailWhen.parse(s, {TYPES_JS}, {json.dumps(LEAD_KEYS)})", text
        )
        assert parsed is None, text
    assert page.evaluate(
        f"""() => window.VisitmailWhen.parse('answers.region == "north"', {TYPES_JS}, [])"""
    ) == {"conds": [{"field": "answers.region", "op": "is", "value": "north"}], "joiner": "and"}

    # what the form writes means what it says, also for an unanswered question
    context = {"lead": {"zip": "80331", "country": "DE", "company": "X", "city": ""}, "answers": {}}
    starts = "(answers.code ~ '').startswith('X') or lead.zip.startswith('8')"
    assert evaluate(starts, context) is True
    assert evaluate("(answers.code ~ '').startswith('X')", context) is False
    assert evaluate("'crm' in answers.topics", context) is False
    assert evaluate("not answers.notes and not lead.city", context) is True

    switch = "window.VisitmailWhen.parseSwitchValue"
    assert page.evaluate(f"{switch}('{{{{ lead.zip[:1] }}}}', ['zip'])") == {
        "field": "lead.zip",
        "chars": "1",
    }
    assert page.evaluate(f"{switch}('{{{{answers.region}}}}', [])") == {
        "field": "answers.region",
        "chars": "",
    }
    assert page.evaluate(f"{switch}('{{{{ lead.zip|upper }}}}', ['zip'])") is None
    assert page.evaluate(f"{switch}('{{{{ lead.fax }}}}', ['zip'])") is None
    assert (
        page.evaluate("window.VisitmailWhen.compileSwitchValue('lead.zip', '2')")
        == "{{ lead.zip[:2] }}"
    )


def test_problems_of_a_save_show_beside_their_fields_in_the_form(
    page: Page, server: Server
) -> None:
    fair = f"Problem Fair {uuid.uuid4().hex[:6]}"
    api(
        server,
        "POST",
        "/api/v1/events",
        {"name": fair, "languages": ["en"], "questions": [REGION], "status": "live"},
    )
    before = api(server, "GET", "/api/v1/notification-mapping")["revision"]
    log_in(page, server)
    page.goto(f"{server.url}/mapping")
    while page.locator("article.b-rule").count():
        page.get_by_role("button", name="Remove rule 1").click()
    page.get_by_role("button", name="Add a rule").click()
    first = rule(page, 0)
    first.get_by_label("Event").select_option(label=fair)
    first.get_by_label("only when a condition holds").check()
    first.get_by_role("button", name="Write a custom expression").click()
    first.get_by_label("Custom expression").fill("answers.regoin == 'north'")
    page.get_by_role("button", name="Save as new revision").click()

    first = rule(page, 0)
    expect(page.locator("#mapping-problems")).to_contain_text("rules[0].when")
    # the form reads the condition back as a row, its field marked as not a question
    condition = first.get_by_role("group", name="Condition 1")
    expect(condition.get_by_label("Field")).to_have_value("answers.regoin")
    expect(condition.get_by_label("Field").locator("option:checked")).to_have_text(
        "answers.regoin (unknown)"
    )
    beside = first.locator("fieldset.b-conditions > .b-problem")
    expect(beside).to_contain_text('unknown answer "regoin" (did you mean "region"?)')
    expect(beside).to_contain_text(f'the event "{fair}" has region')
    to = first.get_by_label("To", exact=True)
    expect(to).to_have_attribute("aria-invalid", "true")
    expect(
        first.locator(".b-field", has=page.get_by_label("To", exact=True)).locator(".b-problem")
    ).to_contain_text("must not be empty")
    page.locator("#mapping-problems").get_by_role("link", name="rules[0].when").click()
    expect(beside).to_be_focused()
    assert api(server, "GET", "/api/v1/notification-mapping")["revision"] == before

    # fixed in the form: saved
    condition.get_by_label("Field").select_option(label="Sales region")
    condition.get_by_label("Value").select_option(label="North")
    to.fill("north@acme.example")
    page.get_by_role("button", name="Save as new revision").click()
    expect(page.get_by_role("status")).to_contain_text("it is active now")
    saved = api(server, "GET", "/api/v1/notification-mapping")["document"]
    assert saved["rules"][0]["when"] == "answers.region == 'north'"
    condition = rule(page, 0).get_by_role("group", name="Condition 1")
    expect(condition.get_by_label("Value")).to_have_value("north")


def test_without_javascript_the_json_editor_saves(browser: Browser, server: Server) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        log_in(page, server)
        page.goto(f"{server.url}/mapping")
        expect(page.get_by_role("tab", name="Form")).to_be_hidden()
        editor = page.get_by_label("Mapping document (JSON)")
        expect(editor).to_be_visible()
        document = json.loads(editor.input_value())
        document["rules"] = [
            {
                "name": "No-script rule",
                "event": "*",
                "on": "checked",
                "actions": [
                    {"email": {"to": ["desk@acme.example"], "subject": "Checked", "body": "x"}}
                ],
            }
        ]
        editor.fill(json.dumps(document, indent=2))
        page.get_by_role("button", name="Save as new revision").click()
        expect(page.get_by_role("status")).to_contain_text("it is active now")
        stored = api(server, "GET", "/api/v1/notification-mapping")["document"]
        assert stored["rules"][0]["name"] == "No-script rule"
        fits(page, 390)
    finally:
        context.close()
