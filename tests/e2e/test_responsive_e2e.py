"""Phones, tablets and laptops (issue 12), in Chromium, on a server of its own filled with
real data through the API (an event with its template, a report with long unbreakable
values, its notification in the outbox and the dev inbox, a suppression, one user per
role). For every role, logged in, and logged out: every page reachable from the navigation,
the detail pages linked from the lists, the event forms (new, edit), the mapping's help and
the bulk follow-up's confirmation are no wider than a 390, 768 or 1366 px screen;
up to 800 px the navigation, the account and "Log out" sit behind a "Menu" button that opens
by mouse and keyboard and closes with Escape; at 1366 px there is no such button; on a phone
and a tablet every table cell shows its column's name. Without scripts the links show and the labels are
still there (rendered by the server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, api, screenshot, serving
from tests.support.dns_server import DnsTestServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

WIDTHS = [(390, 844), (768, 1024), (1366, 768)]
PASSWORD = "Responsive-Passw0rd-5521"
ROLES = ["admin", "event_manager", "event_curator", "user", "reporter"]
# Long values without a place to break: they must wrap or scroll inside their own box.
LONG = "Unbreakable" * 6
LONG_DOMAIN = "a-rather-long-subdomain-name-of-the-sender." * 2 + "example.org"
LONG_EMAIL = f"{'lead-with-a-very-long-mailbox-name-' * 2}x@{'subdomain.' * 3}example.org"

# For every table cell: its column header, its label and, on a phone, what ::before shows.
CELLS_JS = """() => [...document.querySelectorAll('main table')].flatMap(table => {
  const head = table.tHead ? table.tHead.rows[table.tHead.rows.length - 1] : null;
  const names = [];
  if (head) for (const th of head.cells)
    for (let i = 0; i < th.colSpan; i++) names.push(th.textContent.replace(/\\s+/g, ' ').trim());
  return [...table.tBodies].flatMap(body => [...body.rows].flatMap(tr => {
    let column = 0;
    return [...tr.cells].map(cell => {
      const out = {
        tag: cell.tagName, header: names[column] || '', label: cell.getAttribute('data-label'),
        before: getComputedStyle(cell, '::before').content,
        rowHeader: !!tr.querySelector('th[scope=row]'),
        table: table.className || '(table)',
      };
      column += cell.colSpan;
      return out;
    });
  }));
})"""


@dataclass(frozen=True)
class Site:
    server: Server
    users: dict[str, str]  # role -> email (the admin is the first-start admin)


def _fill(server: Server) -> dict[str, str]:
    """Real data through the API; returns the email of one new user per role."""
    users = {"admin": server.admin_email}
    for role in ROLES[1:]:
        email = (
            f"{role.replace('_', '-')}-{uuid.uuid4().hex[:6]}@{'long-subdomain.' * 2}example.org"
        )
        api(
            server,
            "POST",
            "/users",
            {"email": email, "role": role, "password": PASSWORD, "display_name": role},
        )
        users[role] = email
    questions: list[dict[str, Any]] = [
        {"key": "budget", "label": {"en": "Budget"}, "type": "number"},
        {
            "key": "products_of_interest_" + "x" * 30,
            "label": {"en": "Products " + LONG},
            "type": "multi",
            "options": [{"key": "crm", "label": {"en": "CRM " + LONG}}],
        },
    ]
    event = api(
        server,
        "POST",
        "/events",
        {"name": "Fair " + LONG, "languages": ["en"], "questions": questions, "status": "live"},
    )
    api(
        server,
        "PUT",
        f"/events/{event['id']}/templates/en",
        {"subject": "Thanks " + LONG, "text": "Hello {{ lead.first_name }}, " + LONG},
    )
    rule = {
        "name": "Every lead to " + LONG,
        "event": "*",
        "on": "exported",
        "actions": [
            {
                "email": {
                    "to": [LONG_EMAIL],
                    "subject": "New lead: {{ lead.company }}",
                    "body": "{{ lead.company }} at {{ lead.email }}: https://example.org/"
                    + LONG * 2,
                    "html": "<p>New lead <b>{{ lead.company }}</b></p>",
                    "attach_pdf": True,
                }
            }
        ],
    }
    api(server, "PUT", "/notification-mapping", {"version": 1, "rules": [rule]})
    # a second revision: the first one's page shows a diff against it
    api(
        server,
        "PUT",
        "/notification-mapping",
        {"version": 1, "rules": [rule, rule | {"name": LONG}]},
    )
    # two DKIM keys: the active one's record and the other's, long unbreakable values
    api(server, "POST", "/smtp-settings/dkim", {"algorithm": "rsa"})
    api(server, "POST", "/smtp-settings/dkim", {"algorithm": "ed25519", "selector": "second"})
    report = api(
        server,
        "POST",
        "/reports",
        {
            "event_id": event["id"],
            "lead": {
                "first_name": "Anna",
                "last_name": LONG,
                "company": LONG + " GmbH",
                "email": LONG_EMAIL,
            },
            "answers": {"budget": 12500, questions[1]["key"]: ["crm"]},
            "consent": {"follow_up_email": True, "marketing": False},
            "notes": "See https://example.org/" + LONG * 3,
        },
    )
    exported = api(server, "POST", f"/reports/{report['id']}/export")
    message_id = exported["notifications"][0]["message_id"]
    api(server, "POST", "/suppressions", {"address": LONG_EMAIL, "note": "Asked " + LONG})
    deadline = time.monotonic() + 30  # the in-process worker delivers to the dev inbox
    while time.monotonic() < deadline:
        if api(server, "GET", f"/messages/{message_id}")["status"] == "sent":
            break
        time.sleep(0.3)
    else:
        pytest.fail("the notification was not delivered to the dev inbox")
    return users


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsTestServer) -> Iterator[Site]:
    """``visitmail serve --dev-inbox`` on a SQLite database of its own (other modules'
    mapping and data stay out of it), filled through the API."""
    with serving(tmp_path_factory.mktemp("responsive-e2e"), dns_server) as server:
        yield Site(server, _fill(server))


def log_in(page: Page, site: Site, role: str) -> None:
    password = site.server.admin_password if role == "admin" else PASSWORD
    page.goto(f"{site.server.url}/login")
    page.get_by_label("Email").fill(site.users[role])
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{site.server.url}/")


def fits(page: Page, width: int) -> None:
    sizes = page.evaluate(
        "({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    assert sizes["inner"] == width
    assert sizes["scroll"] <= sizes["inner"], (
        f"{page.url} is {sizes['scroll']}px wide on a {width}px screen"
    )


def first_href(page: Page, selector: str) -> str | None:
    link = page.locator(selector).first
    return link.get_attribute("href") if link.count() else None


def reachable(page: Page, site: Site) -> list[str]:
    """Every page of the navigation, the account page, and the first detail page linked
    from each list (an event, a report, an outbox message, a dev-inbox mail and its views)."""
    url = site.server.url
    page.goto(f"{url}/")
    nav = page.locator("#site-menu nav a")
    paths = [h for h in nav.evaluate_all("links => links.map(a => a.getAttribute('href'))")]
    paths.append("/account/password")
    details = {
        "/events": "table.events-list td a",
        "/reports": "table.reports-list td a",
        "/outbox": "table.outbox-list td a",
        "/dev-inbox": "tr.dev-inbox-mail td a",
    }
    for listing, selector in details.items():
        if listing not in paths:
            continue
        page.goto(f"{url}{listing}")
        href = first_href(page, selector)
        if href is None:  # a reporter's list holds only their own reports (none here)
            continue
        paths.append(href)
        if listing == "/dev-inbox":
            page.goto(f"{url}{href}")
            tabs = page.locator(".dev-inbox-tabs a")
            paths += [h for h in tabs.evaluate_all("a => a.map(x => x.getAttribute('href'))")]
    if "/events" in paths:  # the event forms, for the roles that may use them
        page.goto(f"{url}/events")
        href = first_href(page, 'a[href="/events/new"]')
        if href:
            paths.append(href)
        page.goto(f"{url}/events")
        event = first_href(page, "table.events-list td a")
        if event:
            page.goto(f"{url}{event}")
            href = first_href(page, "#edit-event-link")
            if href:
                paths.append(href)
    if "/settings/smtp" in paths:  # the sender-domain check's tables (empty zone: errors)
        paths.append(f"/settings/smtp?domain_check=1&domain={LONG_DOMAIN}&selectors=s1+s2")
    if "/mapping" in paths:  # the oldest revision, with its diff against the active one
        page.goto(f"{url}/mapping")
        views = page.locator('a[href^="/mapping?view="]')
        assert views.count() >= 2, "the fixture saved two revisions"
        paths.append(views.last.get_attribute("href") or "")
        paths.append(
            page.get_by_role("link", name="How the rules work").get_attribute("href") or ""
        )
    return list(dict.fromkeys(paths))


def bulk_confirmation(page: Page, site: Site) -> bool:
    """Choose every lead of the first event and ask to send follow-ups: the confirmation
    page (nothing is sent before its button). False where the role has no such form."""
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{site.server.url}/events")
    event = first_href(page, "table.events-list td a")
    if event is None:
        return False
    page.goto(f"{site.server.url}{event}")
    send = page.get_by_role("button", name="Send follow-ups")
    if not send.count():
        return False
    page.get_by_label("Select all").check()
    send.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send follow-ups?")
    return True


def check_menu(page: Page, width: int, email: str) -> None:
    button = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main")
    log_out = page.get_by_role("button", name="Log out")
    account = page.get_by_role("link", name=email)
    if width > 800:
        expect(button).to_be_hidden()
        expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
        expect(log_out).to_be_visible()
        return
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_have_attribute("aria-controls", "site-menu")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_hidden()
    expect(log_out).to_be_hidden()
    button.click()  # by mouse
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
    expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Reports")).to_be_visible()
    expect(log_out).to_be_visible()
    expect(account).to_be_visible()
    fits(page, width)
    page.keyboard.press("Escape")  # closes and gives focus back to the button
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()
    expect(log_out).to_be_hidden()
    page.keyboard.press("Enter")  # by keyboard
    expect(button).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Tab")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_focused()
    button.click()
    expect(button).to_have_attribute("aria-expanded", "false")


def check_labels(page: Page) -> int:
    """On a phone every table cell names its column (its data-label, shown by ::before);
    a cell of a row with its own row header may go without. Returns the cells checked."""
    cells = page.evaluate(CELLS_JS)
    for cell in cells:
        if cell["tag"] != "TD":
            continue
        where = f"{page.url} {cell['table']} column {cell['header']!r}"
        if cell["label"] == "" and cell["rowHeader"]:
            assert cell["before"] in ("none", "normal"), where
            continue
        assert cell["label"], f"{where}: no data-label"
        assert cell["header"].lower().startswith(cell["label"].lower()), (
            f"{where}: labelled {cell['label']!r}"
        )
        assert cell["label"] in cell["before"], f"{where}: shows {cell['before']!r}"
    return len(cells)


@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_phone_tablet_and_laptop(browser: Browser, site: Site, role: str) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        log_in(page, site, role)
        paths = reachable(page, site)
        if role == "admin":
            for must in ("/users", "/settings/smtp", "/mapping", "/suppressions", "/outbox"):
                assert must in paths, paths
            for kind in ("/events/", "/reports/", "/outbox/", "/dev-inbox/"):
                assert any(p.startswith(kind) for p in paths), (kind, paths)
        if role in ("user", "reporter"):
            assert "/users" not in paths and "/outbox" not in paths, paths
            paths.append("/settings/smtp")  # the "only admins" page
        page.goto(f"{site.server.url}/")
        for width, height in WIDTHS:
            page.set_viewport_size({"width": width, "height": height})
            check_menu(page, width, site.users[role])
        labelled = 0
        for path in paths:
            page.goto(f"{site.server.url}{path}")
            expect(page.locator("h1").first).to_be_visible()
            page.evaluate("document.querySelectorAll('main details').forEach(d => d.open = true)")
            for width, height in WIDTHS:
                page.set_viewport_size({"width": width, "height": height})
                fits(page, width)
                if width < 800:  # phones and tablets: rows as cards, cells labelled
                    labelled += check_labels(page)
        if role in ("admin", "event_manager"):
            for must in ("/events/new", "/mapping/help") if role == "admin" else ("/events/new",):
                assert must in paths, paths
            assert any(p.endswith("/edit") for p in paths), paths
        # the bulk follow-up's confirmation (the answer to a POST: reached by its button)
        if bulk_confirmation(page, site):
            for width, height in WIDTHS:
                page.set_viewport_size({"width": width, "height": height})
                fits(page, width)
                if width < 800:
                    labelled += check_labels(page)
        elif role in ("admin", "event_manager"):
            pytest.fail(f"an {role} has no bulk follow-up")
        if role == "admin":
            assert labelled > 20, "the admin's pages have tables with rows"
            # the connection test's steps, with the server's replies, on a phone
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(f"{site.server.url}/settings/smtp")
            page.get_by_role("button", name="Test connection").click()
            expect(page.locator("#test-result .result")).to_be_visible(timeout=30_000)
            fits(page, 390)
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(f"{site.server.url}/outbox")
            status = page.locator("table.outbox-list tbody td").nth(1)
            shown = status.evaluate("td => getComputedStyle(td, '::before').content")
            assert shown.startswith('"Status"'), shown  # (+ empty alt text for readers)
            screenshot(page, "responsive-outbox-390")
            page.get_by_role("button", name="Menu").click()
            screenshot(page, "responsive-menu-390")
    finally:
        context.close()


def test_logged_out_pages_fit_and_have_no_menu(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{site.server.url}/login")
        for width, height in WIDTHS:
            page.set_viewport_size({"width": width, "height": height})
            expect(page.get_by_label("Email")).to_be_visible()
            expect(page.get_by_role("button", name="Menu")).to_have_count(0)
            fits(page, width)
        # a lead's unsubscribe link, broken (a long unbreakable token): its page fits too
        page.goto(f"{site.server.url}/api/v1/unsubscribe/{'x' * 300}")
        expect(page.locator("h1")).to_be_visible()
        for width, height in WIDTHS:
            page.set_viewport_size({"width": width, "height": height})
            fits(page, width)
    finally:
        context.close()


def test_without_scripts_the_links_show_and_the_labels_are_rendered(
    browser: Browser, site: Site
) -> None:
    """The menu button needs its script: without it the button stays hidden and every link
    shows. The pages whose templates are shared with other work (an event, the mapping) get
    their labels from static/tables.js and are left out of the label check."""
    scripted = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        probe = scripted.new_page()
        log_in(probe, site, "admin")
        paths = reachable(probe, site)
    finally:
        scripted.close()
    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, site, "admin")
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Mapping")).to_be_visible()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        checked = 0
        for path in paths:
            page.goto(f"{site.server.url}{path}")
            fits(page, 390)
            if not (path.startswith("/events/") or path.startswith("/mapping")):
                checked += check_labels(page)
        assert checked > 20
    finally:
        context.close()


@pytest.mark.parametrize("width", [1366, 390])
def test_keyboard_focus_is_visible_in_the_header(browser: Browser, site: Site, width: int) -> None:
    """After the skip link, Tab reaches the brand link and then the first link of the
    navigation (1366 px) or the Menu button (390 px), each with a visible outline."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        log_in(page, site, "admin")
        page.wait_for_load_state("load")  # the header's script has run
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")  # the brand
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.textContent.trim()")
        assert focused == ("Dashboard" if width == 1366 else "Menu")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("none", "")
    finally:
        context.close()
