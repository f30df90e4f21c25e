"""Microsoft 365 and Google replies, answered by a real aiosmtpd server at AUTH, MAIL FROM,
RCPT TO and DATA, as the admin meets them: the connection test's JSON
(``POST /api/v1/smtp-settings/test``, the real tester) and the outbox's message detail
(``GET /api/v1/messages/{id}`` and the outbox page) show the same fix. Both databases."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.web.test_outbox_pages import log_in_as
from tests.support.orgs import OrgFixture
from tests.support.outbox import LOOPBACK, ManualClock, configure_server, enqueue, make_worker
from tests.support.smtp_servers import Script, SmtpServer, start_smtp_server
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services.delivery import DeliveryPolicy
from visitmail.web.app import create_app

USER = "sales@example.com"
PASSWORD = "Corr3ct-Horse-Battery"
LEAD = "lead@example.org"

SMTP_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. "
    "[AM0PR02CA0001.eurprd02.prod.outlook.com 2026-12-02T06:40:00.000Z 08DD0A]"
)
SEND_AS_DENIED = (
    "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
    "Failed to process message due to a permanent exception with message "
    "[BeginDiagnosticData]Cannot submit message. 0.35250:0A00C184 "
    "[Hostname=AM9PR02MB7148.eurprd02.prod.outlook.com]"
)
THREAD_LIMIT = (
    "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded "
    "[Hostname=DB9PR02MB7226.eurprd02.prod.outlook.com]"
)
NO_SEND_AS = (
    "550 5.7.60 SMTP; Client does not have permissions to send as this sender "
    "[AM6P193CA0120.EURP193.PROD.OUTLOOK.COM]"
)


@dataclass(frozen=True)
class Case:
    at: str  # auth | mail | rcpt | data
    reply: str
    step: str  # the connection test's failed step
    fix: str  # in the step's fix


CASES = {
    "m365-smtp-auth-disabled": Case(
        "auth", SMTP_AUTH_DISABLED, "auth", "Set-TransportConfig -SmtpClientAuthenticationDisabled"
    ),
    "m365-security-defaults": Case(
        "auth",
        "535 5.7.139 Authentication unsuccessful, user is locked by your organization's "
        "security defaults policy. Contact your administrator.",
        "auth",
        "Switch the authentication method to OAuth2",
    ),
    "m365-app-only": Case(
        "auth",
        "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0003.namprd06.prod.outlook.com]",
        "auth",
        "New-ServicePrincipal",
    ),
    "m365-basic-auth-off": Case(
        "auth",
        "550 5.7.30 Basic authentication is not supported for Client Submission.",
        "auth",
        "end of December 2026",
    ),
    "google-bad-credentials": Case(
        "auth",
        "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
        "535 5.7.8  https://support.google.com/mail/?p=BadCredentials x1-2 - gsmtp",
        "auth",
        "app password",
    ),
    "google-app-password": Case(
        "auth",
        "534-5.7.9 Application-specific password required. For more information, go to\r\n"
        "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor x1-2 - gsmtp",
        "auth",
        "App passwords",
    ),
    "google-too-many-logins": Case(
        "auth",
        "454-4.7.0 Too many login attempts, please try again later. For more information, "
        "go to\r\n454 4.7.0  https://support.google.com/mail/answer/7126229 x1-2 - gsmtp",
        "auth",
        "Wait before the next attempt",
    ),
    "google-auth-required": Case(
        "mail",
        "530-5.7.0 Authentication Required. For more information, go to\r\n"
        "530 5.7.0  https://support.google.com/mail/?p=WantAuthError x1-2 - gsmtp",
        "mail_from",
        "Set the username and password",
    ),
    "m365-thread-limit": Case("mail", THREAD_LIMIT, "mail_from", "to 3 or less"),
    "m365-no-send-as-at-rcpt": Case("rcpt", NO_SEND_AS, "rcpt_to", "Send As"),
    "m365-ip-refused": Case(
        "rcpt",
        "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. "
        "AS(5760) [DM6NAM11FT003.eop-nam11.prod.protection.outlook.com]",
        "rcpt_to",
        "different IP address",
    ),
    "m365-server-busy": Case(
        "rcpt",
        "451 4.7.500 Server busy. Please try again later from [203.0.113.5]. (S77719)",
        "rcpt_to",
        "30 per minute",
    ),
    "m365-send-as-denied-after-data": Case("data", SEND_AS_DENIED, "send", "SendAs -Trustee"),
    "google-daily-limit": Case(
        "data",
        "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n"
        "550-5.4.5 sending limits go to\r\n"
        "550 5.4.5  https://support.google.com/a/answer/166852 x1-2 - gsmtp",
        "send",
        "within 24 hours",
    ),
}


@pytest.fixture
async def servers() -> AsyncIterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    yield started
    for server in started:
        await server.close()


@pytest.fixture
def tester_app(runtime: Runtime) -> FastAPI:
    app = create_app(runtime)
    # The real connection tester, allowed to reach the test's servers on loopback.
    app.state.diagnoser = SmtpConnectionTester(LOOPBACK, allow_plaintext_auth=True)
    return app


@pytest.fixture
async def api(tester_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    address = f"10.7.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    transport = httpx.ASGITransport(app=tester_app, client=(address, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def provider(
    runtime: Runtime, org: OrgFixture, servers: list[SmtpServer], case: Case
) -> SmtpServer:
    """A server answering ``case.reply`` at ``case.at``; the organization logs in to it."""
    script = Script(
        mail=lambda _a: case.reply if case.at == "mail" else None,
        rcpt=lambda _a: case.reply if case.at == "rcpt" else None,
        data=lambda _n: case.reply if case.at == "data" else None,
    )
    server = await start_smtp_server(
        credentials=(USER, PASSWORD),
        auth_require_tls=False,
        auth_reply=case.reply if case.at == "auth" else None,
        script=script,
    )
    servers.append(server)
    await configure_server(runtime, org, server.port, username=USER, password=PASSWORD)
    return server


@pytest.mark.parametrize("name", list(CASES))
async def test_connection_test_explains_the_providers_reply(
    api: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    servers: list[SmtpServer],
    name: str,
) -> None:
    case = CASES[name]
    await provider(runtime, org, servers, case)

    reply = await api.post(
        "/api/v1/smtp-settings/test", headers=org.headers, json={"send_to": LEAD}
    )

    assert reply.status_code == 200, reply.text
    body = reply.json()
    failed = [s for s in body["steps"] if s["status"] == "failed"]
    assert [s["name"] for s in failed] == [case.step], body
    step = failed[0]
    assert case.fix in step["fix"], step
    assert step["reply_code"] == int(case.reply[:3])
    assert PASSWORD not in reply.text


async def message_detail(api: httpx.AsyncClient, org: OrgFixture, pk: uuid.UUID) -> dict[str, Any]:
    reply = await api.get(f"/api/v1/messages/{pk}", headers=org.headers)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def deliver_once(
    runtime: Runtime, org: OrgFixture, policy: DeliveryPolicy | None = None
) -> None:
    """One attempt: the clock stands still, so a deferred message is not due again."""
    worker = make_worker(
        runtime,
        org,
        policy=policy or DeliveryPolicy(),
        allow_plaintext_auth=True,
        clock=ManualClock(),
    )
    await worker.run_until_idle()


async def test_outbox_explains_send_as_denied_after_the_data(
    api: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    await provider(runtime, org, servers, CASES["m365-send-as-denied-after-data"])
    pk, _ = await enqueue(runtime, org, [LEAD])
    await deliver_once(runtime, org)

    body = await message_detail(api, org, pk)
    assert body["status"] == "failed"
    (recipient,) = body["recipients"]
    assert recipient["status"] == "rejected"
    assert recipient["code"] == 554 and recipient["enhanced_status"] == "5.2.0"
    assert recipient["advice"]["topic"] == "sender_not_allowed"
    assert recipient["advice"]["provider"] == "Microsoft 365"
    assert "Add-RecipientPermission" in recipient["advice"]["fix"]
    (attempt,) = body["attempts"]
    assert attempt["outcome"] == "rejected"
    assert attempt["advice"] == recipient["advice"]
    # The sender's problem never puts the lead on the suppression list.
    suppressed = await api.get("/api/v1/suppressions", headers=org.headers)
    assert LEAD not in suppressed.text


async def test_outbox_explains_a_refused_sender_at_mail_from(
    api: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    await provider(runtime, org, servers, Case("mail", NO_SEND_AS, "mail_from", ""))
    pk, _ = await enqueue(runtime, org, [LEAD, "boss@example.org"])
    await deliver_once(runtime, org)

    body = await message_detail(api, org, pk)
    assert body["status"] == "failed"
    assert {r["advice"]["topic"] for r in body["recipients"]} == {"sender_not_allowed"}


async def test_outbox_explains_too_many_connections_and_keeps_it_temporary(
    api: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    await provider(runtime, org, servers, CASES["m365-thread-limit"])
    pk, _ = await enqueue(runtime, org, [LEAD])
    await deliver_once(runtime, org)

    body = await message_detail(api, org, pk)
    assert body["status"] == "deferred"
    (recipient,) = body["recipients"]
    assert recipient["status"] == "deferred"
    assert recipient["advice"]["topic"] == "too_many_connections"
    assert "to 3 or less" in recipient["advice"]["fix"]


async def test_outbox_explains_an_auth_refusal_of_the_whole_connection(
    api: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    await provider(runtime, org, servers, CASES["m365-smtp-auth-disabled"])
    pk, _ = await enqueue(runtime, org, [LEAD])
    await deliver_once(runtime, org, DeliveryPolicy(pause_after=1))

    body = await message_detail(api, org, pk)
    assert body["status"] == "deferred"  # auth failures are retried (and count for health)
    (attempt,) = body["attempts"]
    assert attempt["outcome"] == "server_failure"
    assert attempt["recipient"] is None
    assert attempt["code"] == 535 and attempt["enhanced_status"] == "5.7.139"
    assert attempt["advice"]["topic"] == "smtp_auth_disabled"
    assert "Manage email apps" in attempt["advice"]["fix"]
    assert PASSWORD not in str(body)

    # The outbox page shows the same explanation.
    transport = httpx.ASGITransport(app=create_app(runtime), client=("10.6.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as browser:
        await log_in_as(browser, runtime, org, Role.ADMIN)
        page = await browser.get(f"/outbox/{pk}")
        settings_page = await browser.get("/settings/smtp")
    assert page.status_code == 200
    assert "SMTP AUTH (Authenticated SMTP) is switched off" in page.text
    assert "Set-TransportConfig -SmtpClientAuthenticationDisabled $false" in page.text
    # The queue paused on it: the mail server page says why, with the same fix.
    assert settings_page.status_code == 200
    assert "Sending is paused" in settings_page.text
    assert "Set-TransportConfig -SmtpClientAuthenticationDisabled $false" in settings_page.text
    assert PASSWORD not in settings_page.text
