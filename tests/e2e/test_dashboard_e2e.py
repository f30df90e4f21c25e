"""The dashboard's setup checklist in Chromium, on a server of its own (so its organization
is as fresh as after ``make run``): the checklist on the first start, ticking as the admin
sets things up, collapsing to one line when done; the report's PDF link opens a PDF; the
outbox detail shows the message's content; no page is wider than a 1366 px or 390 px
screen."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, api, screenshot, serving
from tests.support.dns_server import DnsTestServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

QUESTIONS = [
    {"key": "budget", "label": {"en": "Budget", "de": "Budget"}, "type": "number"},
    {
        "key": "products",
        "label": {"en": "Products", "de": "Produkte"},
        "type": "multi",
        "options": [
            {"key": "crm", "label": {"en": "CRM link", "de": "CRM-Anbindung"}},
            {"key": "mail", "label": {"en": "Mailing", "de": "Mailing"}},
        ],
    },
]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsTestServer) -> Iterator[Server]:
    """``visitmail serve --dev-inbox`` on a new SQLite database: its first-start
    organization has the dev inbox as its mail server and nothing else."""
    with serving(tmp_path_factory.mktemp("dashboard-e2e"), dns_server) as started:
        yield started


def log_in(browser: Browser, server: Server, width: int, height: int) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.url}/")
    return page


def fits(page: Page, width: int) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} is {overflow}px wider than a {width}px screen"


def done(page: Page, step: str) -> bool:
    return page.locator(f'[data-step="{step}"]').get_attribute("data-done") == "yes"


def test_the_checklist_from_the_first_start_to_set_up(browser: Browser, fresh: Server) -> None:
    page = log_in(browser, fresh, 1366, 768)
    try:
        checklist = page.locator('[data-setup="open"]')
        expect(checklist).to_be_visible()
        expect(checklist).to_contain_text("0 of 5 done")
        # the dev inbox is saved as the mail server, but no test has passed yet
        expect(page.locator('[data-step="smtp"]')).to_contain_text("no connection test passed")
        # the admin follows the step and runs the test on the page, with the saved values
        page.locator('[data-step="smtp"] a').click()
        expect(page).to_have_url(f"{fresh.url}/settings/smtp")
        page.get_by_role("button", name="Test connection").click()
        expect(page.locator("#test-result .result")).to_be_visible(timeout=30_000)
        page.goto(f"{fresh.url}/")
        assert done(page, "smtp")

        event = api(
            fresh,
            "POST",
            "/events",
            {"name": "Fair", "languages": ["en", "de"], "questions": QUESTIONS, "status": "live"},
        )
        page.reload()
        assert done(page, "smtp") and done(page, "event") and not done(page, "template")
        expect(page.locator('[data-setup="open"]')).to_contain_text("2 of 5 done")
        fits(page, 1366)
        path = screenshot(page, "checklist")
        assert path.stat().st_size > 0

        api(
            fresh,
            "PUT",
            f"/events/{event['id']}/templates/en",
            {"subject": "Thanks", "text": "Hello {{ lead.first_name }}"},
        )
        rule = {
            "name": "Sales",
            "event": "*",
            "on": "exported",
            "actions": [
                {
                    "email": {
                        "to": ["team@example.com"],
                        "subject": "Lead: {{ lead.company }}",
                        "body": "New lead from {{ lead.company }}.",
                        "html": "<p>New lead <b>{{ lead.company }}</b></p>",
                        "attach_pdf": True,
                    }
                }
            ],
        }
        api(fresh, "PUT", "/notification-mapping", {"version": 1, "rules": [rule]})
        report = api(
            fresh,
            "POST",
            "/reports",
            {
                "event_id": event["id"],
                "lead": {
                    "first_name": "Anna",
                    "last_name": "Weiß",
                    "company": "Große Straße GmbH",
                    "email": "anna@example.org",
                    "country": "DE",
                },
                "answers": {"budget": 12500, "products": ["crm"]},
                "consent": {"follow_up_email": True, "marketing": False},
            },
        )
        page.reload()
        assert not done(page, "export")
        exported = api(fresh, "POST", f"/reports/{report['id']}/export")
        message_id = exported["notifications"][0]["message_id"]

        page.reload()
        expect(page.locator('[data-setup="done"]')).to_contain_text("visitmail is set up")
        expect(page.locator('[data-setup="open"]')).to_have_count(0)

        # the report: labels, numbers, the PDF link
        page.goto(f"{fresh.url}/reports/{report['id']}")
        expect(page.locator("dl.pairs").last).to_contain_text("CRM link")
        expect(page.locator("dl.pairs").last).to_contain_text("12,500")
        link = page.locator("[data-pdf-link]")
        with page.context.expect_page() as opened:
            link.click()
        tab = opened.value
        assert tab.url.endswith(f"/reports/{report['id']}.pdf")
        pdf = page.request.get(tab.url)
        assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.body().startswith(b"%PDF")
        assert "Grosse-Strasse-GmbH" in pdf.headers["content-disposition"]
        tab.close()

        # the outbox message: its text, HTML frame, PDF attachment and the report link
        page.goto(f"{fresh.url}/outbox/{message_id}")
        expect(page.locator('[data-part="text"]')).to_contain_text("New lead from Große Straße")
        frame = page.frame_locator('iframe[data-part="html"]')
        expect(frame.locator("b")).to_have_text("Große Straße GmbH")
        expect(page.locator('[data-attachment="0"]')).to_contain_text("application/pdf")
        expect(page.locator("[data-report-link]")).to_have_attribute(
            "href", f"/reports/{report['id']}"
        )
        # the worker delivers it to the dev inbox: a sent message offers neither action
        deadline = time.monotonic() + 30
        while "status-sent" not in page.content() and time.monotonic() < deadline:
            time.sleep(0.3)
            page.reload()
        expect(page.locator(".badge.status-sent").first).to_be_visible()
        expect(page.get_by_role("button", name="Retry now")).to_have_count(0)
        expect(page.get_by_text("Cancel message")).to_have_count(0)
    finally:
        page.context.close()
    for width, height in ((1366, 768), (390, 844)):
        _pages_fit(browser, fresh, width, height)


def _pages_fit(browser: Browser, fresh: Server, width: int, height: int) -> None:
    """The dashboard, mail server, report and outbox pages of a set-up organization are no
    wider than the screen (called by the checklist test once it has exported a report, so
    the order of tests on a worker does not matter)."""
    items = api(fresh, "GET", "/reports")
    messages = api(fresh, "GET", "/messages?kind=notification")["items"]
    assert items and messages, "a report was exported"
    page = log_in(browser, fresh, width, height)
    try:
        paths = ["/", "/settings/smtp", f"/reports/{items[0]['id']}"]
        paths.append(f"/outbox/{messages[0]['id']}")
        for path in paths:
            page.goto(f"{fresh.url}{path}")
            assert page.locator("h1").first.is_visible(), path
            fits(page, width)
    finally:
        page.context.close()
