"""The bounce mailbox reader against a real Dovecot (tests/support/dovecot_server.py):
IMAPS and STARTTLS, read-only (nothing marked read, moved or deleted), the cursor, only
reports fetched whole, and each failure named by its step without the password."""

from __future__ import annotations

import imaplib
import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from tests.integration.smtp.conftest import http_proxy, settings_for, socks5_proxy
from tests.integration.smtp.test_proxies import proxied
from tests.support.dovecot_server import DovecotServer, running_dovecot
from tests.support.proxies import ProxyProcess
from visitmail.adapters.imap.mailbox import MailboxFailure, MailboxStep, poll_mailbox
from visitmail.domain.bounce_mailbox import BounceMailbox, MailboxCursor
from visitmail.domain.delivery_reports import ReportKind, read_report
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.smtp_settings import ProxyKind, ProxySettings, Security, SmtpSecrets
from visitmail.services.bounce_mailbox_ports import MailboxLogin as Login

SAMPLES = Path(__file__).resolve().parents[2] / "unit" / "domain" / "reports_samples"
USER = "sales@acme.example"
PASSWORD = "Imap-Pa55-word-7"
LOOPBACK = NetworkPolicy((ipaddress.ip_network("127.0.0.0/8"),))
NOW = datetime.now(UTC)  # the first look searches SINCE a day: Dovecot's clock is real
__all__ = ["http_proxy", "socks5_proxy"]  # fixtures, shared with the SMTP proxy tests
PERSON = b"From: Lead <lead@example.com>\r\nSubject: Re: Thanks\r\n\r\nCall me.\r\n"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    with running_dovecot(ca=trustme.CA(), users={USER: PASSWORD}) as server:
        yield server


@pytest.fixture
def user(dovecot: DovecotServer) -> Iterator[str]:
    """The test's own mailbox (an empty INBOX), removed afterwards."""
    yield USER
    dovecot.empty(USER)


async def poll(
    server: DovecotServer,
    *,
    security: Security = Security.TLS,
    port: int | None = None,
    password: str = PASSWORD,
    folder: str = "INBOX",
    cursor: MailboxCursor | None = None,
    ca_pem: str | None = None,
    policy: NetworkPolicy = LOOPBACK,
    proxy: ProxySettings | None = None,
):  # type: ignore[no-untyped-def]
    mailbox = BounceMailbox(
        host=server.host,
        port=port or (server.tls_port if security is Security.TLS else server.port),
        security=security,
        folder=folder,
    )
    smtp = settings_for(ca_pem=ca_pem or server.ca_pem, **({"proxy": proxy} if proxy else {}))
    return await poll_mailbox(
        mailbox,
        smtp,
        SmtpSecrets(),
        Login(USER, password=password),
        policy=policy,
        cursor=cursor,
        now=NOW,
    )


def flags(server: DovecotServer) -> list[bytes]:
    client = imaplib.IMAP4_SSL(
        server.host, server.tls_port, ssl_context=ssl.create_default_context(cadata=server.ca_pem)
    )
    try:
        client.login(USER, PASSWORD)
        client.select("INBOX", readonly=True)
        _typ, data = client.fetch("1:*", "(FLAGS)")
        return [d for d in data if isinstance(d, bytes)]
    finally:
        client.logout()


async def test_reads_only_reports_and_changes_nothing(dovecot: DovecotServer, user: str) -> None:
    dovecot.deliver(user, (SAMPLES / "postfix_bounce.eml").read_bytes())
    dovecot.deliver(user, PERSON)
    dovecot.deliver(user, (SAMPLES / "arf_complaint.eml").read_bytes())

    batch = await poll(dovecot)

    assert (batch.looked_at, batch.messages_in_folder) == (3, 3)
    first = batch.cursor.last_uid - 2
    # The person's reply (the second) is not fetched whole.
    assert [m.uid for m in batch.mails] == [first, first + 2]
    kinds = [read_report(m.raw).kind for m in batch.mails]  # type: ignore[union-attr]
    assert kinds == [ReportKind.BOUNCE, ReportKind.COMPLAINT]
    assert batch.cursor.uidvalidity > 0
    # Read-only: still three messages, none marked \Seen.
    assert dovecot.stored(user) == 3
    assert all(b"\\Seen" not in f for f in flags(dovecot))


async def test_the_cursor_reads_only_what_arrived_since(dovecot: DovecotServer, user: str) -> None:
    dovecot.deliver(user, (SAMPLES / "postfix_bounce.eml").read_bytes())
    first = await poll(dovecot)
    again = await poll(dovecot, cursor=first.cursor)
    assert (again.looked_at, again.mails, again.cursor) == (0, (), first.cursor)

    dovecot.deliver(user, (SAMPLES / "gmail_dsn.eml").read_bytes())
    later = await poll(dovecot, security=Security.STARTTLS, cursor=first.cursor)
    assert later.looked_at == 1
    [mail] = later.mails
    assert mail.uid == first.cursor.last_uid + 1
    assert read_report(mail.raw) is not None
    assert later.cursor.last_uid == mail.uid


async def test_a_new_uidvalidity_starts_over_with_a_first_look(
    dovecot: DovecotServer, user: str
) -> None:
    dovecot.deliver(user, (SAMPLES / "postfix_bounce.eml").read_bytes())
    first = await poll(dovecot)
    stale = MailboxCursor(first.cursor.uidvalidity + 1, 99)
    batch = await poll(dovecot, cursor=stale)
    assert [m.uid for m in batch.mails] == [first.cursor.last_uid]
    assert batch.cursor == first.cursor


async def test_a_wrong_password_fails_at_login_without_the_password(
    dovecot: DovecotServer, user: str
) -> None:
    with pytest.raises(MailboxFailure) as caught:
        await poll(dovecot, password="Wrong-Secret-Value-99")
    failure = caught.value
    assert failure.step is MailboxStep.LOGIN
    assert "refused the sign-in as sales@acme.example" in failure.message
    assert "Wrong-Secret-Value-99" not in failure.message + failure.fix
    assert "app password" in failure.fix


async def test_an_unknown_folder_is_named(dovecot: DovecotServer, user: str) -> None:
    with pytest.raises(MailboxFailure) as caught:
        await poll(dovecot, folder="Bounces")
    assert caught.value.step is MailboxStep.FOLDER
    assert "Bounces" in caught.value.message


async def test_an_untrusted_certificate_fails_at_tls(dovecot: DovecotServer, user: str) -> None:
    other_ca = trustme.CA().cert_pem.bytes().decode()
    with pytest.raises(MailboxFailure) as caught:
        await poll(dovecot, ca_pem=other_ca)
    assert caught.value.step is MailboxStep.TLS
    assert "could not be verified" in caught.value.message


async def test_tls_on_the_starttls_port_is_explained(dovecot: DovecotServer, user: str) -> None:
    with pytest.raises(MailboxFailure) as caught:
        await poll(dovecot, security=Security.TLS, port=dovecot.port)
    assert caught.value.step in (MailboxStep.CONNECT, MailboxStep.TLS)
    assert "993" in caught.value.fix


async def test_the_network_guard_refuses_loopback_unless_allowed(
    dovecot: DovecotServer, user: str
) -> None:
    with pytest.raises(MailboxFailure) as caught:
        await poll(dovecot, policy=NetworkPolicy(()))
    assert caught.value.step is MailboxStep.CONNECT


@pytest.mark.parametrize("kind", [ProxyKind.SOCKS5, ProxyKind.HTTP])
async def test_reads_through_the_mail_servers_proxy(
    dovecot: DovecotServer,
    user: str,
    kind: ProxyKind,
    socks5_proxy: ProxyProcess,
    http_proxy: ProxyProcess,
) -> None:
    proxy = socks5_proxy if kind is ProxyKind.SOCKS5 else http_proxy
    dovecot.deliver(user, (SAMPLES / "postfix_bounce.eml").read_bytes())
    batch = await poll(dovecot, proxy=proxied(proxy, kind))
    assert len(batch.mails) == 1
    assert str(dovecot.tls_port) in proxy.log()  # the proxy made the connection


async def test_a_host_that_does_not_resolve_is_named_with_an_imap_example(
    dovecot: DovecotServer, user: str
) -> None:
    mailbox = BounceMailbox(host="no-such-host.invalid")
    with pytest.raises(MailboxFailure) as caught:
        await poll_mailbox(
            mailbox,
            settings_for(ca_pem=dovecot.ca_pem),
            SmtpSecrets(),
            Login(USER, password=PASSWORD),
            policy=LOOPBACK,
            cursor=None,
            now=NOW,
        )
    assert caught.value.step is MailboxStep.CONNECT
    assert "no-such-host.invalid could not be resolved" in caught.value.message
    assert "IMAP host name (for example outlook.office365.com)" in caught.value.fix
