"""The Reports pages, on both databases: a reporter sees only their own reports; export
through the page shows the notifications the mapping fired; check and follow-up; CSRF
and role checks."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import httpx

from tests.integration.web.test_follow_ups_api import bearer, lead, put_template
from tests.integration.web.test_mapping_api import email
from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.integration.web.test_reports_api import capture, live_event
from tests.integration.web.test_ui_login import log_in
from tests.support.orgs import OrgFixture, new_member
from tests.support.outbox import configure_server
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import identity


async def log_in_member(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, role: Role
) -> str:
    """Log in as a new member with ``role``; their API token."""
    user, token = await new_member(runtime, org, role)
    async with runtime.uow() as uow:
        password = await identity.set_password(
            uow, runtime.hasher, org.principal, user.id, password=None
        )
    assert password
    reply = await log_in(client, user.email, password)
    assert reply.status_code == 303, reply.text
    return token


async def put_mapping(client: httpx.AsyncClient, org: OrgFixture) -> None:
    rule = {
        "name": "Sales team",
        "event": "*",
        "on": "exported",
        "actions": [email(["team@acme.example"], "Lead: {{ lead.company }}", "{{ notes }}")],
    }
    reply = await client.put(
        "/api/v1/notification-mapping", headers=org.headers, json={"version": 1, "rules": [rule]}
    )
    assert reply.status_code in (200, 201), reply.text


async def report_status(client: httpx.AsyncClient, org: OrgFixture, report_id: str) -> str:
    reply = await client.get(f"/api/v1/reports/{report_id}", headers=org.headers)
    assert reply.status_code == 200, reply.text
    status: str = reply.json()["status"]
    return status


async def test_a_reporter_sees_only_their_own_reports(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    _, other = await new_member(runtime, org, Role.REPORTER)
    theirs = await capture(client, bearer(other), event["id"], lead=lead(last_name="Fremd"))
    token = await log_in_member(client, runtime, org, Role.REPORTER)
    mine = await capture(client, bearer(token), event["id"], lead=lead(last_name="Eigen"))

    page = await client.get("/reports")
    assert page.status_code == 200, page.text
    assert "Your reports" in page.text
    assert f'href="/reports/{mine["id"]}"' in page.text and "Eigen" in page.text
    assert theirs["id"] not in page.text and "Fremd" not in page.text
    assert "Fair" in page.text and "draft" in page.text  # event name, status

    detail = await client.get(f"/reports/{mine['id']}")
    assert detail.status_code == 200
    assert "Interesse" in detail.text and "Mailing" in detail.text
    assert "Met at booth 4." in detail.text
    assert 'action="/reports/' + mine["id"] + '/check"' not in detail.text  # no Check
    assert (await client.get(f"/reports/{theirs['id']}")).status_code == 404
    assert (await client.get(f"/reports/{uuid.uuid4()}")).status_code == 404


async def test_a_curator_sees_every_report(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    _, other = await new_member(runtime, org, Role.REPORTER)
    theirs = await capture(client, bearer(other), event["id"], lead=lead(last_name="Fremd"))
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    page = await client.get("/reports")
    assert "Every report of the organization" in page.text and theirs["id"] in page.text
    detail = await client.get(f"/reports/{theirs['id']}")
    assert f'action="/reports/{theirs["id"]}/check"' in detail.text


async def messages_count(client: httpx.AsyncClient, org: OrgFixture) -> int:
    reply = await client.get("/api/v1/messages", headers=org.headers)
    assert reply.status_code == 200, reply.text
    return len(reply.json()["items"])


async def redirected(client: httpx.AsyncClient, reply: httpx.Response, path: str) -> str:
    """The page a successful action redirected to (303, its result in the query)."""
    assert reply.status_code == 303, reply.text
    location = reply.headers["location"]
    assert location.startswith(f"{path}?result=") and location.endswith("#action-result")
    page = await client.get(location)
    assert page.status_code == 200, page.text
    return location


def result_section(text: str) -> str:
    found = re.search(r'<section class="card action-result[^"]*".*?</section>', text, re.S)
    assert found, text
    return html.unescape(found.group(0))


async def test_export_through_the_page_shows_the_fired_notification(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)
    await put_mapping(client, org)
    event = await live_event(client, org)
    token = await log_in_member(client, runtime, org, Role.REPORTER)
    report = await capture(client, bearer(token), event["id"], lead=lead())
    path = f"/reports/{report['id']}"
    csrf = await csrf_of(client, path)

    location = await redirected(
        client, await client.post(f"{path}/export", data={"csrf_token": csrf}), path
    )
    shown = result_section((await client.get(location)).text)
    assert "Exported: 1 notification" in shown and "tone-ok" in shown
    assert 'class="outcome tone-ok" data-state="queued">Queued<' in shown
    assert "team@acme.example" in shown and "Sales team" in shown
    assert await report_status(client, org, report["id"]) == "exported"
    assert await messages_count(client, org) == 1
    # a reload shows the result again and notifies nobody again
    again_shown = result_section((await client.get(location)).text)
    assert again_shown == shown
    assert await messages_count(client, org) == 1

    again = await client.post(f"{path}/export", data={"csrf_token": csrf})
    duplicate = result_section((await client.get(await redirected(client, again, path))).text)
    assert 'data-tone="warn"' in duplicate
    assert 'data-state="duplicate">Not sent again: already notified for this revision<' in duplicate

    # a reporter may not check
    refused = await client.post(f"{path}/check", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert await report_status(client, org, report["id"]) == "exported"


async def test_check_that_notifies_nobody_says_so_in_the_warning_style(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"], lead=lead())
    await log_in_as(client, runtime, org, Role.ADMIN)
    path = f"/reports/{report['id']}"
    csrf = await csrf_of(client, path)
    location = await redirected(
        client, await client.post(f"{path}/check", data={"csrf_token": csrf}), path
    )
    shown = result_section((await client.get(location)).text)
    assert "Checked: nobody was notified" in shown
    assert 'data-tone="warn"' in shown and "tone-ok" not in shown
    assert "No rule of the mapping matched this report: nobody was notified." in shown
    assert '<a class="mapping-link" href="/mapping">' in shown
    assert await report_status(client, org, report["id"]) == "checked"


async def test_check_through_the_page_as_a_curator(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"], lead=lead())
    await log_in_as(client, runtime, org, Role.EVENT_CURATOR)
    path = f"/reports/{report['id']}"
    csrf = await csrf_of(client, path)
    location = await redirected(
        client, await client.post(f"{path}/check", data={"csrf_token": csrf}), path
    )
    shown = result_section((await client.get(location)).text)
    assert "Checked: nobody was notified" in shown
    assert "An admin can change the notification mapping." in shown  # no link: not theirs
    assert await report_status(client, org, report["id"]) == "checked"
    # the result is bound to its report: another report's page shows none of it
    other = await capture(client, org.headers, event["id"], lead=lead())
    pasted = await client.get(location.replace(report["id"], other["id"]))
    assert "action-result" in pasted.text and "nobody was notified" not in pasted.text


async def test_follow_up_through_the_page(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)
    event = await live_event(client, org)
    token = await log_in_member(client, runtime, org, Role.USER)
    refusing = await capture(
        client,
        bearer(token),
        event["id"],
        lead=lead(),
        consent={"follow_up_email": False, "marketing": False},
    )
    report = await capture(client, bearer(token), event["id"], lead=lead())
    path = f"/reports/{report['id']}"
    csrf = await csrf_of(client, path)

    no_template = await client.post(f"{path}/follow-up", data={"csrf_token": csrf})
    shown = result_section((await client.get(await redirected(client, no_template, path))).text)
    assert 'data-result="no_template">Skipped: no follow-up template' in shown
    assert 'data-tone="warn"' in shown

    await put_template(client, org, event["id"], "de", {"subject": "Hallo", "text": "Hallo"})
    queued = await client.post(f"{path}/follow-up", data={"csrf_token": csrf})
    location = await redirected(client, queued, path)
    shown = result_section((await client.get(location)).text)
    assert 'data-result="queued">Queued<' in shown and 'href="/outbox/' in shown
    assert 'data-tone="ok"' in shown
    assert await messages_count(client, org) == 1
    await client.get(location)  # a reload sends nothing
    assert await messages_count(client, org) == 1

    again = await client.post(f"{path}/follow-up", data={"csrf_token": csrf})
    page = (await client.get(await redirected(client, again, path))).text
    shown = result_section(page)
    assert 'data-result="already_sent">Skipped: already sent to this lead before<' in shown
    assert 'data-tone="warn"' in shown and "The message sent before" in shown
    assert 'name="force"' in page  # "send again anyway" is offered after the redirect too

    refused = await client.post(f"/reports/{refusing['id']}/follow-up", data={"csrf_token": csrf})
    shown = result_section(
        (await client.get(await redirected(client, refused, f"/reports/{refusing['id']}"))).text
    )
    assert 'data-result="no_consent">Skipped: no consent to follow-up emails<' in shown
    assert 'data-tone="warn"' in shown
    assert await messages_count(client, org) == 1


async def test_forms_without_csrf_change_nothing(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    await configure_server(runtime, org, 2525)
    await put_mapping(client, org)
    event = await live_event(client, org)
    await put_template(client, org, event["id"], "de", {"subject": "Hallo", "text": "Hallo"})
    report = await capture(client, org.headers, event["id"], lead=lead())
    await log_in_as(client, runtime, org, Role.ADMIN)
    data: list[dict[str, Any]] = [{}, {"csrf_token": "forged"}]
    for action in ("export", "check", "follow-up"):
        for form in data:
            reply = await client.post(f"/reports/{report['id']}/{action}", data=form)
            assert reply.status_code == 403, (action, reply.text)
            assert "CSRF" in reply.text
    assert await report_status(client, org, report["id"]) == "draft"
    messages = await client.get("/api/v1/messages", headers=org.headers)
    assert messages.json()["items"] == []


async def test_pages_need_a_session(client: httpx.AsyncClient, org: OrgFixture) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"], lead=lead())
    for url in ("/reports", f"/reports/{report['id']}"):
        reply = await client.get(url)
        assert reply.status_code == 303 and reply.headers["location"] == f"/login?next={url}"
