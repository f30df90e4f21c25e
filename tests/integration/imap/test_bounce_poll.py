"""A follow-up is delivered (aiosmtpd says 250), its bounce lands in the sending mailbox (a
real Dovecot), and the poll marks it bounced and suppresses the address; on SQLite and
PostgreSQL. Also the settings rules, the stored error and the poll lease."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import trustme

from tests.integration.imap.conftest import clock, poll_bounces
from tests.support.dovecot_server import DovecotServer, running_dovecot
from tests.support.orgs import OrgFixture
from tests.support.outbox import LOOPBACK, configure_server, enqueue, make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.adapters.crypto.keyring import KeyRing, new_key
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.delivery.bounce_poller import BouncePoller
from visitmail.domain.bounce_mailbox import BounceMailbox
from visitmail.domain.errors import InvalidInput
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.outbox import MessageKind, RecipientStatus
from visitmail.domain.smtp_settings import Security
from visitmail.runtime import Runtime
from visitmail.services import bounce_mailbox, outbox

SAMPLES = Path(__file__).resolve().parents[2] / "unit" / "domain" / "reports_samples"
POSTFIX_ID = b"<0190c1f2-7d3e-7b4a-9f00-1c2d3e4f5a6b@acme.example>"
BOUNCES = "bounces@acme.example"
PASSWORD = "Bounce-Box-Pa55"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    with running_dovecot(ca=trustme.CA(), users={BOUNCES: PASSWORD}) as server:
        yield server


@pytest.fixture(autouse=True)
def empty_mailbox(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "dovecot" in request.fixturenames:
        request.getfixturevalue("dovecot").empty(BOUNCES)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = await start_smtp_server()
    yield server
    await server.close()


async def set_up(
    runtime: Runtime, org: OrgFixture, dovecot: DovecotServer, smtp: SmtpServer, password: str
) -> None:
    await configure_server(runtime, org, smtp.port, ca_pem=dovecot.ca_pem)
    async with runtime.uow() as uow:
        await bounce_mailbox.put_mailbox(
            uow,
            SecretBox(runtime.keyring),
            org.principal,
            BounceMailbox(host=dovecot.host, port=dovecot.tls_port, username=BOUNCES),
            password=password,
            now=clock(),
        )


async def test_a_bounce_in_the_mailbox_marks_the_follow_up_and_suppresses(
    runtime: Runtime, org: OrgFixture, dovecot: DovecotServer, smtp: SmtpServer
) -> None:
    await set_up(runtime, org, dovecot, smtp, PASSWORD)
    pk, message_id = await enqueue(
        runtime,
        org,
        ["nobody@fabrikam.example"],
        kind=MessageKind.FOLLOW_UP,
        meta={"report_id": str(uuid.uuid4())},
    )
    await make_worker(runtime, org).run_until_idle()
    dsn = (SAMPLES / "postfix_bounce.eml").read_bytes().replace(POSTFIX_ID, message_id.encode())
    dovecot.deliver(BOUNCES, dsn)

    result = await poll_bounces(runtime, org)

    assert result is not None and result.error is None
    assert (result.reports, result.applied) == (1, 1)
    assert result.suppressed == ("nobody@fabrikam.example",)
    async with runtime.uow() as uow:
        message = await outbox.get_message(uow, org.principal, pk)
        entry = await uow.suppressions.get(org.organization.id, "nobody@fabrikam.example")
        view = await bounce_mailbox.get_mailbox(uow, org.principal)
    assert message.recipients[0].status is RecipientStatus.BOUNCED
    assert entry is not None and entry.reason is SuppressionReason.BOUNCED
    assert view.state.reports_found == 1 and view.state.last_error is None
    assert view.state.cursor is not None and view.password_set

    again = await poll_bounces(runtime, org)
    assert again is not None and (again.looked_at, again.applied) == (0, 0)


async def test_a_failed_sign_in_is_stored_and_the_cursor_stays(
    runtime: Runtime, org: OrgFixture, dovecot: DovecotServer, smtp: SmtpServer
) -> None:
    await set_up(runtime, org, dovecot, smtp, "Not-The-Password-1")
    result = await poll_bounces(runtime, org)
    assert result is not None and result.error is not None
    assert "refused the sign-in as bounces@acme.example" in result.error
    assert "Not-The-Password-1" not in result.error
    async with runtime.uow() as uow:
        view = await bounce_mailbox.get_mailbox(uow, org.principal)
    assert view.state.last_error == result.error
    assert view.state.cursor is None and view.state.last_polled_at is not None


async def test_one_worker_polls_a_mailbox_at_a_time(
    runtime: Runtime, org: OrgFixture, dovecot: DovecotServer, smtp: SmtpServer
) -> None:
    await set_up(runtime, org, dovecot, smtp, PASSWORD)
    now = clock()
    async with runtime.uow() as uow:
        assert await uow.bounce_mailboxes.claim(
            org.organization.id, now, now + timedelta(minutes=5)
        )
        await uow.commit()
    assert await poll_bounces(runtime, org) is None  # the lease is held elsewhere
    async with runtime.uow() as uow:
        due = await uow.bounce_mailboxes.due(now, now, 1000)
    assert org.organization.id not in due


async def test_settings_rules(runtime: Runtime, org: OrgFixture, smtp: SmtpServer) -> None:
    box = SecretBox(runtime.keyring)
    mailbox = BounceMailbox(host="imap.example.com", username=BOUNCES)
    async with runtime.uow() as uow:
        with pytest.raises(InvalidInput) as caught:
            await bounce_mailbox.put_mailbox(
                uow, box, org.principal, mailbox, password=bounce_mailbox.KEEP, now=clock()
            )
    assert caught.value.field == "password"
    async with runtime.uow() as uow:
        with pytest.raises(InvalidInput) as caught:
            await bounce_mailbox.put_mailbox(
                uow,
                box,
                org.principal,
                BounceMailbox(host="imap.example.com"),
                password=None,
                now=clock(),
            )
    assert caught.value.field == "username"  # no mail server to sign in like
    with pytest.raises(InvalidInput) as bad:
        BounceMailbox(host="imap example.com")
    assert bad.value.field == "host"
    with pytest.raises(InvalidInput) as bad:
        BounceMailbox(host="imap.example.com", folder='In"box')
    assert bad.value.field == "folder"
    assert BounceMailbox(host="IMAP.Example.com", security=Security.STARTTLS).host == (
        "imap.example.com"
    )


async def test_the_worker_polls_a_due_mailbox(
    runtime: Runtime, org: OrgFixture, dovecot: DovecotServer, smtp: SmtpServer
) -> None:
    await set_up(runtime, org, dovecot, smtp, PASSWORD)
    poller = BouncePoller(runtime, LOOPBACK, clock, every=timedelta(seconds=0))
    assert await poller.poll_due() >= 1
    async with runtime.uow() as uow:
        view = await bounce_mailbox.get_mailbox(uow, org.principal)
    assert view.state.last_polled_at is not None and view.state.last_error is None
    assert view.state.cursor is not None


async def test_master_key_rotation_reseals_the_mailbox_password_and_polls_still_sign_in(
    runtime: Runtime, org: OrgFixture, dovecot: DovecotServer, smtp: SmtpServer
) -> None:
    await set_up(runtime, org, dovecot, smtp, PASSWORD)
    async with runtime.uow() as uow:
        before = await uow.bounce_mailboxes.sealed_passwords(org.organization.id)
    ring = KeyRing([*runtime.keyring.keys, new_key()])
    result = await bounce_mailbox.rotate_keys(runtime.uow, SecretBox(ring))
    assert result.reencrypted >= 1 and result.unreadable == 0
    async with runtime.uow() as uow:
        after = await uow.bounce_mailboxes.sealed_passwords(org.organization.id)
    assert after is not None and after != before
    assert after.startswith(f"v1:{ring.newest.key_id}:")
    polled = await poll_bounces(runtime, org, box=SecretBox(ring))
    assert polled is not None and polled.error is None
