"""Who signs a follow-up (issue 10, item 13), on both databases with a real SMTP server.

A lead reads the reporter's name as the signature (``{{ reporter.name }}``) and in
Reply-To. An admin made by ``org create`` without ``--admin-name`` (and every user made
before names were asked for) has only the placeholder, the local part of their address:
the lead reads the organization's name instead of "admin-…", until the admin is given a
name on the users page (or through the API)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.web.test_follow_ups_api import (
    body_text,
    follow_up,
    lead,
    received_by,
    setup,
)
from tests.integration.web.test_reports_api import capture
from tests.integration.web.test_ui_login import CSRF, log_in
from tests.support.orgs import OrgFixture, unique_email
from tests.support.outbox import make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.runtime import Runtime
from visitmail.services import identity

ORG_NAME = "Fair Team GmbH"


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    started = await start_smtp_server()
    yield started
    await started.close()


@pytest.fixture
async def unnamed(runtime: Runtime) -> OrgFixture:
    """An organization whose admin was created without a name (the placeholder)."""
    async with runtime.uow() as uow:
        created = await identity.create_organization(
            uow, runtime.hasher, name=ORG_NAME, admin_email=unique_email("admin")
        )
    return OrgFixture(created.organization, created.admin, created.admin_password, created.token)


async def sent_follow_up(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer, event_id: str
) -> tuple[str, str, str]:
    """Capture a report as the admin, follow it up, deliver: the received mail's text, the
    Reply-To display name and address. The text ends before the unsubscribe line that
    every follow-up carries (after the ``-- `` separator)."""
    report = await capture(client, org.headers, event_id, lead=lead())
    queued = await follow_up(client, org.headers, report["id"])
    assert queued.status_code == 200, queued.text
    await make_worker(runtime, org).run_until_idle()
    (mail,) = received_by(smtp, report["lead"]["email"])
    (reply_to,) = mail["Reply-To"].addresses
    text = body_text(mail).replace("\r\n", "\n").rsplit("\n-- \n", 1)[0]
    return text, reply_to.display_name, reply_to.addr_spec


async def test_an_unnamed_reporter_signs_with_the_organizations_name_until_named(
    client: httpx.AsyncClient, runtime: Runtime, unnamed: OrgFixture, smtp: SmtpServer
) -> None:
    placeholder = unnamed.admin.email.split("@")[0]
    assert unnamed.admin.display_name == placeholder
    event, _ = await setup(client, runtime, unnamed, smtp)  # the German text ends in the name

    text, name, address = await sent_follow_up(client, runtime, unnamed, smtp, event["id"])
    assert text.rstrip().endswith(ORG_NAME)
    assert placeholder not in text
    assert (name, address) == (ORG_NAME, unnamed.admin.email)

    report = await capture(client, unnamed.headers, event["id"], lead=lead())
    preview = await client.post(
        f"/api/v1/events/{event['id']}/templates/de/preview",
        headers=unnamed.headers,
        json={"report_id": report["id"]},
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["text"].rstrip().endswith(ORG_NAME)

    named = await client.patch(
        f"/api/v1/users/{unnamed.admin.id}",
        headers=unnamed.headers,
        json={"display_name": "Bea Boss"},
    )
    assert named.status_code == 200, named.text
    text, name, address = await sent_follow_up(client, runtime, unnamed, smtp, event["id"])
    assert text.rstrip().endswith("Bea Boss")
    assert ORG_NAME not in text
    assert (name, address) == ("Bea Boss", unnamed.admin.email)


async def test_a_name_equal_to_the_local_part_but_typed_differently_is_kept(
    client: httpx.AsyncClient, runtime: Runtime, smtp: SmtpServer
) -> None:
    async with runtime.uow() as uow:
        created = await identity.create_organization(
            uow,
            runtime.hasher,
            name=ORG_NAME,
            admin_email=f"Anna@{uuid.uuid4().hex[:10]}.example.com",  # stored as anna@…
            admin_name="Anna",
        )
    org = OrgFixture(created.organization, created.admin, created.admin_password, created.token)
    assert created.admin.email.split("@")[0] == "anna"
    event, _ = await setup(client, runtime, org, smtp)
    text, name, _ = await sent_follow_up(client, runtime, org, smtp, event["id"])
    assert text.rstrip().endswith("Anna") and name == "Anna"


async def test_the_users_page_asks_for_the_missing_name_and_sets_it(
    client: httpx.AsyncClient, unnamed: OrgFixture
) -> None:
    await log_in(client, unnamed.admin.email, unnamed.admin_password)
    page = await client.get("/users")
    assert page.status_code == 200
    row = re.search(
        rf"<tr>\s*<td[^>]*>{re.escape(unnamed.admin.email)}</td>.*?</tr>", page.text, re.S
    )
    assert row and "no name yet" in row.group(0)
    token = CSRF.search(page.text)
    assert token

    refused = await client.post(
        f"/users/{unnamed.admin.id}",
        data={"display_name": "Bea\u2028Boss", "role": "admin", "csrf_token": token.group(1)},
    )
    assert refused.status_code == 422
    assert f'id="name-{unnamed.admin.id}-error"' in refused.text
    assert "control characters" in refused.text
    me = (await client.get("/api/v1/me", headers=unnamed.headers)).json()
    assert me["user"]["display_name"] == unnamed.admin.display_name  # nothing written

    saved = await client.post(
        f"/users/{unnamed.admin.id}",
        data={"display_name": "  Bea Boss ", "role": "admin", "csrf_token": token.group(1)},
    )
    assert saved.status_code == 303
    location = saved.headers["location"]
    assert location == f"/users?done=updated&user={unnamed.admin.id}#updated-notice"
    me = (await client.get("/api/v1/me", headers=unnamed.headers)).json()
    assert me["user"]["display_name"] == "Bea Boss"
    shown = await client.get(location)
    notice = re.search(r'<section [^>]*id="updated-notice".*?</section>', shown.text, re.S)
    assert notice and unnamed.admin.email in notice.group(0), shown.text
    assert "named Bea Boss" in notice.group(0)
    page = await client.get("/users")
    assert 'id="updated-notice"' not in page.text
    assert "no name yet" not in page.text and 'value="Bea Boss"' in page.text

    kept = await client.post(
        f"/users/{unnamed.admin.id}",
        data={"display_name": "", "role": "admin", "csrf_token": token.group(1)},
    )
    assert kept.status_code == 303  # an empty field keeps the name
    me = (await client.get("/api/v1/me", headers=unnamed.headers)).json()
    assert me["user"]["display_name"] == "Bea Boss"
