"""The Events pages, on both databases: list and event page, follow-up templates saved
through the page with sandbox errors at their field, the live preview, the media library,
bulk follow-up with its progress endpoint, CSRF and role checks."""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from tests.integration.web.test_follow_ups_api import bearer, lead, put_template
from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.integration.web.test_reports_api import capture, live_event
from tests.support.orgs import OrgFixture, new_member, new_org
from tests.support.outbox import configure_server
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
TEMPLATE = {"subject": "Ihr Besuch, {{ lead.company }}", "text": "{{ salutation }},\n\ndanke."}


def template_form(csrf: str, **changes: str) -> dict[str, str]:
    form = {"csrf_token": csrf, "reply_to_reporter": "on", **TEMPLATE}
    form.update(changes)
    return form


async def test_the_list_and_the_event_page_render(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)

    listing = await client.get("/events")
    assert listing.status_code == 200, listing.text
    assert f'href="/events/{event["id"]}"' in listing.text
    assert "live" in listing.text and "de, en" in listing.text
    assert 'href="/events"' in listing.text and 'href="/reports"' in listing.text

    page = await client.get(f"/events/{event['id']}")
    assert page.status_code == 200, page.text
    assert "Interesse" in page.text and "<code>interest</code>" in page.text
    assert 'id="template-de"' in page.text and 'id="template-en"' in page.text
    # a curator reads templates but does not save them
    assert "Save the de template" not in page.text
    assert (await client.get(f"/events/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/events/not-an-id")).status_code == 404


async def test_saving_a_template_and_a_sandbox_escape_shown_at_its_field(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.ADMIN)
    path = f"/events/{event['id']}"
    csrf = await csrf_of(client, path)
    escape = "Hello\n\n{{ lead.__class__.__init__.__globals__ }}"

    refused = await client.post(f"{path}/templates/de", data=template_form(csrf, text=escape))
    assert refused.status_code == 422, refused.text
    found = re.search(r'<p class="error" id="text-de-error">([^<]*)</p>', refused.text)
    assert found, refused.text
    assert html.unescape(found.group(1)).startswith("line 3:")
    assert 'id="text-de" name="text"' in refused.text and 'aria-invalid="true"' in refused.text
    assert "__globals__" in html.unescape(refused.text)  # the input is kept
    api = f"/api/v1/events/{event['id']}/templates/de"
    assert (await client.get(api, headers=org.headers)).status_code == 404

    saved = await client.post(f"{path}/templates/de", data=template_form(csrf))
    assert saved.status_code == 303, saved.text
    stored = (await client.get(api, headers=org.headers)).json()
    assert stored["subject"] == TEMPLATE["subject"]
    assert stored["reply_to_reporter"] is True and stored["bcc_reporter"] is False
    page = await client.get(saved.headers["location"])
    assert "was saved" in page.text and "Ihr Besuch, {{ lead.company }}" in html.unescape(page.text)


async def test_the_preview_renders_the_salutation_for_a_sample_or_a_real_lead(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"], lead=lead(last_name="Schmidt"))
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    csrf = await csrf_of(client, f"/events/{event['id']}")
    url = f"/events/{event['id']}/templates/de/preview"
    form = {"subject": TEMPLATE["subject"], "text": TEMPLATE["text"]}

    sample = await client.post(url, data=form, headers={"X-CSRF-Token": csrf})
    assert sample.status_code == 200, sample.text
    assert sample.json()["text"].startswith("Sehr geehrte Frau Mustermann,")
    assert sample.json()["subject"] == "Ihr Besuch, Beispiel GmbH"

    real = await client.post(
        url, data={**form, "report_id": report["id"]}, headers={"X-CSRF-Token": csrf}
    )
    assert real.status_code == 200, real.text
    assert real.json()["text"].startswith("Sehr geehrte Frau Dr. Schmidt,")

    broken = await client.post(
        url, data={**form, "subject": "{{ ''.__class__ }}"}, headers={"X-CSRF-Token": csrf}
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["field"] == "subject"

    forged = await client.post(url, data=form, headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403


async def test_media_upload_lists_a_png_and_refuses_a_text_file(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    path = f"/events/{event['id']}"
    csrf = await csrf_of(client, path)

    uploaded = await client.post(
        f"{path}/media",
        data={"csrf_token": csrf, "title": "Booth photo"},
        files={"file": ("booth.png", PNG, "image/png")},
    )
    assert uploaded.status_code == 303, uploaded.text
    page = await client.get(uploaded.headers["location"])
    assert "Booth photo" in page.text and "image/png" in page.text

    refused = await client.post(
        f"{path}/media",
        data={"csrf_token": csrf},
        files={"file": ("notes.txt", b"just some text\n", "text/plain")},
    )
    assert refused.status_code == 415, refused.text
    assert "only PDF documents and PNG, JPEG, GIF or WebP images are accepted" in refused.text
    media = (await client.get(f"/api/v1{path}/media", headers=org.headers)).json()
    assert [m["filename"] for m in media] == ["booth.png"]

    forged = await client.post(
        f"{path}/media/{media[0]['id']}/delete", data={"csrf_token": "forged"}
    )
    assert forged.status_code == 403
    deleted = await client.post(f"{path}/media/{media[0]['id']}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    assert (await client.get(f"/api/v1{path}/media", headers=org.headers)).json() == []


async def follow_up_count(client: httpx.AsyncClient, org: OrgFixture) -> int:
    reply = await client.get("/api/v1/messages?kind=follow_up", headers=org.headers)
    assert reply.status_code == 200, reply.text
    return len(reply.json()["items"])


def result_rows(text: str) -> dict[str, tuple[str, str, str, str]]:
    """Each result row: report id -> (tone class, name, company, status words)."""
    rows = re.findall(
        r'<tr data-report="([^"]+)" class="result-([a-z]+)">\s*<td>(?:<a [^>]*>)?([^<]*)'
        r"(?:</a>)?</td>\s*<td>([^<]*)</td>\s*<td><span class=\"outcome tone-([a-z]+)\" "
        r'data-(?:result|review)="[a-z_]+">([^<]*)</span>',
        text,
    )
    found = {}
    for report_id, row_tone, name, company, tone, words in rows:
        assert row_tone == tone, (row_tone, tone)
        found[report_id] = (tone, html.unescape(name), html.unescape(company), html.unescape(words))
    return found


async def test_bulk_follow_up_confirms_the_count_then_redirects_to_named_results(
    client: httpx.AsyncClient, app: FastAPI, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)  # nothing is delivered: no worker runs
    event = await live_event(client, org)
    await put_template(client, org, event["id"], "de", TEMPLATE)
    _, token = await new_member(runtime, org, Role.REPORTER)
    consenting = await capture(
        client, bearer(token), event["id"], lead=lead(first_name="Clara", last_name="Vogt")
    )
    refusing = await capture(
        client,
        bearer(token),
        event["id"],
        lead=lead(first_name="Rolf", last_name="Nein", company="Nein AG"),
        consent={"follow_up_email": False, "marketing": False},
    )
    listed = await capture(
        client, bearer(token), event["id"], lead=lead(first_name="Sina", last_name="Sperre")
    )
    added = await client.post(
        "/api/v1/suppressions", headers=org.headers, json={"address": listed["lead"]["email"]}
    )
    assert added.status_code == 201, added.text
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    path = f"/events/{event['id']}"
    csrf = await csrf_of(client, path)
    page = await client.get(path)
    assert "data-pick-all" in page.text and "0 of 3 selected" in page.text
    chosen = [consenting["id"], refusing["id"], listed["id"]]

    # step 1: the confirmation names each lead and says how many will be mailed; no mail yet
    review = await client.post(
        f"{path}/follow-ups", data={"csrf_token": csrf, "report_ids": chosen}
    )
    assert review.status_code == 200, review.text
    assert 'data-will-send="1"' in review.text
    assert "1 of the 3 chosen leads will be mailed" in review.text
    assert 'data-skipped="2"' in review.text
    assert "1 without consent to follow-up emails" in review.text
    assert "1 with the address on the suppression list" in review.text
    assert ">Mail 1 lead</button>" in review.text
    assert result_rows(review.text) == {
        consenting["id"]: ("ok", "Clara Vogt", "Müller GmbH", "Will be mailed"),
        refusing["id"]: (
            "warn",
            "Rolf Nein",
            "Nein AG",
            "Will be skipped: no consent to follow-up emails",
        ),
        listed["id"]: (
            "warn",
            "Sina Sperre",
            "Müller GmbH",
            "Will be skipped: address on the suppression list",
        ),
    }
    assert await follow_up_count(client, org) == 0

    # step 2: confirmed, it sends and redirects (Post/Redirect/Get)
    sent = await client.post(
        f"{path}/follow-ups", data={"csrf_token": csrf, "report_ids": chosen, "confirm": "yes"}
    )
    assert sent.status_code == 303, sent.text
    location = sent.headers["location"]
    assert location.startswith(f"{path}?result=") and location.endswith("#bulk-result")
    assert await follow_up_count(client, org) == 1

    shown = await client.get(location)
    assert shown.status_code == 200, shown.text
    assert "1 follow-up queued, 2 skipped" in shown.text
    assert 'class="bulk-result tone-box tone-warn" id="bulk-result"' in shown.text
    rows = result_rows(shown.text)
    assert rows == {
        consenting["id"]: ("ok", "Clara Vogt", "Müller GmbH", "Queued"),
        refusing["id"]: ("warn", "Rolf Nein", "Nein AG", "Skipped: no consent to follow-up emails"),
        listed["id"]: (
            "warn",
            "Sina Sperre",
            "Müller GmbH",
            "Skipped: address on the suppression list",
        ),
    }
    section = shown.text.split('id="bulk-result"', 1)[1].split("</table>", 1)[0]
    assert consenting["id"] not in re.sub(r'(data-report|href)="[^"]*"', "", section)

    found = re.search(r'data-progress="([^"]+)"', shown.text)
    assert found
    progress = await client.get(html.unescape(found.group(1)))
    assert progress.status_code == 200, progress.text
    assert progress.json() == {"total": 1, "done": 0, "counts": {"queued": 1}}

    # a reload shows the same result and sends nothing
    reload = await client.get(location)
    assert result_rows(reload.text) == rows
    assert await follow_up_count(client, org) == 1

    # the token is this user's: another curator sees no result
    transport = httpx.ASGITransport(app=app, client=("10.9.251.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await log_in_as(other, runtime, org, Role.EVENT_CURATOR)
        foreign = await other.get(location)
        assert foreign.status_code == 200
        assert 'id="bulk-result"' in foreign.text and "data-result=" not in foreign.text
        assert "no longer shown here" in foreign.text
    tampered = await client.get(location.replace("result=", "result=x"))
    assert "data-result=" not in tampered.text

    # the same lead again: the review and the result say when it was sent
    review_again = await client.post(
        f"{path}/follow-ups", data={"csrf_token": csrf, "report_ids": [consenting["id"]]}
    )
    assert "The chosen lead will not be mailed" in review_again.text
    assert "Mail 1 lead" not in review_again.text
    tone, _, _, words = result_rows(review_again.text)[consenting["id"]]
    assert tone == "warn" and re.fullmatch(
        r"Will be skipped: already sent on \d{4}-\d\d-\d\d \d\d:\d\d UTC", words
    ), words
    again = await client.post(
        f"{path}/follow-ups",
        data={"csrf_token": csrf, "report_ids": [consenting["id"]], "confirm": "yes"},
    )
    assert again.status_code == 303
    tone, _, _, words = result_rows((await client.get(again.headers["location"])).text)[
        consenting["id"]
    ]
    assert tone == "warn" and words.startswith("Skipped: already sent on "), words
    assert await follow_up_count(client, org) == 1

    none_chosen = await client.post(f"{path}/follow-ups", data={"csrf_token": csrf})
    assert none_chosen.status_code == 422 and "Choose at least one report." in none_chosen.text


async def test_a_bulk_follow_up_without_a_mail_server_says_nothing_can_be_sent(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await put_template(client, org, event["id"], "de", TEMPLATE)
    report = await capture(client, org.headers, event["id"], lead=lead())
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    path = f"/events/{event['id']}"
    csrf = await csrf_of(client, path)
    review = await client.post(
        f"{path}/follow-ups", data={"csrf_token": csrf, "report_ids": [report["id"]]}
    )
    assert review.status_code == 200, review.text
    assert "No outgoing mail server is set up yet" in review.text
    assert "<button" not in review.text.split('<main id="main">', 1)[1]
    sent = await client.post(
        f"{path}/follow-ups",
        data={"csrf_token": csrf, "report_ids": [report["id"]], "confirm": "yes"},
    )
    assert sent.status_code == 303, sent.text
    shown = await client.get(sent.headers["location"])
    tone, _, _, words = result_rows(shown.text)[report["id"]]
    assert tone == "error" and words.startswith("Failed: "), words
    assert "No follow-up was queued, 1 failed" in shown.text
    assert await follow_up_count(client, org) == 0


async def test_forms_without_csrf_change_nothing(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await configure_server(runtime, org, 2525)
    await put_template(client, org, event["id"], "en", {"subject": "Hi", "text": "Hi"})
    report = await capture(client, org.headers, event["id"], lead=lead(language="en"))
    await log_in_as(client, runtime, org, Role.ADMIN)
    path = f"/events/{event['id']}"
    attempts: list[tuple[str, dict[str, Any], Any]] = [
        (f"{path}/templates/de", template_form(""), None),
        (f"{path}/templates/de", template_form("forged"), None),
        (f"{path}/media", {"csrf_token": "forged"}, {"file": ("a.png", PNG, "image/png")}),
        (f"{path}/follow-ups", {"report_ids": [report["id"]]}, None),
    ]
    for url, data, files in attempts:
        reply = await client.post(url, data=data, files=files)
        assert reply.status_code == 403, (url, reply.text)
        assert "CSRF" in reply.text
    api = f"/api/v1{path}"
    assert (await client.get(f"{api}/templates/de", headers=org.headers)).status_code == 404
    assert (await client.get(f"{api}/media", headers=org.headers)).json() == []
    messages = await client.get("/api/v1/messages?kind=follow_up", headers=org.headers)
    assert messages.json()["items"] == []


async def test_reporters_and_users_cannot_open_the_events_pages(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.REPORTER)
    dashboard = await client.get("/")
    assert 'href="/events"' not in dashboard.text and 'href="/reports"' in dashboard.text
    for url in ("/events", f"/events/{event['id']}"):
        page = await client.get(url)
        assert page.status_code == 403, page.text
        assert "event curators, managers and admins" in page.text
    progress = await client.get(f"/events/{event['id']}/follow-ups/progress?ids=")
    assert progress.status_code == 403


async def test_a_curator_cannot_save_templates(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    csrf = await csrf_of(client, f"/events/{event['id']}")
    reply = await client.post(f"/events/{event['id']}/templates/de", data=template_form(csrf))
    assert reply.status_code == 403
    api = f"/api/v1/events/{event['id']}/templates/de"
    assert (await client.get(api, headers=org.headers)).status_code == 404


async def test_pages_need_a_session(client: httpx.AsyncClient, org: OrgFixture) -> None:
    event = await live_event(client, org)
    for url in ("/events", f"/events/{event['id']}"):
        reply = await client.get(url)
        assert reply.status_code == 303 and reply.headers["location"] == f"/login?next={url}"


async def test_an_event_is_created_from_the_page_with_errors_at_their_field(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.EVENT_MANAGER)
    assert 'href="/events/new"' in (await client.get("/events")).text
    csrf = await csrf_of(client, "/events/new")
    form = {"csrf_token": csrf, "name": "Spring fair", "languages": "de, en", "status": "live"}

    bad_json = await client.post("/events/new", data={**form, "questions": "[{"})
    assert bad_json.status_code == 422, bad_json.text
    assert 'id="event-questions-error"' in bad_json.text and "not valid JSON" in bad_json.text
    assert "Spring fair" in bad_json.text  # the input is kept

    no_options = json.dumps([{"key": "size", "type": "single"}])
    refused = await client.post("/events/new", data={**form, "questions": no_options})
    assert refused.status_code == 422, refused.text
    found = re.search(r'<p class="error" id="event-questions-error">([^<]*)</p>', refused.text)
    assert found and "questions[0]" in html.unescape(found.group(1)), refused.text

    no_language = await client.post("/events/new", data={**form, "languages": " , "})
    assert no_language.status_code == 422
    assert 'id="event-languages-error"' in no_language.text

    questions = json.dumps([{"key": "interest", "label": {"de": "Interesse"}, "type": "text"}])
    created = await client.post("/events/new", data={**form, "questions": questions})
    assert created.status_code == 303, created.text
    page = await client.get(created.headers["location"])
    assert "The event was created." in page.text and "<code>interest</code>" in page.text
    listed = (await client.get("/api/v1/events", headers=org.headers)).json()
    (event,) = [e for e in listed if e["name"] == "Spring fair"]
    assert event["languages"] == ["de", "en"] and event["status"] == "live"

    # a curator may read events but not create them; a forged form is refused
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    assert (await client.get("/events/new")).status_code == 403
    assert 'href="/events/new"' not in (await client.get("/events")).text
    forged = await client.post("/events/new", data={**form, "csrf_token": "nope"})
    assert forged.status_code == 403


# --- "Edit event" and dates -----------------------------------------------------------------


def editor_data(page: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="questions-editor-data">(.*?)</script>', page, re.S
    )
    assert found, page
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def field_error(page: str, field_id: str) -> str:
    found = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', page)
    assert found, page
    return html.unescape(found.group(1))


async def test_an_event_is_edited_from_its_page_with_errors_beside_the_field(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org, status="draft")
    await log_in_as(client, runtime, org, Role.EVENT_MANAGER)
    page = await client.get(f"/events/{event['id']}")
    assert f'href="/events/{event["id"]}/edit"' in page.text and "No dates set." in page.text
    edit = f"/events/{event['id']}/edit"
    form_page = await client.get(edit)
    assert form_page.status_code == 200, form_page.text
    assert 'value="Fair"' in form_page.text and 'value="de, en"' in form_page.text
    textarea = re.search(r'name="questions"[^>]*>([^<]*)</textarea>', form_page.text)
    assert textarea, form_page.text
    stored_questions = json.loads(html.unescape(textarea.group(1)))
    assert [q["key"] for q in stored_questions] == [q["key"] for q in event["questions"]]
    assert '<option value="draft" selected>' in form_page.text
    csrf = await csrf_of(client, edit)
    form = {
        "csrf_token": csrf,
        "name": "Spring Fair 2027",
        "languages": "de, en",
        "status": "live",
        "starts_on": "2027-05-16",
        "ends_on": "2027-05-12",
        "questions": json.dumps(stored_questions),
    }

    backwards = await client.post(edit, data=form)
    assert backwards.status_code == 422, backwards.text
    assert "must not be before the first day" in field_error(backwards.text, "event-ends-on")
    assert 'id="event-ends-on" name="ends_on" value="2027-05-12"' in backwards.text  # kept
    assert 'value="Spring Fair 2027"' in backwards.text
    assert '<option value="live" selected>' in backwards.text

    not_a_day = await client.post(edit, data={**form, "starts_on": "2027-02-30"})
    assert not_a_day.status_code == 422
    assert "must be a date" in field_error(not_a_day.text, "event-starts-on")

    no_name = await client.post(edit, data={**form, "name": "  ", "ends_on": ""})
    assert no_name.status_code == 422
    assert field_error(no_name.text, "event-name")
    unchanged = (await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)).json()
    assert unchanged == event  # nothing of a refused form is stored

    bad_option = [*stored_questions]
    bad_option[2] = {**bad_option[2], "options": [{"key": "small"}, {"key": "x y"}]}
    refused = await client.post(
        edit, data={**form, "ends_on": "2027-05-20", "questions": json.dumps(bad_option)}
    )
    assert refused.status_code == 422
    # beside the JSON (without JavaScript) and handed to the editor for its option's field
    assert field_error(refused.text, "event-questions").startswith("questions[2].options[1].key:")
    assert list(editor_data(refused.text)["errors"]) == ["questions[2].options[1].key"]
    assert "x y" in html.unescape(refused.text)  # the questions as typed are kept

    saved = await client.post(edit, data={**form, "ends_on": "2027-05-20"})
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/events/{event['id']}?done=updated"
    shown = await client.get(saved.headers["location"])
    assert "The event was saved." in shown.text
    assert "Spring Fair 2027" in shown.text and "May 16" in shown.text
    stored = (await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)).json()
    assert stored["name"] == "Spring Fair 2027" and stored["status"] == "live"
    assert (stored["starts_on"], stored["ends_on"]) == ("2027-05-16", "2027-05-20")
    again = await client.get(edit)
    assert 'value="2027-05-16"' in again.text and 'value="2027-05-20"' in again.text


async def test_the_edit_form_counts_what_reports_answered(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    for _ in range(3):
        await capture(client, org.headers, event["id"])
    await capture(client, org.headers, event["id"], answers={"size": "small", "products": ["crm"]})
    await log_in_as(client, runtime, org, Role.ADMIN)
    page = await client.get(f"/events/{event['id']}/edit")
    counts = editor_data(page.text)["counts"]
    assert counts["questions"]["interest"] == 3 and counts["questions"]["size"] == 4
    assert counts["options"]["size"] == {"large": 3, "small": 1}
    assert counts["options"]["products"] == {"mail": 3, "crm": 4}
    assert "interest" not in counts["options"]  # a text answer is no option
    assert editor_data(page.text)["stored_types"]["size"] == "single"
    assert "<code>size</code> (4)" in page.text and "keeps those answers stored" in page.text

    # removing an answered question keeps the reports' answers (the service's rule)
    csrf = await csrf_of(client, f"/events/{event['id']}/edit")
    only_budget = [{"key": "budget", "label": {"de": "Budget"}, "type": "number"}]
    saved = await client.post(
        f"/events/{event['id']}/edit",
        data={
            "csrf_token": csrf,
            "name": "Fair",
            "languages": "de, en",
            "status": "live",
            "questions": json.dumps(only_budget),
        },
    )
    assert saved.status_code == 303, saved.text
    reports = (
        await client.get(f"/api/v1/reports?event_id={event['id']}", headers=org.headers)
    ).json()
    assert sum(1 for r in reports if r["answers"].get("interest") == "Mailing") == 3
    after = editor_data((await client.get(f"/events/{event['id']}/edit")).text)["counts"]
    assert after["questions"]["interest"] == 3  # still counted: the answers stay stored


async def test_only_managers_edit_events(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    page = await client.get(f"/events/{event['id']}")
    assert f"/events/{event['id']}/edit" not in page.text
    assert (await client.get(f"/events/{event['id']}/edit")).status_code == 403
    csrf = await csrf_of(client, f"/events/{event['id']}")
    posted = await client.post(
        f"/events/{event['id']}/edit",
        data={"csrf_token": csrf, "name": "Taken", "languages": "de", "status": "live"},
    )
    assert posted.status_code == 403
    assert (await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)).json() == event

    await log_in_as(client, runtime, org, Role.EVENT_MANAGER)
    assert (await client.get(f"/events/{uuid.uuid4()}/edit")).status_code == 404
    assert (await client.get("/events/nope/edit")).status_code == 404
    csrf = await csrf_of(client, f"/events/{event['id']}/edit")
    forged = await client.post(
        f"/events/{event['id']}/edit",
        data={"csrf_token": "forged", "name": "Taken", "languages": "de", "status": "live"},
    )
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert (await client.get("/events/x/edit", follow_redirects=False)).status_code == 404


async def test_a_new_event_with_dates_and_a_date_error_beside_its_field(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await log_in_as(client, runtime, org, Role.EVENT_MANAGER)
    new = await client.get("/events/new")
    assert 'type="date" id="event-starts-on"' in new.text
    assert '<script src="/static/questions_editor.js" defer></script>' in new.text
    assert editor_data(new.text)["types"]["single"] == "One choice of a list"
    csrf = await csrf_of(client, "/events/new")
    form = {"csrf_token": csrf, "name": "Dated", "languages": "de", "status": "draft"}
    only_end = await client.post("/events/new", data={**form, "ends_on": "2027-05-12"})
    assert only_end.status_code == 422
    assert "a start" in field_error(only_end.text, "event-starts-on")
    too_late = await client.post("/events/new", data={**form, "starts_on": "2999-01-01"})
    assert "2000 to 2100" in field_error(too_late.text, "event-starts-on")
    made = await client.post("/events/new", data={**form, "starts_on": "2027-05-12"})
    assert made.status_code == 303, made.text
    page = await client.get(made.headers["location"])
    assert "Dates: May 12, 2027." in page.text
    assert "May 12, 2027" in (await client.get("/events")).text


async def test_the_confirmation_names_a_missing_template_and_an_unknown_report(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)
    event = await live_event(client, org)  # de (default) and en
    await put_template(client, org, event["id"], "en", {"subject": "Hi", "text": "Hi"})
    german = await capture(
        client, org.headers, event["id"], lead=lead(first_name="Dora", last_name="Deutsch")
    )
    stranger = await new_org(runtime)
    elsewhere = await live_event(client, stranger)
    theirs = await capture(
        client, stranger.headers, elsewhere["id"], lead=lead(last_name="Fremdling")
    )
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    path = f"/events/{event['id']}"
    csrf = await csrf_of(client, path)
    review = await client.post(
        f"{path}/follow-ups",
        data={"csrf_token": csrf, "report_ids": [german["id"], theirs["id"]]},
    )
    assert review.status_code == 200, review.text
    assert "None of the 2 chosen leads will be mailed" in review.text
    assert "1 without a follow-up template in their language" in review.text
    rows = result_rows(review.text)
    assert rows[german["id"]] == (
        "warn",
        "Dora Deutsch",
        "Müller GmbH",
        "Will be skipped: no follow-up template in the lead's language or the event's "
        "default language",
    )
    assert rows[theirs["id"]] == ("error", "Unknown report", "", "Cannot be sent: no such report")
    assert "Fremdling" not in review.text  # another organization's lead is never named
