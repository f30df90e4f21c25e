"""Webhook delivery through the outbox against a real local HTTP receiver, on SQLite and
PostgreSQL: signed requests, retries on 5xx, rejection on 4xx, missing secrets, the network
policy, URL rules at enqueue, and the secret never showing up anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.orgs import OrgFixture
from tests.support.outbox import LOOPBACK, make_worker
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.webhooks.sender import WebhookTransport
from visitmail.domain.errors import InvalidInput
from visitmail.domain.network_policy import REFUSED, NetworkPolicy
from visitmail.domain.outbox import MessageKind, MessageStatus, RecipientStatus
from visitmail.runtime import Runtime
from visitmail.services import outbox, webhooks
from visitmail.services.outbox_ports import MessageView, NewMessage, NewRecipient

SECRET = "whsec_test-Secret-Value-0123456789"
PAYLOAD = {"event": "report.exported", "report": {"lead": {"last_name": "Müller"}}}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server: records every request, answers ``status(n)`` (n from 1)."""

    status: Callable[[int], int] = lambda _n: 200
    requests: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            code = self.status(len(self.requests))
            answer = f"status {code} from the receiver".encode()
            writer.write(
                f"HTTP/1.1 {code} X\r\nContent-Length: {len(answer)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        finally:
            writer.close()

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        await r.close()


async def receiver(receivers: list[Receiver], status: Callable[[int], int] | None = None):  # type: ignore[no-untyped-def]
    r = await Receiver(status=status or (lambda _n: 200)).start()
    receivers.append(r)
    return r


async def put_secret(runtime: Runtime, org: OrgFixture, name: str = "crm", value: str = SECRET):  # type: ignore[no-untyped-def]
    async with runtime.uow() as uow:
        return await webhooks.put_secret(
            uow, SecretBox(runtime.keyring), org.principal, name, value
        )


def webhook_message(org: OrgFixture, url: str, secret_ref: str = "crm") -> NewMessage:
    return NewMessage(
        organization_id=org.organization.id,
        kind=MessageKind.WEBHOOK,
        idempotency_key=uuid.uuid4().hex,
        message_id=f"<{uuid.uuid4()}@visitmail>",
        mail_from="sales@example.com",
        subject="webhook report.exported",
        mime=json.dumps(PAYLOAD, ensure_ascii=False).encode("utf-8"),
        recipients=[NewRecipient(url)],
        meta={"url": url, "secret_ref": secret_ref, "content_type": "application/json"},
    )


async def enqueue_webhook(runtime: Runtime, org: OrgFixture, url: str, secret_ref: str = "crm"):  # type: ignore[no-untyped-def]
    message = webhook_message(org, url, secret_ref)
    async with runtime.uow() as uow:
        result = await outbox.enqueue(uow, message)
        await uow.commit()
    return result.id, message


async def view(runtime: Runtime, org: OrgFixture, pk: uuid.UUID) -> MessageView:
    async with runtime.uow() as uow:
        return await outbox.get_message(uow, org.principal, pk)


def worker(runtime: Runtime, org: OrgFixture, policy: NetworkPolicy = LOOPBACK):  # type: ignore[no-untyped-def]
    return make_worker(runtime, org, webhooks=WebhookTransport(policy))


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


async def test_delivers_a_signed_json_post_without_smtp_settings(
    runtime: Runtime, org: OrgFixture, receivers: list[Receiver]
) -> None:
    rx = await receiver(receivers)
    await put_secret(runtime, org)
    pk, message = await enqueue_webhook(runtime, org, rx.url())

    await worker(runtime, org).run_until_idle()  # the organization has no SMTP settings

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.SENT
    assert msg.kind is MessageKind.WEBHOOK
    assert [r.status for r in msg.recipients] == [RecipientStatus.ACCEPTED]
    assert [(a.outcome, a.code) for a in msg.attempt_log] == [("accepted", 250)]
    assert (msg.attempt_log[0].text or "").startswith("HTTP 200")
    (got,) = rx.requests
    assert (got.method, got.path) == ("POST", "/hook")
    assert json.loads(got.body) == PAYLOAD
    assert got.body == message.mime
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "visitmail"
    assert got.headers["x-visitmail-id"] == message.message_id
    timestamp = got.headers["x-visitmail-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    assert got.headers["x-visitmail-signature"] == expected_signature(SECRET, timestamp, got.body)
    assert got.headers["x-visitmail-signature"] != expected_signature("wrong", timestamp, got.body)


async def test_a_failing_receiver_is_retried_then_delivered(
    runtime: Runtime, org: OrgFixture, receivers: list[Receiver]
) -> None:
    rx = await receiver(receivers, lambda n: 500 if n == 1 else 200)
    await put_secret(runtime, org)
    pk, message = await enqueue_webhook(runtime, org, rx.url())

    await worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.SENT
    assert msg.attempts == 2
    assert [(a.outcome, a.code) for a in msg.attempt_log] == [("deferred", 451), ("accepted", 250)]
    assert "HTTP 500" in (msg.attempt_log[0].text or "")
    assert [r.headers["x-visitmail-id"] for r in rx.requests] == [message.message_id] * 2
    for r in rx.requests:  # each attempt signed afresh, and valid
        ts = r.headers["x-visitmail-timestamp"]
        assert r.headers["x-visitmail-signature"] == expected_signature(SECRET, ts, r.body)


async def test_a_4xx_is_rejected_and_not_retried(
    runtime: Runtime, org: OrgFixture, receivers: list[Receiver]
) -> None:
    rx = await receiver(receivers, lambda _n: 404)
    await put_secret(runtime, org)
    pk, _ = await enqueue_webhook(runtime, org, rx.url())

    await worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.FAILED
    assert [r.status for r in msg.recipients] == [RecipientStatus.REJECTED]
    assert [(a.outcome, a.code) for a in msg.attempt_log] == [("rejected", 550)]
    assert "HTTP 404" in (msg.attempt_log[0].text or "")
    assert len(rx.requests) == 1


async def test_429_is_deferred_as_rate_limited(
    runtime: Runtime, org: OrgFixture, receivers: list[Receiver]
) -> None:
    rx = await receiver(receivers, lambda n: 429 if n == 1 else 204)
    await put_secret(runtime, org)
    pk, _ = await enqueue_webhook(runtime, org, rx.url())

    await worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.SENT
    assert [a.outcome for a in msg.attempt_log] == ["deferred", "accepted"]
    assert "rate" in (msg.attempt_log[0].text or "")


async def test_a_missing_secret_fails_with_the_reason(
    runtime: Runtime, org: OrgFixture, receivers: list[Receiver]
) -> None:
    rx = await receiver(receivers)
    pk, _ = await enqueue_webhook(runtime, org, rx.url(), secret_ref="nope")

    await worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.FAILED
    assert msg.recipients[0].text == "webhook secret nope is not defined"
    assert msg.last_error is not None and "webhook secret nope is not defined" in msg.last_error
    assert rx.requests == []


@pytest.mark.parametrize(
    "url_of",
    [
        pytest.param(lambda rx: "https://10.20.30.40/hook", id="private-literal"),
        pytest.param(lambda rx: rx.url(host="localhost"), id="name-resolving-to-loopback"),
        pytest.param(lambda rx: rx.url(host="[::1]"), id="ipv6-loopback"),
    ],
)
async def test_hosts_in_networks_not_allowed_are_refused(
    runtime: Runtime,
    org: OrgFixture,
    receivers: list[Receiver],
    url_of: Callable[[Receiver], str],
) -> None:
    rx = await receiver(receivers)
    await put_secret(runtime, org)
    pk, _ = await enqueue_webhook(runtime, org, url_of(rx))

    await worker(runtime, org, NetworkPolicy()).run_until_idle()  # the default policy

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.FAILED
    assert [(a.outcome, a.code) for a in msg.attempt_log] == [("rejected", 550)]
    assert REFUSED[:60] in (msg.attempt_log[0].text or "")
    assert rx.requests == []


async def test_webhooks_go_out_while_the_smtp_queue_is_paused(
    runtime: Runtime, org: OrgFixture, receivers: list[Receiver]
) -> None:
    from datetime import UTC, datetime, timedelta

    async with runtime.uow() as uow:
        await uow.health.record_failure(
            org.organization.id,
            "connect: refused",
            datetime.now(UTC),
            pause_after=1,
            probe_in=timedelta(hours=1),
        )
        await uow.commit()
    rx = await receiver(receivers)
    await put_secret(runtime, org)
    pk, _ = await enqueue_webhook(runtime, org, rx.url())

    await worker(runtime, org).run_until_idle()

    assert (await view(runtime, org, pk)).status is MessageStatus.SENT
    assert len(rx.requests) == 1
    async with runtime.uow() as uow:
        health = await uow.health.get(org.organization.id)
    assert health is not None and health.paused  # a webhook does not vouch for SMTP


async def test_the_secret_never_shows_in_the_ledger_api_or_logs(
    runtime: Runtime,
    org: OrgFixture,
    receivers: list[Receiver],
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    rx = await receiver(receivers, lambda n: 503 if n == 1 else 200)
    await put_secret(runtime, org)
    pk, _ = await enqueue_webhook(runtime, org, rx.url())
    await worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.SENT
    assert SECRET not in repr(msg)
    detail = await client.get(f"/api/v1/messages/{pk}", headers=org.headers)
    listed = await client.get("/api/v1/webhook-secrets", headers=org.headers)
    assert detail.status_code == listed.status_code == 200
    assert SECRET not in detail.text
    assert SECRET not in listed.text
    assert listed.json()[0]["name"] == "crm"
    captured = capsys.readouterr()
    assert SECRET not in caplog.text
    assert SECRET not in captured.out + captured.err
    async with runtime.uow() as uow:
        stored = await uow.webhook_secrets.get_sealed(org.organization.id, "crm")
    assert stored is not None and SECRET not in stored and stored.startswith("v1:")


@pytest.mark.parametrize(
    ("recipients", "meta", "field"),
    [
        (["http://example.com/hook"], {}, "recipients[0]"),
        (["http://10.0.0.1/hook"], {}, "recipients[0]"),
        (["ftp://example.com/hook"], {}, "recipients[0]"),
        (["lead@example.com"], {}, "recipients[0]"),
        (["https://user:pw@example.com/hook"], {}, "recipients[0]"),
        (["https://example.com/a", "https://example.com/b"], {}, "recipients"),
        (["https://example.com/hook"], {"secret_ref": "bad name"}, "meta.secret_ref"),
        (["https://example.com/hook"], {"content_type": "a\r\nX-Evil: 1"}, "meta.content_type"),
    ],
)
async def test_bad_webhook_messages_are_refused_at_enqueue(
    runtime: Runtime,
    org: OrgFixture,
    recipients: list[str],
    meta: dict[str, str],
    field: str,
) -> None:
    base = webhook_message(org, recipients[0])
    message = NewMessage(
        organization_id=base.organization_id,
        kind=base.kind,
        idempotency_key=base.idempotency_key,
        message_id=base.message_id,
        mail_from=base.mail_from,
        subject=base.subject,
        mime=base.mime,
        recipients=[NewRecipient(r) for r in recipients],
        meta={**base.meta, **meta},
    )
    async with runtime.uow() as uow:
        with pytest.raises(InvalidInput) as refused:
            await outbox.enqueue(uow, message)
    assert refused.value.field == field


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/x?y=1", "http://localhost:8080/x", "http://[::1]/x"]
)
async def test_good_webhook_urls_are_accepted_at_enqueue(
    runtime: Runtime, org: OrgFixture, url: str
) -> None:
    pk, _ = await enqueue_webhook(runtime, org, url)
    msg = await view(runtime, org, pk)
    assert [r.address for r in msg.recipients] == [url]


async def test_an_unreachable_smtp_server_does_not_hold_webhooks_back(
    runtime: Runtime, org: OrgFixture, receivers: list[Receiver]
) -> None:
    import socket

    from tests.support.outbox import configure_server, enqueue, run_until

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    await configure_server(runtime, org, dead_port)
    email_pk, _ = await enqueue(runtime, org, ["lead@example.org"])
    rx = await receiver(receivers)
    await put_secret(runtime, org)
    hook_pk, _ = await enqueue_webhook(runtime, org, rx.url())

    async def settled() -> bool:
        hook = await view(runtime, org, hook_pk)
        email = await view(runtime, org, email_pk)
        return hook.status is MessageStatus.SENT and email.last_error is not None

    await run_until(worker(runtime, org), settled)

    assert len(rx.requests) == 1
    email = await view(runtime, org, email_pk)
    assert email.status in (MessageStatus.DEFERRED, MessageStatus.QUEUED)
    assert email.last_error is not None and email.last_error.startswith("connect")
