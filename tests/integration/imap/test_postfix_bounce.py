"""Issue 13's "Done when", against real daemons: a follow-up to an unknown address is sent
through a stock Postfix (STARTTLS, SASL), which says 250 and then bounces it; Postfix's own
DSN lands in the sending mailbox (a Maildir that a real Dovecot serves over IMAPS); the
poll marks the message and the report bounced, suppresses the address, and the next bulk
send skips it. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import trustme

from tests.integration.imap.conftest import clock, poll_bounces
from tests.integration.web.test_follow_ups_api import GERMAN, follow_up, put_template
from tests.integration.web.test_reports_api import capture, live_event
from tests.support.dovecot_server import DovecotServer, running_dovecot
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server, make_worker
from tests.support.postfix_server import (
    LocalMail,
    PostfixAccount,
    PostfixServer,
    PostfixUnavailable,
    start_postfix,
)
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.domain.bounce_mailbox import BounceMailbox
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.outbox import RecipientStatus
from visitmail.domain.smtp_settings import Security
from visitmail.runtime import Runtime
from visitmail.services import bounce_mailbox, outbox

SALES = "sales@acme.example"
MAILBOX_PASSWORD = "Sales-Imap-Pa55"
ALICE = PostfixAccount(
    login="alice@acme.example", password="Alice-Submission-Pa55", may_send_as=(SALES,)
)
UNKNOWN = "nobody@fabrikam.example"


@dataclass
class Daemons:
    postfix: PostfixServer
    dovecot: DovecotServer


@pytest.fixture(scope="module")
def daemons() -> Iterator[Daemons]:
    ca = trustme.CA()
    with running_dovecot(ca=ca, users={SALES: MAILBOX_PASSWORD}) as dovecot:
        local = LocalMail(
            base=dovecot.directory / "mail",
            domains=("acme.example", "fabrikam.example"),
            mailboxes=(SALES,),
        )
        try:
            postfix = start_postfix(ca=ca, accounts=[ALICE], local=local)
        except PostfixUnavailable as e:
            pytest.skip(f"no real Postfix on this machine: {e}")
        try:
            yield Daemons(postfix, dovecot)
        finally:
            postfix.stop()


def wait_for_mail(dovecot: DovecotServer, user: str, count: int, seconds: float = 30) -> None:
    """Postfix bounces from its queue manager, a moment after the 250."""
    deadline = time.monotonic() + seconds
    while dovecot.stored(user) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"no DSN for {user} after {seconds} s")
        time.sleep(0.1)


async def test_a_follow_up_postfix_bounces_ends_bounced_and_suppressed(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, daemons: Daemons
) -> None:
    postfix, dovecot = daemons.postfix, daemons.dovecot
    await configure_server(
        runtime,
        org,
        postfix.port,
        security=Security.STARTTLS,
        username=ALICE.login,
        password=ALICE.password,
        ca_pem=postfix.ca_pem,
        sender_email=SALES,
    )
    async with runtime.uow() as uow:
        await bounce_mailbox.put_mailbox(
            uow,
            SecretBox(runtime.keyring),
            org.principal,
            BounceMailbox(host=dovecot.host, port=dovecot.tls_port, username=SALES),
            password=MAILBOX_PASSWORD,
            now=clock(),
        )
    event = await live_event(client, org)
    await put_template(client, org, event["id"], "de", GERMAN)
    lead = {"last_name": "Niemand", "company": "Fabrikam", "email": UNKNOWN, "language": "de"}
    report = await capture(client, org.headers, event["id"], lead=lead)
    queued = await follow_up(client, org.headers, report["id"])
    assert queued.status_code == 200, queued.text
    outbox_id = uuid.UUID(queued.json()["message_id"])
    before = dovecot.stored(SALES)

    await make_worker(runtime, org).run_until_idle()
    async with runtime.uow() as uow:
        sent = await outbox.get_message(uow, org.principal, outbox_id)
    assert sent.recipients[0].status is RecipientStatus.ACCEPTED  # Postfix said 250
    postfix.wait_for_log(f"to=<{UNKNOWN}>")
    wait_for_mail(dovecot, SALES, before + 1)

    polled = await poll_bounces(runtime, org)

    assert polled is not None and polled.error is None, polled
    assert polled.applied == 1 and polled.suppressed == (UNKNOWN,)
    async with runtime.uow() as uow:
        message = await outbox.get_message(uow, org.principal, outbox_id)
        entry = await uow.suppressions.get(org.organization.id, UNKNOWN)
        reported = await uow.delivery_events.for_report(
            org.organization.id, uuid.UUID(report["id"])
        )
    [recipient] = message.recipients
    assert recipient.status is RecipientStatus.BOUNCED
    assert recipient.enhanced == "5.1.1"
    assert "unknown" in (recipient.text or "").lower()
    assert entry is not None and entry.reason is SuppressionReason.BOUNCED
    assert [(e.kind, e.severity) for e in reported] == [("bounced", "hard")]

    # The next bulk send skips the address.
    again = await capture(client, org.headers, event["id"], lead=lead)
    bulk = await client.post(
        "/api/v1/follow-ups/bulk", headers=org.headers, json={"report_ids": [again["id"]]}
    )
    assert bulk.status_code == 200, bulk.text
    assert [r["status"] for r in bulk.json()["results"]] == ["suppressed"]
