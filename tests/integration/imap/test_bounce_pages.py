"""The Bounces page (admin) through the HTTP app on both databases, with a real Dovecot
behind its test button: the form prefilled from the mail server, Post/Redirect/Get, errors
beside their field, the test's result, the rates and the newest bounces; others get 403."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx

from tests.integration.imap.conftest import BOUNCES, PASSWORD, SAMPLES
from tests.integration.web.test_outbox_pages import csrf_of, log_in_as
from tests.support.dovecot_server import DovecotServer
from tests.support.orgs import OrgFixture
from tests.support.outbox import enqueue
from visitmail.domain.delivery_events import DeliveryEvent, DeliveryEventKind, EventSource
from visitmail.domain.outbox import MessageKind
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import delivery_events


def form(dovecot: DovecotServer, csrf: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "host": dovecot.host,
        "port": str(dovecot.tls_port),
        "security": "tls",
        "sign_in": "own",
        "username": BOUNCES,
        "password": PASSWORD,
        "folder": "INBOX",
        "enabled": "on",
        **changes,
    }


async def test_save_redirects_and_the_test_button_reports_what_it_saw(
    api: httpx.AsyncClient, loopback_runtime: Runtime, admin: OrgFixture, dovecot: DovecotServer
) -> None:
    await log_in_as(api, loopback_runtime, admin, Role.ADMIN)
    page = await api.get("/settings/bounces")
    assert page.status_code == 200
    assert 'value="127.0.0.1"' in page.text  # the mail server's host, suggested
    assert "None so far." in page.text

    csrf = await csrf_of(api, "/settings/bounces")
    saved = await api.post("/settings/bounces", data=form(dovecot, csrf))
    assert saved.status_code == 303
    assert saved.headers["location"] == "/settings/bounces?done=saved"
    after = await api.get(saved.headers["location"])
    assert "Saved. The worker reads the mailbox every two minutes." in after.text
    assert "not yet: the first poll is due" in after.text
    assert PASSWORD not in after.text

    dovecot.deliver(BOUNCES, (SAMPLES / "gmail_dsn.eml").read_bytes())
    tested = await api.post("/settings/bounces/test", data={"csrf_token": csrf})
    assert tested.status_code == 200
    assert "Signed in and opened the folder." in tested.text
    assert re.search(r"1\s+bounce\s+or\s+complaint\s+arrived", tested.text)


async def test_errors_show_beside_their_field_and_keep_the_form(
    api: httpx.AsyncClient, loopback_runtime: Runtime, admin: OrgFixture, dovecot: DovecotServer
) -> None:
    await log_in_as(api, loopback_runtime, admin, Role.ADMIN)
    csrf = await csrf_of(api, "/settings/bounces")
    for changes, field in (
        ({"port": "99999"}, "port"),
        ({"host": "imap example.com"}, "host"),
        ({"password": ""}, "password"),
        ({"folder": 'a"b'}, "folder"),
    ):
        reply = await api.post("/settings/bounces", data=form(dovecot, csrf, **changes))
        assert reply.status_code == 422, changes
        assert f'id="{field}-error"' in reply.text, field
        assert f'aria-describedby="{field}-error"' in reply.text
    assert (await api.get("/api/v1/bounce-mailbox", headers=admin.headers)).status_code == 404


async def test_a_failing_test_is_a_warning_with_the_step(
    api: httpx.AsyncClient, loopback_runtime: Runtime, admin: OrgFixture, dovecot: DovecotServer
) -> None:
    await log_in_as(api, loopback_runtime, admin, Role.ADMIN)
    csrf = await csrf_of(api, "/settings/bounces")
    await api.post("/settings/bounces", data=form(dovecot, csrf, password="Wrong-Pa55-x"))
    tested = await api.post("/settings/bounces/test", data={"csrf_token": csrf})
    assert 'class="card warning"' in tested.text
    assert "The test failed at the step “login”" in tested.text
    assert "Wrong-Pa55-x" not in tested.text


async def test_rates_and_the_newest_bounces(
    api: httpx.AsyncClient, loopback_runtime: Runtime, admin: OrgFixture
) -> None:
    _, message_id = await enqueue(
        loopback_runtime,
        admin,
        ["lead@fabrikam.example"],
        kind=MessageKind.FOLLOW_UP,
        meta={"report_id": str(uuid.uuid4())},
    )
    event = DeliveryEvent(
        source=EventSource.MAILBOX,
        source_ref="imap:1:1",
        kind=DeliveryEventKind.COMPLAINED,
        address="lead@fabrikam.example",
        message_ids=(message_id,),
        occurred_at=datetime.now(UTC),
        diagnostic="feedback: abuse",
    )
    async with loopback_runtime.uow() as uow:
        await delivery_events.apply_events(
            uow, admin.organization.id, [event], now=datetime.now(UTC)
        )
    await log_in_as(api, loopback_runtime, admin, Role.ADMIN)
    page = (await api.get("/settings/bounces")).text
    assert "Marked as spam" in page and "lead@fabrikam.example" in page
    assert "<dt>Marked as spam</dt><dd>1" in page
    # Not accepted yet: no follow-up counts as sent, so no rate and no warning.
    assert "spam-rate-warning" not in page


async def test_only_admins(
    api: httpx.AsyncClient, loopback_runtime: Runtime, admin: OrgFixture
) -> None:
    await log_in_as(api, loopback_runtime, admin, Role.EVENT_MANAGER)
    assert (await api.get("/settings/bounces")).status_code == 403
