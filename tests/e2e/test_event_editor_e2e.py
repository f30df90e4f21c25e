"""The questions editor and "Edit event" in real Chromium: an event with two questions (one
single choice with two options labelled in German and English) built with the form fields
only, reordered, saved, reloaded; an option's key error shown beside that option; the
name, status and dates edited; the warning when an answered question is removed; and the
pages fit a 390 px wide screen."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import Server, api, screenshot
from tests.e2e.test_login_e2e import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def question(page: Page, n: int) -> Locator:
    return page.locator("fieldset.q-item").nth(n)


def own(q: Locator, part: str) -> Locator:
    """The question's own field group (not its options')."""
    return q.locator(f":scope > .{part}")


def fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width}px wide"


def test_an_event_is_built_with_the_editor_saved_edited_and_fits_a_phone(
    page: Page, server: Server
) -> None:
    tag = uuid.uuid4().hex[:6]
    log_in(page, server)
    page.goto(f"{server.url}/events/new")
    page.locator("#event-name").fill(f"Editor fair {tag}")
    page.locator("#event-languages").fill("de, en")
    # without errors the JSON view is folded away: the editor is the form
    expect(page.locator("#questions-json")).not_to_have_attribute("open", "")

    page.get_by_role("button", name="Add a question", exact=True).click()
    first = question(page, 0)
    own(first, "q-labels").get_by_label("Label (de, default)").fill("Interesse")
    own(first, "q-labels").get_by_label("Label (en)").fill("Interest")
    expect(own(first, "q-key").get_by_label("Key")).to_have_value("interesse")

    page.get_by_role("button", name="Add a question", exact=True).click()
    second = question(page, 1)
    own(second, "q-labels").get_by_label("Label (de, default)").fill("Firmengröße")
    own(second, "q-labels").get_by_label("Label (en)").fill("Company size")
    expect(own(second, "q-key").get_by_label("Key")).to_have_value("firmengrosse")
    own(second, "q-key").get_by_label("Key").fill("size")
    own(second, "q-type").get_by_label("Type").select_option(label="One choice of a list")
    options = second.locator("li.q-option")
    expect(options).to_have_count(1)  # a choice question starts with one option
    options.nth(0).get_by_label("Label (de, default)").fill("Klein")
    options.nth(0).get_by_label("Label (en)").fill("Small")
    expect(options.nth(0).get_by_label("Key")).to_have_value("klein")
    options.nth(0).get_by_label("Key").fill("small")
    page.get_by_role("button", name="Add an option to question 2").click()
    options.nth(1).get_by_label("Label (de, default)").fill("Groß")
    options.nth(1).get_by_label("Label (en)").fill("Large")
    options.nth(1).get_by_label("Key").fill("large")

    # reorder: the choice question first, its options swapped and swapped back
    page.get_by_role("button", name="Move question 2 up").click()
    expect(own(question(page, 0), "q-key").get_by_label("Key")).to_have_value("size")
    # the keyboard keeps its place: the moved question's other move button has the focus
    expect(page.get_by_role("button", name="Move question 1 down")).to_be_focused()
    page.get_by_role("button", name="Move option 1 of question 1 down").click()
    expect(question(page, 0).locator("li.q-option").nth(0).get_by_label("Key")).to_have_value(
        "large"
    )
    page.get_by_role("button", name="Move option 2 of question 1 up").click()

    # the JSON view follows the editor, and the editor follows the JSON
    page.locator("#questions-json summary").click()
    written = json.loads(page.locator("#event-questions").input_value())
    assert [q["key"] for q in written] == ["size", "interesse"]
    assert written[0]["options"] == [
        {"key": "small", "label": {"de": "Klein", "en": "Small"}},
        {"key": "large", "label": {"de": "Groß", "en": "Large"}},
    ]
    # broken JSON: the editor steps aside and never overwrites what is typed
    page.locator("#event-questions").fill(json.dumps(written)[:-3])
    expect(page.locator("#questions-json-problem")).to_contain_text("not valid")
    expect(page.locator("#questions-editor")).to_be_hidden()
    written[1]["label"]["en"] = "Interests"
    page.locator("#event-questions").fill(json.dumps(written))
    expect(page.locator("#questions-editor")).to_be_visible()
    expect(page.locator("#questions-json-problem")).to_be_hidden()
    expect(own(question(page, 1), "q-labels").get_by_label("Label (en)")).to_have_value("Interests")
    screenshot(page, "event-editor-new")

    page.get_by_role("button", name="Create the event").click()
    expect(page.get_by_role("status")).to_contain_text("The event was created.")
    event_id = page.url.split("/events/")[1].split("?")[0]
    page.reload()
    rows = page.locator("#questions-heading ~ table tbody tr")
    expect(rows.nth(0)).to_contain_text("size")
    expect(rows.nth(0)).to_contain_text("Klein, Groß")
    expect(rows.nth(1)).to_contain_text("interesse")
    stored = api(server, "GET", f"/api/v1/events/{event_id}")
    assert stored["status"] == "draft" and stored["starts_on"] is None
    assert stored["questions"][1]["label"] == {"de": "Interesse", "en": "Interests"}

    # edit: the editor shows what was stored; a bad option key is shown beside that option
    page.get_by_role("link", name="Edit the event").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit event")
    expect(own(question(page, 0), "q-key").get_by_label("Key")).to_have_value("size")
    large = question(page, 0).locator("li.q-option").nth(1)
    expect(large.get_by_label("Label (en)")).to_have_value("Large")
    page.locator("#event-name").fill(f"Editor fair {tag} (edited)")
    page.locator("#event-status").select_option("live")
    page.locator("#event-starts-on").fill("2027-05-12")
    page.locator("#event-ends-on").fill("2027-05-16")
    large.get_by_label("Key").fill("x y")
    page.get_by_role("button", name="Save the event").click()
    bad = question(page, 0).locator("li.q-option").nth(1)
    expect(bad.locator(".q-error")).to_contain_text("must start with a letter")
    expect(bad.get_by_label("Key")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#event-starts-on")).to_have_value("2027-05-12")  # values kept
    expect(page.locator("#event-name")).to_have_value(f"Editor fair {tag} (edited)")
    screenshot(page, "event-editor-error")
    bad.get_by_label("Key").fill("large")
    # a missing label in the default language is shown beside that question's labels
    own(question(page, 1), "q-labels").get_by_label("Label (de, default)").fill("")
    page.get_by_role("button", name="Save the event").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    expect(own(question(page, 1), "q-labels").locator(".q-error")).to_contain_text(
        "needs a label in the default language 'de'"
    )
    expect(question(page, 0).locator(".q-error")).to_have_count(0)
    own(question(page, 1), "q-labels").get_by_label("Label (de, default)").fill("Interesse")
    page.get_by_role("button", name="Save the event").click()
    expect(page.get_by_role("status")).to_contain_text("The event was saved.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("(edited)")
    expect(page.get_by_role("heading", level=1)).to_contain_text("live")
    expect(page.locator(".event-dates-line")).to_contain_text("May 12")
    stored = api(server, "GET", f"/api/v1/events/{event_id}")
    assert (stored["starts_on"], stored["ends_on"]) == ("2027-05-12", "2027-05-16")
    assert stored["questions"][0]["options"][1]["key"] == "large"

    # removing a question that reports answered warns in the form
    api(
        server,
        "POST",
        "/api/v1/reports",
        {
            "event_id": event_id,
            "lead": {"first_name": "Anna", "last_name": "Test", "email": f"a{tag}@example.de"},
            "answers": {"interesse": "Mailing", "size": "small"},
        },
    )
    page.goto(f"{server.url}/events/{event_id}/edit")
    warnings = page.locator(".q-warnings")
    expect(warnings).to_be_hidden()  # nothing changed, nothing to warn about
    page.get_by_role("button", name="Remove option 1 of question 1").click()
    expect(warnings).to_contain_text("1 report chose “small” in “size”")
    own(question(page, 1), "q-type").get_by_label("Type").select_option("number")
    expect(warnings).to_contain_text("1 report answered “interesse” as text: a free answer")
    page.get_by_role("button", name="Remove question 2").click()
    expect(warnings).to_contain_text("1 report answered the question “interesse”")
    expect(warnings).to_contain_text("their answers stay stored (reports show them under the key)")

    # a phone: the editor and the pages fit 390 px
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/events/{event_id}/edit")
    expect(question(page, 1)).to_be_visible()
    fits(page)
    screenshot(page, "event-editor-390")
    page.goto(f"{server.url}/events/new")
    page.get_by_role("button", name="Add a question", exact=True).click()
    own(question(page, 0), "q-type").get_by_label("Type").select_option("multi")
    fits(page)
    page.goto(f"{server.url}/events/{event_id}")
    fits(page)
