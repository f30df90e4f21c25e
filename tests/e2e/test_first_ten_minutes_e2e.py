"""The admin's first ten minutes (issue 12's "Done when"), in Chromium, on a fresh
``visitmail serve --dev-inbox`` of its own, with forms only: no JSON is typed anywhere.

A new admin logs in with the first-start password, reads the setup checklist, changes the
password, runs the mail server's connection test, builds an event with two questions,
writes the English follow-up template (with a media item uploaded on the page), builds a
mapping in the builder (a switch on the ``region`` answer to two colleagues, PDF attached).
The API is used only for what the phone app does (capture a report, export it) and to read
state for assertions. The right colleague's notification arrives in the dev inbox, its PDF
opens, the report's PDF link opens, the checklist is all ticked; a follow-up sent from the
event page (confirmed) arrives with its unsubscribe line. Every page of the path is checked
to be no wider than the screen at 1366 px and then again at 390 px (navigating by the menu
button). A second organization's admin sees none of this mail, not even by its address."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.e2e.conftest import Server, api, open_menu, screenshot, serving
from tests.support.dns_server import DnsTestServer
from tests.support.processes import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

NEW_PASSWORD = "Harbour-Lantern-Quiet-7431"
NORTH, SOUTH = "north-desk@colleagues.example", "south-desk@colleagues.example"
PNG = bytes.fromhex(  # a 1x1 transparent PNG: the media library sniffs real content
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsTestServer) -> Iterator[Server]:
    """A new SQLite database: the first-start organization has only the dev inbox."""
    with serving(tmp_path_factory.mktemp("first-ten-e2e"), dns_server) as started:
        yield started


class Walk:
    """A logged-in page that checks, on every page it is asked about, that nothing is
    wider than the screen, and remembers the paths it has seen."""

    def __init__(self, page: Page, server: Server, width: int) -> None:
        self.page, self.server, self.width = page, server, width
        self.seen: list[str] = []

    def path(self) -> str:
        return urlsplit(self.page.url).path

    def fits(self) -> None:
        page = self.page
        page.wait_for_load_state("load")
        expect(page.locator("h1").first).to_be_visible()
        sizes = page.evaluate(
            "({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
        )
        assert sizes["inner"] == self.width
        assert sizes["scroll"] <= sizes["inner"], (
            f"{page.url} is {sizes['scroll']}px wide on a {self.width}px screen"
        )
        self.seen.append(self.path())

    def go(self, path: str) -> None:
        self.page.goto(f"{self.server.url}{path}")
        self.fits()

    def nav(self, name: str) -> None:
        """Follow a link of the main navigation (behind "Menu" on a phone)."""
        open_menu(self.page)
        self.page.get_by_role("navigation", name="Main").get_by_role(
            "link", name=name, exact=True
        ).click()
        self.fits()


def log_in(context: BrowserContext, server: Server, email: str, password: str) -> Page:
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("load")
    return page


def step(page: Page, key: str) -> Locator:
    return page.locator(f'[data-step="{key}"]')


def wait_for_row(page: Page, row: Locator, seconds: float = 30) -> None:
    """Reload the dev inbox until the in-process worker has delivered the mail."""
    deadline = time.monotonic() + seconds
    while not row.count() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    expect(row.first).to_be_visible()


def test_the_first_ten_minutes_with_forms_only_at_1366_and_390(
    browser: Browser, fresh: Server
) -> None:
    tag = uuid.uuid4().hex[:6]
    fair = f"Hannover Fair {tag}"
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        page = log_in(context, fresh, fresh.admin_email, fresh.admin_password)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        walk = Walk(page, fresh, 1366)
        event_id = _walk_at_1366(walk, fair, tag)
        screens = list(dict.fromkeys(walk.seen))
    finally:
        context.close()
    assert not problems, problems

    # the same pages on a phone, reached through the menu and the pages' links
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = log_in(phone, fresh, fresh.admin_email, NEW_PASSWORD)
        walk = Walk(page, fresh, 390)
        _walk_at_390(walk, event_id, tag)
        missing = [p for p in screens if p not in walk.seen]
        assert not missing, f"visited at 1366 px, not at 390 px: {missing}"
    finally:
        phone.close()

    _second_organization_sees_nothing(browser, fresh, tag)


def _walk_at_1366(walk: Walk, fair: str, tag: str) -> str:
    page, url = walk.page, walk.server.url
    # 1. the dashboard: the checklist ticks only what is true (the dev inbox is saved as the
    # mail server, but no connection test has passed yet)
    expect(page).to_have_url(f"{url}/")
    walk.fits()
    checklist = page.locator('[data-setup="open"]')
    expect(checklist).to_contain_text("0 of 5 done")
    for key in ("smtp", "event", "template", "mapping", "export"):
        expect(step(page, key)).to_have_attribute("data-done", "no")
    expect(step(page, "smtp")).to_contain_text("no connection test passed")

    # the one-time password of the first start is replaced by the admin's own
    open_menu(page)
    page.get_by_role("link", name=walk.server.admin_email).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change your password")
    walk.fits()
    page.get_by_label("Current password").fill(walk.server.admin_password)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_be_visible()
    walk.fits()

    # 2. the mail server: the checklist's link, the connection test with the saved values
    walk.nav("Dashboard")
    step(page, "smtp").get_by_role("link").click()
    expect(page).to_have_url(f"{url}/settings/smtp")
    walk.fits()
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#test-result .result")
    expect(result).to_be_visible(timeout=30_000)
    expect(result).to_have_class("result ok")
    expect(page.locator("#test-result li.step.failed")).to_have_count(0)
    walk.fits()
    walk.nav("Dashboard")
    expect(step(page, "smtp")).to_have_attribute("data-done", "yes")
    expect(checklist).to_contain_text("1 of 5 done")

    # 3. the event, built with the form fields: languages, dates, two questions
    step(page, "event").get_by_role("link").click()
    walk.fits()
    if walk.path() != "/events/new":  # the step may lead to the list with its "New" link
        page.get_by_role("link", name=re.compile("new event", re.I)).first.click()
        walk.fits()
    expect(page).to_have_url(f"{url}/events/new")
    page.locator("#event-name").fill(fair)
    page.locator("#event-languages").fill("de, en")
    page.locator("#event-starts-on").fill("2027-04-12")
    page.locator("#event-ends-on").fill("2027-04-16")
    page.get_by_role("button", name="Add a question", exact=True).click()
    region = page.locator("fieldset.q-item").nth(0)
    region.locator(":scope > .q-labels").get_by_label("Label (de, default)").fill("Region")
    region.locator(":scope > .q-labels").get_by_label("Label (en)").fill("Sales region")
    expect(region.locator(":scope > .q-key").get_by_label("Key")).to_have_value("region")
    region.locator(":scope > .q-type").get_by_label("Type").select_option(
        label="One choice of a list"
    )
    options = region.locator("li.q-option")
    for n, (key, de, en) in enumerate([("north", "Nord", "North"), ("south", "Süd", "South")]):
        if n:
            page.get_by_role("button", name="Add an option to question 1").click()
        options.nth(n).get_by_label("Label (de, default)").fill(de)
        options.nth(n).get_by_label("Label (en)").fill(en)
        options.nth(n).get_by_label("Key").fill(key)
    page.get_by_role("button", name="Add a question", exact=True).click()
    topic = page.locator("fieldset.q-item").nth(1)
    topic.locator(":scope > .q-labels").get_by_label("Label (de, default)").fill("Thema")
    topic.locator(":scope > .q-labels").get_by_label("Label (en)").fill("Topic")
    walk.fits()
    page.get_by_role("button", name="Create the event").click()
    expect(page.get_by_role("status")).to_contain_text("The event was created.")
    walk.fits()
    event_id = urlsplit(page.url).path.split("/")[2]
    stored = api(walk.server, "GET", f"/events/{event_id}")
    assert stored["languages"] == ["de", "en"]
    assert (stored["starts_on"], stored["ends_on"]) == ("2027-04-12", "2027-04-16")
    assert [q["key"] for q in stored["questions"]] == ["region", "thema"]
    assert stored["questions"][0]["options"] == [
        {"key": "north", "label": {"de": "Nord", "en": "North"}},
        {"key": "south", "label": {"de": "Süd", "en": "South"}},
    ]

    # … and made live on its edit page
    page.get_by_role("link", name="Edit the event").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit event")
    walk.fits()
    page.locator("#event-status").select_option("live")
    page.get_by_role("button", name="Save the event").click()
    expect(page.get_by_role("status")).to_contain_text("The event was saved.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("live")
    walk.fits()

    # 4. a media item uploaded on the page, and the English follow-up template using it
    page.locator("#media-file").set_input_files(
        {"name": "booth-plan.png", "mimeType": "image/png", "buffer": PNG}
    )
    page.locator("#media-title").fill("Booth plan")
    page.get_by_role("button", name="Upload").click()
    walk.fits()
    template = page.locator("#template-en")
    template.get_by_label("Subject").fill("Thank you for visiting us at {{ event.name }}")
    template.get_by_label("Text").fill(
        "{{ salutation }},\n\nthank you for your interest in {{ answers.thema }}."
    )
    template.get_by_label("Booth plan").check()
    template.get_by_role("button", name="Save the en template").click()
    walk.fits()
    saved = api(walk.server, "GET", f"/events/{event_id}/templates/en")
    assert saved["subject"] == "Thank you for visiting us at {{ event.name }}"
    assert len(saved["attachments"]) == 1

    # 5. the mapping, in the builder: on export of this event, a switch on the region answer
    walk.nav("Dashboard")
    expect(checklist).to_contain_text("3 of 5 done")
    step(page, "mapping").get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"{url}/mapping"))
    walk.fits()
    expect(page.get_by_role("tab", name="Form")).to_have_attribute("aria-selected", "true")
    page.get_by_role("link", name="How the rules work").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("How the notification mapping works")
    walk.fits()
    page.go_back()
    walk.fits()
    while page.locator("article.b-rule").count():  # a first start may offer an example
        page.get_by_role("button", name="Remove rule 1").click()
    page.get_by_role("button", name="Add a rule").click()
    rule = page.locator("article.b-rule").nth(0)
    rule.get_by_label("Name").fill("Regional desks")
    rule.get_by_label("Event").select_option(label=fair)
    rule.get_by_label("the report is exported from the app").check()
    rule.get_by_label("a switch: pick the recipients by a field's value").check()
    rule.get_by_label("Value of the field").select_option("answers.region")
    expect(rule.get_by_label("Only its first N characters")).to_have_value("")
    for n, (key, desk) in enumerate([("north", NORTH), ("south", SOUTH)]):
        if n:
            rule.get_by_role("button", name="Add a case").click()
        case = rule.locator("section.b-case").nth(n)
        case.get_by_label("Matches these values").fill(key)
        case.get_by_label("To", exact=True).fill(desk)
        case.get_by_label("Subject", exact=True).fill(f"{key.title()}: ")
        case.get_by_label("Subject", exact=True).press("End")
        case.get_by_label("Insert placeholder", exact=True).select_option(label="Company")
        case.get_by_label("Attach the report as a PDF").check()
    page.get_by_role("button", name="Save as new revision").click()
    expect(page.get_by_role("status")).to_contain_text("it is active now")
    walk.fits()
    document = api(walk.server, "GET", "/notification-mapping")["document"]
    (saved_rule,) = document["rules"]
    assert saved_rule["event"] == event_id and saved_rule["on"] == "exported"
    assert saved_rule["switch"]["value"] == "{{ answers.region }}"
    cases = saved_rule["switch"]["cases"]
    assert [c["match"] for c in cases] == [["north"], ["south"]]
    assert [c["actions"][0]["email"]["to"] for c in cases] == [[NORTH], [SOUTH]]
    assert all(c["actions"][0]["email"]["attach_pdf"] is True for c in cases)
    page.locator("#mapping-builder").scroll_into_view_if_needed()
    screenshot(page, "first-ten-mapping-builder")

    # 6. the phone app captures a lead from the south and exports the report
    company = f"Südwind {tag} GmbH"
    report = api(
        walk.server,
        "POST",
        "/reports",
        {
            "event_id": event_id,
            "lead": {
                "gender": "female",
                "first_name": "Erika",
                "last_name": f"Sommer{tag}",
                "company": company,
                "email": f"erika-{tag}@lead.example",
                "language": "en",
            },
            "answers": {"region": "south", "thema": "Mail routing"},
            "consent": {"follow_up_email": True, "marketing": False},
        },
    )
    exported = api(walk.server, "POST", f"/reports/{report['id']}/export")
    assert [n["recipients"] for n in exported["notifications"]] == [[SOUTH]]

    walk.nav("Dev inbox")
    row = page.locator("tr.dev-inbox-mail", has_text=f"South: {company}")
    wait_for_row(page, row)
    walk.fits()
    expect(row).to_contain_text(SOUTH)
    expect(row.locator(".attachment-marker")).to_have_text("1 attachment")
    expect(page.locator("tr.dev-inbox-mail", has_text=NORTH)).to_have_count(0)
    screenshot(page, "first-ten-dev-inbox")
    row.get_by_role("link", name=f"South: {company}").click()
    walk.fits()
    item = page.locator(".dev-inbox-attachments li", has_text=".pdf")
    href = item.get_by_role("link", name="Open").get_attribute("href")
    assert href
    pdf = page.context.request.get(f"{url}{href}")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")

    # the report, found in the list: its PDF link opens the PDF
    walk.nav("Reports")
    page.get_by_role("link", name=re.compile(f"Sommer{tag}")).first.click()
    expect(page).to_have_url(f"{url}/reports/{report['id']}")
    walk.fits()
    expect(page.locator("main")).to_contain_text("South")  # the answer with its label
    with page.context.expect_page() as opened:
        page.locator("[data-pdf-link]").click()
    tab = opened.value
    assert urlsplit(tab.url).path == f"/reports/{report['id']}.pdf"
    pdf = page.context.request.get(tab.url)
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    tab.close()

    # the outbox: the notification's detail with its PDF and the report link
    walk.nav("Outbox")
    page.locator("table.outbox-list tr", has_text="South:").locator("td a").first.click()
    walk.fits()
    expect(page.locator('[data-attachment="0"]')).to_contain_text("application/pdf")
    expect(page.locator("[data-report-link]")).to_have_attribute("href", f"/reports/{report['id']}")

    # every step of the checklist is ticked: it folds into one line
    walk.nav("Dashboard")
    expect(page.locator('[data-setup="done"]')).to_contain_text("visitmail is set up")
    expect(page.locator('[data-setup="open"]')).to_have_count(0)
    screenshot(page, "first-ten-checklist")

    # 7. the follow-up from the event page: chosen, confirmed, delivered with its unsubscribe
    walk.nav("Events")
    page.get_by_role("link", name=fair).click()
    walk.fits()
    page.get_by_label("Select all").check()
    expect(page.locator(".pick-count")).to_have_text("1 of 1 selected")
    page.get_by_role("button", name="Send follow-ups").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send follow-ups?")
    expect(page.locator("#confirm-heading")).to_have_text("The chosen lead will be mailed")
    walk.fits()
    walk.seen.append("(bulk confirmation)")
    page.get_by_role("button", name=re.compile(r"^Mail 1 lead")).click()
    page.wait_for_url(f"**/events/{event_id}?result=*#bulk-result")
    expect(page.locator("#bulk-result").get_by_role("heading")).to_contain_text("1 follow-up")
    expect(page.locator(f'#bulk-result tr[data-report="{report["id"]}"] .outcome')).to_have_text(
        "Queued"
    )
    walk.fits()
    walk.nav("Dev inbox")
    subject = f"Thank you for visiting us at {fair}"
    follow_up = page.locator("tr.dev-inbox-mail", has_text=subject)
    wait_for_row(page, follow_up)
    expect(follow_up).to_contain_text(f"erika-{tag}@lead.example")
    follow_up.get_by_role("link", name=subject).click()
    walk.fits()
    page.get_by_role("link", name="Text", exact=True).click()
    text = page.locator("pre.mail-text")
    expect(text).to_contain_text("thank you for your interest in Mail routing")
    expect(text).to_contain_text("Unsubscribe:")
    expect(text).to_contain_text("/unsubscribe/")
    walk.fits()
    expect(page.locator(".dev-inbox-attachments")).to_contain_text("booth-plan.png")
    return event_id


def _walk_at_390(walk: Walk, event_id: str, tag: str) -> None:
    """The pages of the first walk on a phone, on the data it created."""
    page, url = walk.page, walk.server.url
    expect(page).to_have_url(f"{url}/")
    walk.fits()
    expect(page.locator('[data-setup="done"]')).to_be_visible()
    open_menu(page)
    page.get_by_role("link", name=walk.server.admin_email).click()
    walk.fits()

    walk.nav("Mail server")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result .result")).to_have_class("result ok", timeout=30_000)
    walk.fits()

    walk.nav("Events")
    page.get_by_role("link", name=re.compile("new event", re.I)).first.click()
    page.get_by_role("button", name="Add a question", exact=True).click()
    page.locator("fieldset.q-item").nth(0).locator(":scope > .q-type").get_by_label(
        "Type"
    ).select_option(label="One choice of a list")
    walk.fits()
    walk.nav("Events")
    page.locator("table.events-list td a", has_text="Hannover Fair").first.click()
    walk.fits()
    expect(page.locator("#template-en").get_by_label("Subject")).to_have_value(
        "Thank you for visiting us at {{ event.name }}"
    )
    page.get_by_role("link", name="Edit the event").click()
    walk.fits()
    expect(page.locator("fieldset.q-item").nth(0).locator("li.q-option")).to_have_count(2)

    # the bulk confirmation (nothing is sent: the admin goes back), then the result page
    page.goto(f"{url}/events/{event_id}")
    page.get_by_label("Select all").check()
    page.get_by_role("button", name="Send follow-ups").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send follow-ups?")
    walk.fits()
    walk.seen.append("(bulk confirmation)")
    page.go_back()
    walk.fits()

    walk.nav("Mapping")
    expect(page.locator("article.b-rule").nth(0).get_by_label("Name")).to_have_value(
        "Regional desks"
    )
    page.get_by_role("link", name="How the rules work").click()
    walk.fits()

    walk.nav("Dev inbox")
    for prefix in ("South:", "Thank you for visiting"):
        walk.nav("Dev inbox")
        page.locator("tr.dev-inbox-mail td a", has_text=prefix).first.click()
        walk.fits()
        page.get_by_role("link", name="Text", exact=True).click()
        walk.fits()

    walk.nav("Reports")
    page.get_by_role("link", name=re.compile(f"Sommer{tag}")).first.click()
    walk.fits()
    expect(page.locator("[data-pdf-link]")).to_be_visible()

    walk.nav("Outbox")
    page.locator("table.outbox-list tr", has_text="South:").locator("td a").first.click()
    walk.fits()


def _second_organization_sees_nothing(browser: Browser, fresh: Server, tag: str) -> None:
    first_mail = [
        urlsplit(href).path
        for href in _first_org_mail_links(browser, fresh)  # read as the first admin
    ]
    assert len(first_mail) >= 2, first_mail  # the notification, the follow-up (and tests)
    email = f"admin-{tag}@second.example"
    created = run_cli(
        ["org", "create", f"Second {tag}", "--admin-email", email, "--admin-name", "Sam Second"],
        fresh.env,
        fresh.cwd,
    )
    assert created.returncode == 0, created.stderr
    password = re.search(r"password:\s+(\S+)", created.stdout)
    assert password, created.stdout
    reports = api(fresh, "GET", "/reports")
    messages = api(fresh, "GET", "/messages")["items"]
    assert reports and messages
    for width, height in ((1366, 768), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            page = log_in(context, fresh, email, password.group(1))
            if urlsplit(page.url).path == "/account/password":  # a one-time password
                page.get_by_label(re.compile("password", re.I)).first.fill(password.group(1))
                page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
                page.get_by_label("New password again").fill(NEW_PASSWORD)
                page.get_by_role("button", name="Change password").click()
            walk = Walk(page, fresh, width)
            walk.nav("Dev inbox")
            expect(page.get_by_text("No mail yet.")).to_be_visible()
            walk.nav("Outbox")
            expect(page.get_by_text("No messages.")).to_be_visible()
            walk.nav("Reports")
            expect(page.get_by_text("No reports yet.")).to_be_visible()
            body = page.locator("body")
            for where in ("/dev-inbox", "/outbox", "/reports"):
                page.goto(f"{fresh.url}{where}")
                expect(body).not_to_contain_text(f"Sommer{tag}")
                expect(body).not_to_contain_text("Hannover Fair")
            # the first organization's mail, report and message by their addresses: 404
            addresses = [
                *first_mail,
                f"/reports/{reports[0]['id']}",
                f"/reports/{reports[0]['id']}.pdf",
                f"/outbox/{messages[0]['id']}",
            ]
            for path in addresses:
                reply = context.request.get(f"{fresh.url}{path}")
                assert reply.status == 404, (path, reply.status)
                assert b"%PDF" not in reply.body() and f"Sommer{tag}" not in reply.text()
        finally:
            context.close()


def _first_org_mail_links(browser: Browser, fresh: Server) -> list[str]:
    context = browser.new_context()
    try:
        page = log_in(context, fresh, fresh.admin_email, NEW_PASSWORD)
        page.goto(f"{fresh.url}/dev-inbox")
        links = page.locator("tr.dev-inbox-mail td a")
        hrefs = links.evaluate_all("links => links.map(a => a.getAttribute('href'))")
        return [h for h in dict.fromkeys(hrefs) if h and re.fullmatch(r"/dev-inbox/[^/?]+", h)]
    finally:
        context.close()
