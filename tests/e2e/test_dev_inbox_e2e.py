"""The dev inbox in real Chromium against ``visitmail serve --dev-inbox``: the demo
organization already sends through the local sink; the connection test's message shows up
for its admin; a notification with the report PDF opens in its HTML, text and headers
views, the PDF opens as a PDF, nothing is wider than a laptop's or a phone's screen, and a
second organization's admin sees none of it."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, api, screenshot
from tests.support.processes import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def log_in(page: Page, server: Server, email: str, password: str) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    # logged in: the header has "Log out" (behind the Menu button on a phone)
    expect(page.locator("header form.logout")).to_be_attached()


def fits(page: Page, width: int, what: str) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{what} is {overflow}px wider than a {width}px screen"


def test_the_connection_test_message_arrives_in_the_dev_inbox(page: Page, server: Server) -> None:
    log_in(page, server, server.admin_email, server.admin_password)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Mail server").click()
    expect(page.get_by_label("Port", exact=True)).to_have_value(str(server.dev_inbox_port))
    page.get_by_label("Test recipient (optional)").fill("newcomer@example.org")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator('#test-result li[data-step="send"]')).to_have_class(
        re.compile(r"\bpassed\b"), timeout=30_000
    )

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dev inbox").click()
    row = page.locator("tr", has_text="newcomer@example.org").first
    expect(row).to_be_visible()
    row.get_by_role("link", name="visitmail connection test").click()
    page.get_by_role("link", name="Text", exact=True).click()
    expect(page.locator("pre.mail-text")).to_contain_text("sent by visitmail's SMTP connection")


@pytest.fixture(scope="module")
def notification(server: Server) -> str:
    """A report exported through the API: the mapping sends its notification, with the
    report PDF and an HTML part, through the dev inbox. Its subject."""
    company = f"Inbox {uuid.uuid4().hex[:8]} GmbH"
    api(
        server,
        "PUT",
        "/api/v1/notification-mapping",
        {
            "version": 1,
            "rules": [
                {
                    "name": "Every lead to the sales team, with the PDF",
                    "event": "*",
                    "on": "exported",
                    "actions": [
                        {
                            "email": {
                                "to": ["sales-team@example.com"],
                                "subject": "New lead: {{ lead.company }}",
                                "body": "{{ lead.first_name }} {{ lead.last_name }} "
                                "of {{ lead.company }} visited the booth.",
                                "html": "<h2 style='color:#0a58ca'>New lead</h2><p><b>"
                                "{{ lead.company }}</b> visited the booth.</p>"
                                "<img src='https://tracker.example/open.gif' alt='remote'>",
                                "attach_pdf": True,
                            }
                        }
                    ],
                }
            ],
        },
    )
    event = api(
        server,
        "POST",
        "/api/v1/events",
        {"name": "Inbox Fair", "languages": ["en"], "questions": [], "status": "live"},
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
    return f"New lead: {company}"


def second_admin(server: Server) -> tuple[str, str]:
    email = f"admin-{uuid.uuid4().hex[:6]}@globex.example"
    created = run_cli(
        ["org", "create", f"Globex {email[6:12]}", "--admin-email", email], server.env, server.cwd
    )
    assert created.returncode == 0, created.stderr
    password = re.search(r"password:\s+(\S+)", created.stdout)
    assert password, created.stdout
    return email, password.group(1)


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (390, 844)], ids=["laptop", "phone"])
def test_a_notification_with_its_pdf_in_every_view(
    browser: Browser, server: Server, notification: str, width: int, height: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    loaded: list[str] = []  # remote images that got an answer
    blocked: list[str | None] = []  # how Chromium stopped the others
    page.on("response", lambda r: loaded.append(r.url) if "tracker.example" in r.url else None)
    page.on(
        "requestfailed",
        lambda r: blocked.append(r.failure) if "tracker.example" in r.url else None,
    )
    try:
        log_in(page, server, server.admin_email, server.admin_password)
        page.goto(f"{server.url}/dev-inbox")
        # The in-process worker delivers within seconds; the page shows it on a reload.
        row = page.locator("tr.dev-inbox-mail", has_text=notification)
        deadline = time.monotonic() + 20
        while not row.count() and time.monotonic() < deadline:
            time.sleep(0.5)
            page.reload()
        expect(row).to_be_visible()
        expect(row.locator(".attachment-marker")).to_have_text("1 attachment")
        fits(page, width, "the dev inbox")

        # Search by a word of the body text finds it; a word of nothing finds nothing.
        page.locator("#dev-inbox-search").fill("visited the booth " + notification.split()[-2])
        page.get_by_role("button", name="Search").click()
        expect(page.locator("tr.dev-inbox-mail")).to_have_count(1)
        expect(row).to_be_visible()
        page.locator("#dev-inbox-search").fill("no-such-words-anywhere")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("No message matches the search.")).to_be_visible()
        page.get_by_role("link", name="Show all").click()

        row.get_by_role("link", name=notification).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(notification)
        mail_url = page.url.split("?")[0]
        name = mail_url.rsplit("/", 1)[1]

        # HTML: in the sandboxed frame, without the remote image.
        frame = page.locator("iframe.mail-html")
        expect(frame).to_have_attribute("sandbox", "")
        body = page.frame_locator("iframe.mail-html").locator("body")
        expect(body).to_contain_text("visited the booth")
        expect(body.locator("h2")).to_have_text("New lead")
        fits(page, width, "the HTML view")
        if width == 1366:
            screenshot(page, "dev-inbox")

        page.get_by_role("link", name="Text", exact=True).click()
        expect(page.locator("pre.mail-text")).to_contain_text("Eva Tester of Inbox")
        expect(page.locator("iframe.mail-html")).to_have_count(0)
        fits(page, width, "the text view")

        page.get_by_role("link", name="Headers", exact=True).click()
        headers = page.locator("table.mail-headers")
        expect(headers.locator("tr", has_text="Message-ID")).to_be_visible()
        expect(headers.locator("tr", has_text="Subject")).to_contain_text(notification)
        fits(page, width, "the headers view")

        # The report PDF: opens as a PDF (inline) and downloads, the same bytes.
        item = page.locator(".dev-inbox-attachments li", has_text=".pdf")
        expect(item).to_contain_text("application/pdf")
        href = item.get_by_role("link", name="Open").get_attribute("href")
        assert href
        opened = context.request.get(f"{server.url}{href}")
        assert opened.status == 200
        assert opened.headers["content-type"] == "application/pdf"
        assert opened.headers["content-disposition"].startswith("inline; ")
        assert opened.body().startswith(b"%PDF")
        with page.expect_download() as download:
            item.get_by_role("link", name="Download").click()
        saved = download.value.path()
        assert saved.read_bytes() == opened.body()
        assert download.value.suggested_filename.endswith(".pdf")

        with page.expect_download() as raw:
            page.get_by_role("link", name="Download .eml").click()
        assert b"Message-ID:" in raw.value.path().read_bytes()
        assert loaded == []  # the tracker image never loaded: the frame's policy stopped it
        assert blocked and set(blocked) == {"csp"}

        # A second organization's admin sees none of it, not even by its address.
        other = browser.new_context(viewport={"width": width, "height": height})
        try:
            stranger = other.new_page()
            email, password = second_admin(server)
            log_in(stranger, server, email, password)
            stranger.goto(f"{server.url}/dev-inbox")
            expect(stranger.get_by_role("heading", level=1)).to_have_text("Dev inbox")
            expect(stranger.get_by_text("No mail yet.")).to_be_visible()
            expect(stranger.locator("body")).not_to_contain_text(notification)
            expect(stranger.locator("body")).not_to_contain_text("visitmail connection test")
            fits(stranger, width, "the empty dev inbox")
            for path in ("", "/html", "/raw", href.removeprefix(f"/dev-inbox/{name}")):
                reply = other.request.get(f"{server.url}/dev-inbox/{name}{path}")
                assert reply.status == 404, path
                assert b"%PDF" not in reply.body()
        finally:
            other.close()
    finally:
        context.close()


def test_without_javascript_views_switch_and_a_mail_is_deleted_after_confirming(
    browser: Browser, server: Server, notification: str
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, server, server.admin_email, server.admin_password)
        row = page.locator("tr.dev-inbox-mail", has_text=notification)
        deadline = time.monotonic() + 20
        page.goto(f"{server.url}/dev-inbox")
        while not row.count() and time.monotonic() < deadline:
            time.sleep(0.5)
            page.reload()
        row.get_by_role("link", name=notification).click()
        page.get_by_role("link", name="Text", exact=True).click()
        expect(page.locator("pre.mail-text")).to_contain_text("visited the booth")
        page.get_by_role("link", name="Headers", exact=True).click()
        expect(page.locator("table.mail-headers")).to_contain_text("Message-ID")

        page.get_by_text("Delete this message…").click()  # a <details>: no script needed
        page.get_by_role("button", name="Yes, delete").click()
        expect(page).to_have_url(f"{server.url}/dev-inbox?done=deleted")
        expect(page.get_by_role("status")).to_contain_text("The message was deleted.")
        expect(page.locator("body")).not_to_contain_text(notification)
        page.reload()  # Post/Redirect/Get: a reload repeats nothing
        expect(page.get_by_role("status")).to_contain_text("The message was deleted.")
    finally:
        context.close()
