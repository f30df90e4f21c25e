"""The Events and Reports pages in real Chromium: the live template preview (debounced
fetch with the CSRF header) for a chosen report, saving and a sandbox error at its field,
a media upload, the bulk follow-up with its progress bar reaching 100 % as the in-process
worker delivers to the dev inbox, and a report's Export and Send follow-up actions."""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, api, screenshot
from tests.e2e.test_login_e2e import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SUBJECT = "Ihr Besuch bei uns, {{ lead.company }}"
TEXT = "{{ salutation }},\n\nvielen Dank für Ihren Besuch."


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def new_lead(**changes: str) -> dict[str, str]:
    values = {
        "gender": "female",
        "first_name": "Anna",
        "last_name": "Müller",
        "company": "Müller GmbH",
        "email": f"anna-{uuid.uuid4().hex[:8]}@example.de",
        "language": "de",
    }
    values.update(changes)
    return values


def setup_event(server: Server) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    event = api(
        server,
        "POST",
        "/api/v1/events",
        {
            "name": f"Messe {tag}",
            "languages": ["de", "en"],
            "status": "live",
            "questions": [{"key": "interest", "label": {"de": "Interesse"}, "type": "text"}],
        },
    )
    consent = {"follow_up_email": True, "marketing": False}
    german = api(
        server,
        "POST",
        "/api/v1/reports",
        {
            "event_id": event["id"],
            "lead": new_lead(last_name=f"Schmidt{tag}", company=f"Schmidt {tag} AG"),
            "answers": {"interest": "Mailing"},
            "consent": consent,
        },
    )
    english = api(
        server,
        "POST",
        "/api/v1/reports",
        {
            "event_id": event["id"],
            "lead": new_lead(
                gender="male",
                first_name="John",
                last_name=f"Smith{tag}",
                company=f"Smith {tag} Ltd",
                email=f"john-{tag}@example.com",
                language="en",
            ),
            "consent": consent,
        },
    )
    return event, german, english


def test_templates_preview_media_and_bulk_follow_up(page: Page, server: Server) -> None:
    event, german, english = setup_event(server)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    log_in(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Events")
    page.get_by_role("link", name=event["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(event["name"])

    # the live preview, against the German report, without saving
    form = page.locator("#template-de")
    form.get_by_label("Preview against").select_option(german["id"])
    form.get_by_label("Subject").fill(SUBJECT)
    form.get_by_label("Text", exact=True).fill(TEXT)
    last_name = german["lead"]["last_name"]
    expect(form.locator(".preview-subject")).to_have_text(
        f"Ihr Besuch bei uns, {german['lead']['company']}"
    )
    expect(form.locator(".preview-text")).to_contain_text(f"Sehr geehrte Frau {last_name},")
    expect(form.locator(".preview-error")).to_be_hidden()
    screenshot(page, "event")
    stored = api(server, "GET", f"/api/v1/events/{event['id']}/templates")
    assert not stored or all(t["language"] != "de" for t in _listed(stored))

    # an invalid template: the preview says so, saving shows the error at the field
    form.get_by_label("Text", exact=True).fill("{{ ''.__class__ }}")
    expect(form.locator(".preview-error")).to_be_visible()
    expect(form.locator(".preview-error")).to_contain_text("text")
    expect(form.locator(".preview-output")).to_be_hidden()
    form.get_by_role("button", name="Save the de template").click()
    error = page.locator("#text-de-error")
    expect(error).to_be_visible()
    expect(page.locator("#template-de").get_by_label("Text", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.locator("#template-de").get_by_label("Text", exact=True)).to_have_attribute(
        "aria-describedby", "text-de-error"
    )

    # fixed and saved
    form = page.locator("#template-de")
    form.get_by_label("Subject").fill(SUBJECT)
    form.get_by_label("Text", exact=True).fill(TEXT)
    form.get_by_role("button", name="Save the de template").click()
    expect(page.get_by_role("status").first).to_contain_text("'de' was saved")
    expect(page.locator("#template-de").get_by_label("Subject")).to_have_value(SUBJECT)

    # keyboard: every field of the template form has a label and Tab reaches the next one
    form = page.locator("#template-de")
    order = [
        form.get_by_label("Subject"),
        form.get_by_label("Text", exact=True),
        form.get_by_label("HTML (optional)"),
        form.get_by_label("Replies go to the reporter who met the lead"),
        form.get_by_label("Send a blind copy to the reporter"),
        form.get_by_label("Preview against"),
        form.get_by_role("button", name="Save the de template"),
    ]
    order[0].focus()
    for field in order[1:]:
        page.keyboard.press("Tab")
        expect(field).to_be_focused()

    # the media library
    page.get_by_label("File (PDF").set_input_files(
        files=[{"name": "booth.png", "mimeType": "image/png", "buffer": tiny_png()}]
    )
    page.get_by_label("Title (optional)").fill("Booth photo")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status").first).to_contain_text("added to the media library")
    expect(page.locator("table.media-list")).to_contain_text("Booth photo")
    expect(page.locator("table.media-list")).to_contain_text("image/png")

    # bulk follow-up of both reports: queued, then the progress bar reaches 100 %
    page.get_by_label(f"Choose Anna {last_name}").check()
    page.get_by_label(f"Choose John {english['lead']['last_name']}").check()
    page.get_by_role("button", name="Send follow-ups").click()
    expect(page.locator("#confirm-heading")).to_contain_text("All 2 chosen leads will be mailed")
    page.get_by_role("button", name="Mail 2 leads").click()
    results = page.locator("table.bulk-results")
    for report in (german, english):
        expect(results.locator(f'tr[data-report="{report["id"]}"] [data-result]')).to_have_text(
            "Queued"
        )
    bar = page.locator("#bulk-progress")
    expect(page.locator(".progress-text")).to_contain_text("2 of 2 finished", timeout=15_000)
    assert bar.evaluate("b => b.value / b.max") == 1
    expect(page.locator(".progress-text")).to_contain_text("sent: 2")
    assert not problems, problems


def _listed(body: Any) -> list[dict[str, Any]]:
    return list(body.get("templates", body.get("items", []))) if isinstance(body, dict) else body


def test_report_export_and_follow_up_already_sent(page: Page, server: Server) -> None:
    event, german, _ = setup_event(server)
    api(
        server,
        "PUT",
        f"/api/v1/events/{event['id']}/templates/de",
        {"subject": SUBJECT, "text": TEXT},
    )
    sent = api(server, "POST", f"/api/v1/reports/{german['id']}/follow-up")
    assert sent["status"] == "queued", sent

    log_in(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reports")
    page.get_by_role("link", name=german["lead"]["last_name"]).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(german["lead"]["last_name"])

    page.get_by_role("button", name="Export").click()
    fired = page.locator("section.action-result")
    expect(fired.get_by_role("heading")).to_contain_text("Exported:")
    # no mapping: the page says so; another test's active mapping: its notifications listed
    items = fired.locator("ul.fired li")
    if items.count() == 0:
        expect(fired).to_contain_text("nobody was notified")
    else:
        expect(items.first.locator(".outcome")).to_have_text("Queued")

    page.get_by_role("button", name="Send follow-up").click()
    expect(page.locator("#fu-heading [data-result]")).to_have_text(
        "Skipped: already sent to this lead before"
    )
    expect(page.get_by_label("Send again anyway")).to_be_visible()
