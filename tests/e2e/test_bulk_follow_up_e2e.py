"""The bulk follow-up in real Chromium: "Select all" with its count, the confirmation that
says how many leads will be mailed and who will be skipped and why, the result by lead
name after the redirect (a skip in the warning style, the summary focused), a reload that
sends nothing again (counted through the API), the refusal of a single follow-up on the
report page in the same style, and every page within a 390 px screen."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, api, screenshot
from tests.e2e.test_events_reports_e2e import SUBJECT, TEXT, new_lead
from tests.e2e.test_login_e2e import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

AMBER = "rgb(255, 248, 197)"  # the warning style's background (app.css, .tone-warn)
GREEN = "rgb(218, 251, 225)"


def follow_ups_for(server: Server, report_ids: list[str]) -> int:
    """How many follow-up messages the outbox holds for these reports."""
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = api(server, "GET", f"/api/v1/messages?kind=follow_up&limit=200&offset={offset}")
        items += page["items"]
        if len(page["items"]) < 200:
            break
        offset += 200
    return sum(1 for m in items if any(r in m["idempotency_key"] for r in report_ids))


def fits(page: Page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_select_all_confirm_named_results_and_a_reload_that_sends_nothing(
    page: Page, server: Server
) -> None:
    tag = uuid.uuid4().hex[:6]
    event = api(
        server,
        "POST",
        "/api/v1/events",
        {"name": f"Bulk {tag}", "languages": ["de"], "status": "live", "questions": []},
    )
    api(
        server,
        "PUT",
        f"/api/v1/events/{event['id']}/templates/de",
        {"subject": SUBJECT, "text": TEXT},
    )
    people = [
        ("Anna", f"Adler{tag}", True),
        ("Bernd", f"Berg{tag}", True),
        ("Carla", f"Conrad{tag}", False),
    ]
    reports = [
        api(
            server,
            "POST",
            "/api/v1/reports",
            {
                "event_id": event["id"],
                "lead": new_lead(first_name=first, last_name=last, company=f"{last} GmbH"),
                "consent": {"follow_up_email": consent, "marketing": False},
            },
        )
        for first, last, consent in people
    ]
    ids = [r["id"] for r in reports]
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    log_in(page, server)
    page.goto(f"{server.url}/events/{event['id']}")
    count = page.locator(".pick-count")
    expect(count).to_have_text("0 of 3 selected")
    select_all = page.get_by_label("Select all")
    select_all.check()
    expect(count).to_have_text("3 of 3 selected")
    page.get_by_label(f"Choose Bernd Berg{tag}").uncheck()
    expect(count).to_have_text("2 of 3 selected")
    assert select_all.evaluate("b => b.indeterminate") is True
    select_all.check()
    expect(count).to_have_text("3 of 3 selected")
    for report_id in ids:
        expect(page.locator(f"#pick-{report_id}")).to_be_checked()

    # the confirmation: how many will be mailed, who is skipped and why; nothing sent yet
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name="Send follow-ups").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send follow-ups?")
    expect(page.locator("#confirm-heading")).to_have_text("2 of the 3 chosen leads will be mailed")
    expect(page.locator('[data-skip="no_consent"]')).to_have_text(
        "1 without consent to follow-up emails"
    )
    skipped = page.locator(f'table.bulk-review tr[data-report="{ids[2]}"]')
    expect(skipped).to_contain_text(f"Carla Conrad{tag}")
    expect(skipped.locator(".outcome")).to_have_text(
        "Will be skipped: no consent to follow-up emails"
    )
    fits(page, 390)
    screenshot(page, "bulk-confirm-phone")
    assert follow_ups_for(server, ids) == 0
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("button", name="Mail 2 leads").click()
    page.wait_for_url(f"**/events/{event['id']}?result=*#bulk-result")
    result = page.locator("#bulk-result")
    expect(result).to_be_focused()
    expect(result.get_by_role("heading")).to_have_text("2 follow-ups queued, 1 skipped")
    rows = result.locator("table.bulk-results tbody tr")
    expect(rows).to_have_count(3)
    for (first, last, consent), report_id in zip(people, ids, strict=True):
        row = result.locator(f'tr[data-report="{report_id}"]')
        expect(row).to_contain_text(f"{first} {last}")
        expect(row).to_contain_text(f"{last} GmbH")
        expect(row).not_to_contain_text(report_id)
        outcome = row.locator(".outcome")
        if consent:
            expect(outcome).to_have_text("Queued")
            expect(outcome).to_have_css("background-color", GREEN)
        else:
            expect(outcome).to_have_text("Skipped: no consent to follow-up emails")
            expect(outcome).to_have_class("outcome tone-warn")
            expect(outcome).to_have_css("background-color", AMBER)
    assert follow_ups_for(server, ids) == 2
    expect(page.locator(".progress-text")).to_contain_text("2 of 2 finished", timeout=15_000)

    # a reload shows the result again and sends nothing
    page.reload()
    expect(page.locator("#bulk-result").get_by_role("heading")).to_have_text(
        "2 follow-ups queued, 1 skipped"
    )
    assert follow_ups_for(server, ids) == 2
    result.screenshot(path=str(screenshot(page, "bulk-result").with_name("bulk-result-box.png")))

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator("#bulk-result")).to_be_visible()
    fits(page, 390)
    screenshot(page, "bulk-result-phone")

    # the lead without consent, on its report page: the refusal is a result, in amber
    result.locator(f'tr[data-report="{ids[2]}"]').get_by_role("link").click()
    page.get_by_role("button", name="Send follow-up").click()
    page.wait_for_url(f"**/reports/{ids[2]}?result=*#action-result")
    outcome = page.locator("#fu-heading [data-result]")
    expect(outcome).to_have_text("Skipped: no consent to follow-up emails")
    expect(outcome).to_have_css("background-color", AMBER)
    expect(page.locator("#action-result")).to_have_attribute("data-tone", "warn")
    fits(page, 390)
    screenshot(page, "report-refusal-phone")
    page.reload()
    expect(outcome).to_have_text("Skipped: no consent to follow-up emails")
    assert follow_ups_for(server, ids) == 2
    assert not problems, problems
