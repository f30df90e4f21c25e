"""In real Chromium, at 1366 px and 390 px: the HTML part of a follow-up template previewed
in a sandboxed frame whose policy loads nothing (labels and the event name rendered), a
script in the HTML part refused beside the form, and the unsubscribe page styled like the
app and no wider than the screen."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, api
from tests.e2e.test_login_e2e import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
SIZES = [(1366, 768), (390, 844)]


def labeled_event(server: Server) -> dict[str, Any]:
    event: dict[str, Any] = api(
        server,
        "POST",
        "/api/v1/events",
        {
            "name": f"Expo {uuid.uuid4().hex[:6]}",
            "languages": ["en", "de"],
            "status": "live",
            "questions": [
                {
                    "key": "interest",
                    "label": {"en": "Interest", "de": "Interesse"},
                    "type": "single",
                    "options": [
                        {"key": "pla", "label": {"en": "Product line A", "de": "Produktlinie A"}}
                    ],
                }
            ],
        },
    )
    return event


def overflow(page: Page) -> int:
    width: int = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


@pytest.mark.parametrize(("width", "height"), SIZES, ids=["laptop", "phone"])
def test_html_preview_in_a_sandboxed_frame_and_scripts_refused(
    browser: Browser, server: Server, width: int, height: int
) -> None:
    event = labeled_event(server)
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        log_in(page, server)
        expect(page).to_have_url(f"{server.url}/")
        page.goto(f"{server.url}/events/{event['id']}")
        form = page.locator("#template-en")
        form.get_by_label("Subject").fill("{{ event.name }}")
        form.get_by_label("Text", exact=True).fill("{{ answers.interest }}")
        form.get_by_label("HTML (optional)").fill(
            "<h2>{{ questions.interest }}: {{ answers.interest }}</h2>"
        )
        expect(form.locator(".preview-subject")).to_have_text(event["name"])
        frame_element = form.locator("iframe.preview-html")
        expect(frame_element).to_be_visible()
        assert frame_element.get_attribute("sandbox") == ""
        srcdoc = frame_element.get_attribute("srcdoc") or ""
        assert srcdoc.startswith(
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        )
        inner = form.frame_locator("iframe.preview-html")
        expect(inner.locator("h2")).to_have_text("Interest: Product line A")
        assert overflow(page) <= 1, f"the event page is wider than {width}px"

        form.get_by_label("HTML (optional)").fill('<img src="x" onerror="alert(1)">')
        expect(form.locator(".preview-error")).to_contain_text("html: ")
        expect(form.locator(".preview-output")).to_be_hidden()
        form.get_by_role("button", name="Save the en template").click()
        expect(page.locator("#html-en-error")).to_contain_text("event-handler attributes")
        assert dialogs == []
    finally:
        context.close()


@pytest.mark.parametrize(("width", "height"), SIZES, ids=["laptop", "phone"])
def test_the_unsubscribe_page_is_styled_and_fits(
    browser: Browser, server: Server, width: int, height: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/api/v1/unsubscribe/not-a-token?lang=de")
        expect(page.get_by_role("heading", level=1)).to_have_text("Dieser Link ist ungültig")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(246, 248, 250)"  # app.css loaded: the app's --bg
        assert overflow(page) <= 1
    finally:
        context.close()


def test_placeholders_are_inserted_from_a_list_where_the_cursor_was(
    browser: Browser, server: Server
) -> None:
    event = labeled_event(server)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        log_in(page, server)
        page.goto(f"{server.url}/events/{event['id']}")
        form = page.locator("#template-en")
        subject = form.get_by_label("Subject")
        subject.fill("Your visit: ")
        subject.click()
        subject.press("End")
        picker = form.get_by_label("Insert placeholder")
        picker.select_option(label="Event: name")
        expect(subject).to_have_value("Your visit: {{ event.name }}")
        expect(picker).to_have_value("")  # back to its prompt
        text = form.get_by_label("Text", exact=True)
        text.fill("")
        text.focus()
        picker.select_option(label="Answer: Interest")  # the question's label, not its key
        expect(text).to_have_value("{{ answers.interest }}")
        # The live preview renders what was inserted: the option's label, the event's name.
        expect(form.locator(".preview-subject")).to_have_text(f"Your visit: {event['name']}")
        assert overflow(page) <= 1
    finally:
        context.close()
