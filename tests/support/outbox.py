"""Outbox helpers for tests: configure an organization's server, enqueue mail, run a worker
that only serves the test's organizations."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from tests.support.orgs import OrgFixture
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.smtp.sender import SmtpSender
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.outbox import MessageKind
from visitmail.domain.retry_policy import RetryPolicy
from visitmail.domain.smtp_settings import Limits, Security, SmtpSettings, Timeouts
from visitmail.runtime import Runtime
from visitmail.services import outbox, smtp_config
from visitmail.services.clock import Clock, utcnow
from visitmail.services.delivery import DeliveryPolicy
from visitmail.services.oauth_tokens import AccessTokenSource
from visitmail.services.outbox_ports import NewMessage, NewRecipient
from visitmail.services.ports import SmtpSecretField
from visitmail.services.webhook_ports import WebhookDeliverer
from visitmail.worker import DeliveryWorker, WorkerOptions

LOOPBACK = NetworkPolicy((ipaddress.ip_network("127.0.0.0/8"),))
FAST_RETRY = RetryPolicy(
    base=timedelta(milliseconds=50),
    cap=timedelta(milliseconds=200),
    jitter=0,
    max_age=timedelta(minutes=5),
)


async def configure_server(
    runtime: Runtime,
    org: OrgFixture,
    port: int,
    *,
    security: Security = Security.NONE,
    username: str | None = None,
    password: str | None = None,
    limits: Limits | None = None,
    ca_pem: str | None = None,
    sender_email: str = "sales@example.com",
    timeouts: Timeouts | None = None,
) -> None:
    from visitmail.domain.smtp_settings import TlsOptions

    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security=security,
        sender_email=sender_email,
        sender_name="Sales",
        username=username,
        timeouts=timeouts or Timeouts(connect=2, command=5, overall=10),
        limits=limits or Limits(max_connections=2, max_messages_per_connection=50),
        tls=TlsOptions(ca_pem=ca_pem),
    )
    changes = {SmtpSecretField.PASSWORD: password} if password is not None else {}
    async with runtime.uow() as uow:
        await smtp_config.put_settings(
            uow,
            SecretBox(runtime.keyring),
            org.principal,
            settings,
            changes,
            allow_plaintext_auth=True,
        )


def build_mime(message_id: str, to: list[str], subject: str = "Hello") -> bytes:
    mail = EmailMessage()
    mail["From"] = "Sales <sales@example.com>"
    mail["To"] = ", ".join(to)
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail.set_content("Thanks for visiting our booth.\n.\nA line that starts with a dot.\n")
    return mail.as_bytes()


async def enqueue(
    runtime: Runtime,
    org: OrgFixture,
    to: list[str],
    *,
    key: str | None = None,
    subject: str = "Hello",
    clock: Clock = utcnow,
    kind: MessageKind = MessageKind.NOTIFICATION,
    meta: dict[str, str] | None = None,
) -> tuple[uuid.UUID, str]:
    """Enqueue one message (at ``clock()``); returns (outbox id, Message-ID)."""
    message_id = make_msgid(domain="example.com")
    message = NewMessage(
        organization_id=org.organization.id,
        kind=kind,
        idempotency_key=key or uuid.uuid4().hex,
        message_id=message_id,
        mail_from="sales@example.com",
        subject=subject,
        mime=build_mime(message_id, to, subject),
        recipients=[NewRecipient(a) for a in to],
        meta=meta or {},
    )
    async with runtime.uow() as uow:
        result = await outbox.enqueue(uow, message, clock=clock)
        await uow.commit()
    return result.id, message_id


def make_worker(
    runtime: Runtime,
    *orgs: OrgFixture,
    policy: DeliveryPolicy | None = None,
    webhooks: WebhookDeliverer | None = None,
    allow_plaintext_auth: bool = False,
    clock: Callable[[], datetime] | None = None,
    tokens: AccessTokenSource | None = None,
    **options: object,
) -> DeliveryWorker:
    opts = WorkerOptions(
        concurrency=4,
        batch=50,
        poll_interval=0.05,
        flush_interval=0.01,
        probe_interval=0.1,
        grace=5,
        organizations=frozenset(o.organization.id for o in orgs),
        policy=policy
        or DeliveryPolicy(retry=FAST_RETRY, pause_after=3, first_probe=timedelta(milliseconds=100)),
    )
    for name, value in options.items():
        setattr(opts, name, value)
    sender = SmtpSender(LOOPBACK, allow_plaintext_auth=allow_plaintext_auth, tokens=tokens)
    if clock is None:
        return DeliveryWorker(runtime, sender, opts, webhooks=webhooks)
    return DeliveryWorker(runtime, sender, opts, webhooks=webhooks, clock=clock)


class ManualClock:
    """The time the test says it is: workers given the same clock share one "now", which
    moves only when the test calls :meth:`advance` or :meth:`set` (so a slow machine can
    make a test slower, never make a lease or a retry come due early)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def set(self, when: datetime) -> None:
        self.now = max(self.now, when)


async def run_until(
    worker: DeliveryWorker, done: Callable[[], Awaitable[bool]], *, limit: float = 15
) -> None:
    """Run ``worker`` until ``done()`` says so (checked every 50 ms), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(limit):
            while not await done():  # noqa: ASYNC110 (polls the database, not an event)
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


@dataclass(frozen=True)
class Row:
    """What the outbox holds about one message, leases included (not in the API view)."""

    id: uuid.UUID
    message_id: str
    status: str
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    possible_duplicate: bool
    not_before: datetime


async def outbox_rows(runtime: Runtime, org: OrgFixture) -> dict[uuid.UUID, Row]:
    from sqlalchemy import select

    from visitmail.adapters.db.tables import OutboxMessageRow as M

    async with runtime.uow(read_only=True) as uow:
        found = (
            await uow.session.execute(
                select(
                    M.id,
                    M.message_id,
                    M.status,
                    M.attempts,
                    M.lease_owner,
                    M.lease_expires_at,
                    M.possible_duplicate,
                    M.not_before,
                ).where(M.organization_id == org.organization.id)
            )
        ).all()
    return {r.id: Row(*r) for r in found}


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, limit: float = 20, what: str = "condition"
) -> None:
    """Poll ``check`` every 20 ms until it holds; fail after ``limit`` seconds (a bound for
    a broken build, not a timing the test relies on)."""
    try:
        async with asyncio.timeout(limit):
            while not await check():  # noqa: ASYNC110 (polls the database or a server)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {limit:g} s: {what}") from None


async def run_on_clock(
    worker: DeliveryWorker,
    clock: ManualClock,
    runtime: Runtime,
    org: OrgFixture,
    done: Callable[[], Awaitable[bool]],
    *,
    limit: float = 20,
) -> None:
    """Run ``worker`` (built with ``clock``) until ``done()``: whenever the organization's
    messages all wait for a later ``not_before``, move the clock there, as if that time
    had passed. Retries and expiry then follow the policy exactly, however slow the
    machine is."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(limit):
            while not await done():
                rows = (await outbox_rows(runtime, org)).values()
                if rows and all(r.status in ("queued", "deferred") for r in rows):
                    due = min(r.not_before for r in rows)
                    if due > clock():
                        clock.set(due)
                        worker.wake()
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task


async def enqueue_many(
    runtime: Runtime, org: OrgFixture, count: int, *, prefix: str, chunk: int = 500
) -> list[str]:
    """Enqueue ``count`` small one-recipient messages through the outbox's batch enqueue
    (``outbox.enqueue_many``), ``chunk`` per transaction; returns their Message-IDs."""
    tag = uuid.uuid4().hex[:8]
    message_ids = [f"<{prefix}-{i}-{tag}@example.com>" for i in range(count)]
    for start in range(0, count, chunk):
        batch = []
        for i in range(start, min(start + chunk, count)):
            mid, to = message_ids[i], f"lead{i}@example.org"
            batch.append(
                NewMessage(
                    organization_id=org.organization.id,
                    kind=MessageKind.NOTIFICATION,
                    idempotency_key=f"{prefix}-{i}",
                    message_id=mid,
                    mail_from="sales@example.com",
                    subject=f"{prefix} {i}",
                    mime=build_mime(mid, [to], f"{prefix} {i}"),
                    recipients=[NewRecipient(to)],
                )
            )
        async with runtime.uow() as uow:
            await outbox.enqueue_many(uow, batch)
            await uow.commit()
    return message_ids
