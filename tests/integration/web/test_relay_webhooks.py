"""Relay webhooks through the real HTTP app, on both databases: a follow-up delivered to a
real SMTP server (aiosmtpd), then bounced by each relay's signed webhook. Forged requests
are 401 and change nothing; a retried delivery is a duplicate; another organization's mail
is unmatched. SNS certificates are served by a test transport behind the real SNS client."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from sqlalchemy import select

from tests.support.orgs import OrgFixture, new_member, new_org
from tests.support.outbox import configure_server, enqueue, make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.adapters.crypto.keyring import KeyRing, new_key
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.db.tables import AuditRow, RelayWebhookRow
from visitmail.adapters.webhooks.sns import HttpSnsClient
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.outbox import MessageKind, RecipientStatus
from visitmail.domain.relay_events import RelayProvider
from visitmail.domain.relay_signatures import (
    basic_auth_header,
    mailgun_signature,
    sns_string_to_sign,
)
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import outbox, relay_webhooks

API = "/api/v1/relay-webhook-endpoints"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"
SUBSCRIBE_URL = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"
MAILGUN_KEY = "key-0123456789abcdef-test"


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = await start_smtp_server()
    yield server
    await server.close()


@dataclass
class SnsServer:
    """What the SNS client fetches: a test certificate, the SubscribeURL (recorded)."""

    key: rsa.RSAPrivateKey
    pem: bytes
    requests: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if str(request.url) == CERT_URL:
            return httpx.Response(200, content=self.pem)
        if str(request.url) == SUBSCRIBE_URL:
            return httpx.Response(200, text="<ConfirmSubscriptionResponse/>")
        return httpx.Response(404)


@pytest.fixture
def sns(app: FastAPI) -> Iterator[SnsServer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    server = SnsServer(key, cert.public_bytes(serialization.Encoding.PEM))
    before = getattr(app.state, "sns_client", None)
    app.state.sns_client = HttpSnsClient(transport=httpx.MockTransport(server.handle))
    try:
        yield server
    finally:
        app.state.sns_client = before


async def sent_follow_up(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer, to: str
) -> tuple[uuid.UUID, str]:
    await configure_server(runtime, org, smtp.port)
    pk, message_id = await enqueue(
        runtime, org, [to], kind=MessageKind.FOLLOW_UP, meta={"report_id": str(uuid.uuid4())}
    )
    await make_worker(runtime, org).run_until_idle()
    return pk, message_id


async def status_of(runtime: Runtime, org: OrgFixture, pk: uuid.UUID) -> RecipientStatus:
    async with runtime.uow() as uow:
        message = await outbox.get_message(uow, org.principal, pk)
    [only] = message.recipients
    return only.status


async def suppressed(runtime: Runtime, org: OrgFixture, address: str) -> SuppressionReason | None:
    async with runtime.uow() as uow:
        entry = await uow.suppressions.get(org.organization.id, address)
    return entry.reason if entry else None


# --- each relay: how it is set up, and a signed bounce as it posts one ----------------------


class Relay:
    provider: str

    async def setup(self, client: httpx.AsyncClient, org: OrgFixture) -> str:
        """Create and configure the endpoint; returns the receiver's path."""
        created = await client.post(f"{API}/{self.provider}", headers=org.headers)
        assert created.status_code == 201, created.text
        body = created.json()
        self.password = body["password"]
        await self.configure(client, org)
        path: str = httpx.URL(body["url"]).path
        return path

    async def configure(self, client: httpx.AsyncClient, org: OrgFixture) -> None:
        """Set the relay's verification data after the endpoint is created. The default
        sets nothing: Postmark's and Brevo's generated password is already stored."""

    def bounce(
        self, message_id: str, address: str, *, forged: bool = False
    ) -> tuple[dict[str, str], bytes]:
        raise NotImplementedError


class SendGrid(Relay):
    provider = "sendgrid"

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    async def configure(self, client: httpx.AsyncClient, org: OrgFixture) -> None:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        put = await client.put(
            f"{API}/sendgrid/verification",
            headers=org.headers,
            json={"public_key": base64.b64encode(der).decode()},
        )
        assert put.status_code == 200, put.text

    def bounce(
        self, message_id: str, address: str, *, forged: bool = False
    ) -> tuple[dict[str, str], bytes]:
        body = json.dumps(
            [
                {
                    "email": address,
                    "timestamp": 1764669600,
                    "smtp-id": message_id,
                    "event": "bounce",
                    "sg_event_id": f"ev-{message_id}",
                    "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.0",
                    "reason": "550 5.1.1 The email account does not exist",
                    "status": "5.1.1",
                    "type": "bounce",
                }
            ]
        ).encode()
        stamp = "1764669600"
        key = ec.generate_private_key(ec.SECP256R1()) if forged else self.key
        signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }, body


class Mailgun(Relay):
    provider = "mailgun"

    async def configure(self, client: httpx.AsyncClient, org: OrgFixture) -> None:
        put = await client.put(
            f"{API}/mailgun/verification", headers=org.headers, json={"signing_key": MAILGUN_KEY}
        )
        assert put.status_code == 200, put.text
        assert MAILGUN_KEY not in put.text and put.json()["secret"] == "set"

    def bounce(
        self, message_id: str, address: str, *, forged: bool = False
    ) -> tuple[dict[str, str], bytes]:
        stamp, token = "1764669600", uuid.uuid4().hex
        key = "key-forged-forged-forged" if forged else MAILGUN_KEY
        body = {
            "signature": {
                "timestamp": stamp,
                "token": token,
                "signature": mailgun_signature(key, stamp, token),
            },
            "event-data": {
                "event": "failed",
                "id": f"mg-{message_id}",
                "timestamp": 1764669600.5,
                "severity": "permanent",
                "reason": "bounce",
                "recipient": address,
                "message": {"headers": {"message-id": message_id.strip("<>")}},
                "delivery-status": {
                    "code": 550,
                    "enhanced-code": "5.1.1",
                    "message": "5.1.1 The email account that you tried to reach does not exist",
                },
            },
        }
        return {}, json.dumps(body).encode()


class Postmark(Relay):
    provider = "postmark"

    def bounce(
        self, message_id: str, address: str, *, forged: bool = False
    ) -> tuple[dict[str, str], bytes]:
        record = {
            "RecordType": "Bounce",
            "ID": abs(hash(message_id)) % 10**12,
            "Type": "HardBounce",
            "MessageID": str(uuid.uuid4()),
            "Email": address,
            "Description": "The server was unable to deliver your message",
            "Details": "smtp;550 5.1.1 The email account does not exist",
            "BouncedAt": "2026-12-02T10:00:00.1234567Z",
            "Content": f"Message-ID: <pm@mtasv.net>\r\n\r\nMessage-ID: {message_id}\r\n",
        }
        password = "forged-password" if forged else self.password
        return {"Authorization": basic_auth_header("visitmail", password)}, json.dumps(
            record
        ).encode()


class Brevo(Relay):
    provider = "brevo"

    def bounce(
        self, message_id: str, address: str, *, forged: bool = False
    ) -> tuple[dict[str, str], bytes]:
        event = {
            "event": "hard_bounce",
            "email": address,
            "id": 26224,
            "message-id": message_id,
            "ts_event": 1764669600,
            "reason": "550 5.1.1 user unknown",
        }
        user = "intruder" if forged else "visitmail"
        return {"Authorization": basic_auth_header(user, self.password)}, json.dumps(event).encode()


class Ses(Relay):
    provider = "ses"

    def __init__(self, sns: SnsServer) -> None:
        self.sns = sns

    async def configure(self, client: httpx.AsyncClient, org: OrgFixture) -> None:
        put = await client.put(
            f"{API}/ses/verification", headers=org.headers, json={"topic_arn": TOPIC}
        )
        assert put.status_code == 200, put.text

    def envelope(self, values: dict[str, object], *, forged: bool = False) -> bytes:
        values = {
            **values,
            "TopicArn": TOPIC,
            "Timestamp": "2026-12-02T10:00:00.000Z",
            "SignatureVersion": "2",
            "SigningCertURL": CERT_URL,
        }
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if forged
            else (self.sns.key)
        )
        signature = key.sign(sns_string_to_sign(values), padding.PKCS1v15(), hashes.SHA256())
        values["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(values).encode()

    def bounce(
        self, message_id: str, address: str, *, forged: bool = False
    ) -> tuple[dict[str, str], bytes]:
        message = {
            "notificationType": "Bounce",
            "bounce": {
                "feedbackId": f"fb-{message_id}",
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": address,
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
                "timestamp": "2026-12-02T10:00:00.000Z",
            },
            "mail": {"messageId": "ses-id", "commonHeaders": {"messageId": message_id}},
        }
        body = self.envelope(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "Message": json.dumps(message),
            },
            forged=forged,
        )
        return {"x-amz-sns-message-type": "Notification"}, body


def relay_of(name: str, sns: SnsServer) -> Relay:
    return {
        "sendgrid": SendGrid,
        "mailgun": Mailgun,
        "postmark": Postmark,
        "brevo": Brevo,
    }.get(name, lambda: Ses(sns))()  # type: ignore[no-any-return]


PROVIDERS = ["sendgrid", "mailgun", "postmark", "brevo", "ses"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_signed_bounce_marks_the_follow_up_bounced_and_suppresses(
    provider: str,
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    smtp: SmtpServer,
    sns: SnsServer,
) -> None:
    relay = relay_of(provider, sns)
    path = await relay.setup(client, org)
    pk, message_id = await sent_follow_up(runtime, org, smtp, "Lead@Fabrikam.example")
    assert await status_of(runtime, org, pk) is RecipientStatus.ACCEPTED

    headers, body = relay.bounce(message_id, "lead@fabrikam.example", forged=True)
    forged = await client.post(path, headers=headers, content=body)
    assert forged.status_code == 401, forged.text
    assert forged.json()["error"]["code"] == "bad_signature"
    assert await status_of(runtime, org, pk) is RecipientStatus.ACCEPTED
    assert await suppressed(runtime, org, "lead@fabrikam.example") is None

    headers, body = relay.bounce(message_id, "lead@fabrikam.example")
    ok = await client.post(path, headers=headers, content=body)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"applied": 1, "duplicates": 0, "unmatched": 0}
    assert await status_of(runtime, org, pk) is RecipientStatus.BOUNCED
    assert await suppressed(runtime, org, "lead@fabrikam.example") is SuppressionReason.BOUNCED

    again = await client.post(path, headers=headers, content=body)
    assert again.json() == {"applied": 0, "duplicates": 1, "unmatched": 0}

    listed = (await client.get(API, headers=org.headers)).json()
    [entry] = listed
    assert (entry["provider"], entry["applied"], entry["duplicates"]) == (provider, 1, 1)
    assert entry["last_event_at"] is not None and entry["url"] is None


@pytest.mark.parametrize("provider", ["mailgun", "brevo"])
async def test_another_organizations_mail_is_unmatched(
    provider: str,
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    smtp: SmtpServer,
    sns: SnsServer,
) -> None:
    pk, message_id = await sent_follow_up(runtime, org, smtp, "lead@fabrikam.example")
    other = await new_org(runtime)
    relay = relay_of(provider, sns)
    path = await relay.setup(client, other)
    headers, body = relay.bounce(message_id, "lead@fabrikam.example")
    answer = await client.post(path, headers=headers, content=body)
    assert answer.json() == {"applied": 0, "duplicates": 0, "unmatched": 1}
    assert await status_of(runtime, org, pk) is RecipientStatus.ACCEPTED
    assert await suppressed(runtime, other, "lead@fabrikam.example") is None


async def test_sns_subscription_is_confirmed_and_other_topics_refused(
    client: httpx.AsyncClient, org: OrgFixture, sns: SnsServer
) -> None:
    relay = Ses(sns)
    path = await relay.setup(client, org)
    body = relay.envelope(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "t",
            "Message": "You have chosen to subscribe to the topic ...",
            "SubscribeURL": SUBSCRIBE_URL,
        }
    )
    answer = await client.post(path, content=body)
    assert answer.status_code == 200, answer.text
    assert sns.requests == [CERT_URL, SUBSCRIBE_URL]

    data = json.loads(body)
    data["TopicArn"] = "arn:aws:sns:eu-west-1:123456789012:someone-else"
    other = await client.post(path, content=json.dumps(data).encode())
    assert other.status_code == 401 and other.json()["error"]["field"] == "TopicArn"

    data = json.loads(body)
    data["SigningCertURL"] = "https://evil.example/cert.pem"
    evil = await client.post(path, content=json.dumps(data).encode())
    assert evil.status_code == 400 and evil.json()["error"]["field"] == "SigningCertURL"
    assert sns.requests == [CERT_URL, SUBSCRIBE_URL]  # cached; nothing fetched from evil


async def test_malformed_unknown_and_too_large(
    client: httpx.AsyncClient, org: OrgFixture, sns: SnsServer
) -> None:
    relay = Brevo()
    path = await relay.setup(client, org)
    auth = {"Authorization": basic_auth_header("visitmail", relay.password)}
    bad = await client.post(path, headers=auth, content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "body"
    missing = await client.post(path, headers=auth, content=b'{"event": "hard_bounce"}')
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "email"
    unknown = await client.post(path.rsplit("/", 1)[0] + "/nope", headers=auth, content=b"{}")
    assert unknown.status_code == 404
    wrong_provider = await client.post(
        path.replace("/brevo/", "/postmark/"), headers=auth, content=b"{}"
    )
    assert wrong_provider.status_code == 404
    big = await client.post(
        path, headers={**auth, "Content-Length": str(6 * 1024 * 1024)}, content=b"{}"
    )
    assert big.status_code == 413


async def test_management_secret_shown_once_sealed_and_admin_only(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    created = await client.post(f"{API}/postmark", headers=org.headers)
    body = created.json()
    token = body["url"].rsplit("/", 1)[1]
    password = body["password"]
    assert body["username"] == "visitmail" and body["configured"] is True and len(password) > 20
    listed = await client.get(API, headers=org.headers)
    assert password not in listed.text and token not in listed.text
    assert listed.json()[0]["secret"] == "set"
    again = await client.post(f"{API}/postmark", headers=org.headers)
    assert again.status_code == 409

    async with runtime.uow() as uow:
        row = (
            await uow.session.execute(
                select(RelayWebhookRow.token_hash, RelayWebhookRow.secret_enc).where(
                    RelayWebhookRow.organization_id == org.organization.id
                )
            )
        ).one()
        audit = (
            (
                await uow.session.execute(
                    select(AuditRow.action).where(AuditRow.organization_id == org.organization.id)
                )
            )
            .scalars()
            .all()
        )
    assert token not in row.token_hash and password not in (row.secret_enc or "")
    assert "relay_webhook.create" in audit

    new = await client.put(
        f"{API}/postmark/verification",
        headers=org.headers,
        json={"username": "pm-hook", "generate_password": True},
    )
    assert new.json()["username"] == "pm-hook" and new.json()["password"] not in (None, password)
    test = await client.post(f"{API}/postmark/self-test", headers=org.headers)
    assert test.json() == {"applied": 0, "duplicates": 0, "unmatched": 1}

    wrong = await client.put(
        f"{API}/postmark/verification", headers=org.headers, json={"topic_arn": TOPIC}
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "topic_arn"
    bad_key = await client.post(f"{API}/sendgrid", headers=org.headers)
    assert bad_key.status_code == 201
    bad = await client.put(
        f"{API}/sendgrid/verification", headers=org.headers, json={"public_key": "bm90"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "public_key"
    no_test = await client.post(f"{API}/sendgrid/self-test", headers=org.headers)
    assert no_test.status_code == 409

    _, member = await new_member(runtime, org, Role.EVENT_MANAGER)
    refused = await client.get(API, headers={"Authorization": f"Bearer {member}"})
    assert refused.status_code == 403

    gone = await client.delete(f"{API}/postmark", headers=org.headers)
    assert gone.status_code == 204
    old = await client.post(f"/api/v1/relay-webhooks/postmark/{token}", content=b"{}")
    assert old.status_code == 404


async def test_the_receivers_own_bound_answers_413(
    client: httpx.AsyncClient, org: OrgFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = Brevo()
    path = await relay.setup(client, org)
    monkeypatch.setattr(relay_webhooks, "MAX_BODY_BYTES", 1000)  # below the app's own guard
    auth = {"Authorization": basic_auth_header("visitmail", relay.password)}
    big = await client.post(path, headers=auth, content=b" " * 2000)
    assert big.status_code == 413
    assert big.json()["error"] == {
        "code": "too_large",
        "message": "the body exceeds 1000 bytes",
        "field": "body",
    }


async def test_key_rotation_reseals_relay_secrets_and_they_still_verify(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    relay = Mailgun()
    await relay.setup(client, org)

    async def sealed() -> str | None:
        async with runtime.uow() as uow:
            return await uow.session.scalar(
                select(RelayWebhookRow.secret_enc).where(
                    RelayWebhookRow.organization_id == org.organization.id
                )
            )

    before = await sealed()
    ring = KeyRing([*runtime.keyring.keys, new_key()])
    box = SecretBox(ring)
    result = await relay_webhooks.rotate_keys(runtime.uow, box)
    assert result.reencrypted >= 1 and result.unreadable == 0
    after = await sealed()
    assert after is not None and after != before
    assert after.startswith(f"v1:{ring.newest.key_id}:")
    assert (await relay_webhooks.rotate_keys(runtime.uow, box)).reencrypted == 0
    async with runtime.uow() as uow:
        endpoint = await uow.relay_webhooks.get(org.organization.id, RelayProvider.MAILGUN)
        assert endpoint is not None
        result2 = await relay_webhooks.self_test(
            uow, box, HttpSnsClient(), org.principal, RelayProvider.MAILGUN
        )
    assert result2.unmatched == 1


async def test_an_ses_complaint_marks_the_recipient_complained_and_suppresses(
    client: httpx.AsyncClient,
    runtime: Runtime,
    org: OrgFixture,
    smtp: SmtpServer,
    sns: SnsServer,
) -> None:
    relay = Ses(sns)
    path = await relay.setup(client, org)
    pk, message_id = await sent_follow_up(runtime, org, smtp, "lead@contoso.example")
    message = {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "lead@contoso.example"}],
            "timestamp": "2026-12-02T10:00:00.000Z",
            "feedbackId": f"fb-{uuid.uuid4()}",
            "complaintFeedbackType": "abuse",
        },
        "mail": {
            "messageId": "ses-id",
            "headers": [{"name": "Message-ID", "value": message_id}],
        },
    }
    body = relay.envelope(
        {"Type": "Notification", "MessageId": str(uuid.uuid4()), "Message": json.dumps(message)}
    )
    answer = await client.post(path, content=body)
    assert answer.json() == {"applied": 1, "duplicates": 0, "unmatched": 0}
    assert await status_of(runtime, org, pk) is RecipientStatus.COMPLAINED
    assert await suppressed(runtime, org, "lead@contoso.example") is SuppressionReason.COMPLAINED
