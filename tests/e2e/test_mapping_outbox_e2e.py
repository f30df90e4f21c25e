"""An admin edits the notification mapping in real Chromium (an error shown at its path,
fixed, saved, a dry run), then a report exported through the API becomes a notification
that the Outbox page shows as sent (the in-process worker delivers to the dev inbox)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, api, screenshot
from tests.e2e.test_login_e2e import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def mapping(on: str) -> str:
    document = {
        "version": 1,
        "rules": [
            {
                "name": "Every lead to the sales team",
                "event": "*",
                "on": on,
                "actions": [
                    {
                        "email": {
                            "to": ["sales-team@example.com"],
                            "subject": "New lead: {{ lead.company }}",
                            "body": "{{ lead.first_name }} {{ lead.last_name }} "
                            "of {{ lead.company }} visited the booth.",
                        }
                    }
                ],
            }
        ],
    }
    return json.dumps(document, indent=2)


def test_admin_edits_the_mapping_and_sees_the_notification_sent(page: Page, server: Server) -> None:
    log_in(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Mapping").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notification mapping")
    # the form builder is the default view; the JSON editor is its advanced view, and the
    # page keeps to it (for this browser tab) once chosen
    page.get_by_role("tab", name="JSON (advanced)").click()
    editor = page.get_by_label("Mapping document (JSON)")

    # an error: shown at its path, the text kept, the path link selects its line
    editor.fill(mapping("sometimes"))
    page.get_by_role("button", name="Save as new revision").click()
    problems = page.locator("#mapping-problems")
    expect(problems).to_contain_text("rules[0].on")
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(editor).to_have_value(mapping("sometimes"))
    problems.get_by_role("link", name="rules[0].on").click()
    expect(editor).to_be_focused()
    selected = editor.evaluate("e => e.value.substring(e.selectionStart, e.selectionEnd)")
    assert '"on": "sometimes"' in selected

    # fixed and saved
    editor.fill(mapping("exported"))
    page.get_by_role("button", name="Save as new revision").click()
    expect(page.get_by_role("status")).to_contain_text("it is active now")

    # a dry run against the sample lead: rendered, nothing sent
    page.get_by_label("Report").select_option("")
    page.get_by_role("button", name="Run dry run").click()
    result = page.locator("#dry-run-result")
    expect(result).to_contain_text("New lead: Beispiel GmbH")
    expect(result).to_contain_text("sales-team@example.com")
    expect(page.get_by_role("heading", name="Dry run result")).to_be_focused()
    screenshot(page, "mapping")

    # a report exported through the API produces a notification ...
    company = f"E2E {uuid.uuid4().hex[:8]} GmbH"
    event = api(
        server,
        "POST",
        "/api/v1/events",
        {"name": "E2E Fair", "languages": ["en"], "questions": [], "status": "live"},
    )
    report = api(
        server,
        "POST",
        "/api/v1/reports",
        {
            "event_id": event["id"],
            "lead": {"first_name": "Eva", "last_name": "Tester", "company": company},
        },
    )
    exported = api(server, "POST", f"/api/v1/reports/{report['id']}/export")
    (fired,) = exported["notifications"]
    assert fired["recipients"] == ["sales-team@example.com"]

    # ... that the Outbox page shows as sent
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    row = page.locator("table.outbox-list tr", has_text=f"New lead: {company}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if row.locator(".badge.status-sent").count():
            break
        time.sleep(0.5)
        page.reload()
    expect(row.locator(".badge.status-sent")).to_have_text("sent")
    expect(row).to_contain_text("sales-team@example.com")
    expect(page.locator('[data-status="sent"]')).not_to_have_text("0")
    screenshot(page, "outbox")

    row.get_by_role("link", name=f"New lead: {company}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"New lead: {company}")
    expect(page.get_by_role("cell", name="accepted").first).to_be_visible()
