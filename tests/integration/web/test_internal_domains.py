"""Issue 10, item 3: an organization on an internal mail domain (``firma.local`` behind an
on-premises Exchange) works end to end, on both databases: its admin, its sender, its
leads' addresses are accepted, and the follow-up arrives addressed as typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.utils import parseaddr

import httpx
import pytest

from tests.integration.web.test_follow_ups_api import ENGLISH, follow_up, lead, put_template
from tests.integration.web.test_reports_api import capture, live_event
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server, make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.runtime import Runtime
from visitmail.services import identity


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    started = await start_smtp_server()
    yield started
    await started.close()


async def test_an_admin_on_an_internal_domain_can_be_created(runtime: Runtime) -> None:
    async with runtime.uow() as uow:
        created = await identity.create_organization(
            uow, runtime.hasher, name="Firma", admin_email="Chefin@Firma.LOCAL"
        )
    assert created.admin.email == "chefin@firma.local"


async def test_a_follow_up_to_a_lead_at_firma_local_is_delivered(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    await configure_server(runtime, org, server.port, sender_email="vertrieb@firma.local")
    stored = await client.get("/api/v1/smtp-settings", headers=org.headers)
    assert stored.json()["sender_email"] == "vertrieb@firma.local"
    event = await live_event(client, org)
    await put_template(client, org, event["id"], "en", ENGLISH)
    await put_template(client, org, event["id"], "de", ENGLISH)
    report = await capture(
        client, org.headers, event["id"], lead=lead(email="Anna.Mueller@Firma.Local")
    )
    assert report["lead"]["email"] == "anna.mueller@firma.local"

    reply = await follow_up(client, org.headers, report["id"])
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "queued"
    await make_worker(runtime, org).run_until_idle()

    [envelope] = [m for m in server.recorder.messages if "anna.mueller@firma.local" in m.rcpt_tos]
    assert envelope.mail_from == "vertrieb@firma.local"
    mail = envelope.parsed()
    assert parseaddr(str(mail["From"]))[1] == "vertrieb@firma.local"
    assert parseaddr(str(mail["To"]))[1] == "anna.mueller@firma.local"


@pytest.mark.parametrize("address", ["lab@mail.test", "ops@corp.internal", "postmaster@mailhub"])
async def test_leads_on_special_use_and_dotless_domains_are_accepted(
    client: httpx.AsyncClient, org: OrgFixture, address: str
) -> None:
    event = await live_event(client, org)
    report = await capture(client, org.headers, event["id"], lead=lead(email=address))
    assert report["lead"]["email"] == address


async def test_a_malformed_lead_address_is_still_refused_naming_the_field(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await live_event(client, org)
    body = {
        "event_id": event["id"],
        "lead": lead(email="anna mueller@firma.local"),
        "answers": {},
    }
    reply = await client.post("/api/v1/reports", headers=org.headers, json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "lead.email"
