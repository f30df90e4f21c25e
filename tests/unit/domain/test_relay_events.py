"""Relays' webhook bodies read into delivery events, from the payloads each provider
documents (SendGrid Event Webhook, Mailgun webhooks, Postmark bounce / spam complaint /
subscription change webhooks, Brevo transactional webhooks, SES notifications)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from visitmail.domain.delivery_events import DeliveryEventKind, EventSource
from visitmail.domain.delivery_reports import Severity
from visitmail.domain.relay_events import (
    MalformedPayload,
    brevo_events,
    mailgun_events,
    mailgun_signature_fields,
    postmark_events,
    sendgrid_events,
    ses_events,
)

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)

# SendGrid's documented Event Webhook sample (docs.sendgrid.com, "Event Webhook Reference").
SENDGRID = [
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "processed",
        "category": "cat facts",
        "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "bounce",
        "category": "cat facts",
        "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "reason": "500 unknown recipient",
        "status": "5.0.0",
        "type": "bounce",
    },
    {
        "email": "Blocked@Test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "bounce",
        "sg_event_id": "blocked-1",
        "reason": "550 5.7.1 blocked by policy",
        "status": "5.7.1",
        "type": "blocked",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "dropped",
        "sg_event_id": "zmzJhfJgAfUSOW80yEbPyw==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "reason": "Bounced Address",
        "status": "5.0.0",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "deferred",
        "sg_event_id": "t7LEShmowp86DTdUW8M-GQ==",
        "response": "400 try again later",
        "attempt": "5",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "event": "spamreport",
        "sg_event_id": "37nvH5QBz858KGVYCM4uOA==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "event": "group_unsubscribe",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "asm_group_id": 10,
    },
]


def test_sendgrid_sample() -> None:
    events = sendgrid_events(json.dumps(SENDGRID).encode(), now=NOW)
    kinds = [(e.kind, e.severity) for e in events]
    assert kinds == [
        (DeliveryEventKind.BOUNCED, Severity.HARD),
        (DeliveryEventKind.BOUNCED, Severity.SOFT),
        (DeliveryEventKind.BOUNCED, Severity.HARD),
        (DeliveryEventKind.DEFERRED, None),
        (DeliveryEventKind.COMPLAINED, None),
        (DeliveryEventKind.UNSUBSCRIBED, None),
    ]
    bounce = events[0]
    assert bounce.source is EventSource.SENDGRID
    assert bounce.message_ids == ("<14c5d75ce93.dfd.64b469@ismtpd-555>",)
    assert bounce.source_ref == "6g4ZI7SA-xmRDv57GoPIPw=="
    assert bounce.status == "5.0.0" and bounce.diagnostic == "500 unknown recipient"
    assert bounce.occurred_at == datetime.fromtimestamp(1513299569, tz=UTC)
    assert events[1].address == "blocked@test.com"
    assert events[3].diagnostic == "400 try again later"
    # sg_message_id is a reference, never a Message-ID candidate.
    assert events[4].message_ids == ()
    assert events[5].source_ref.endswith(":group_unsubscribe")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b'{"event": "bounce"}', "body"),
        (b'[{"event": "bounce"}]', "[0].email"),
        (b'[{"email": "a@b.example"}]', "[0].event"),
        (b'[{"event": "bounce", "email": "nobody"}]', "[0].email"),
        (b"[3]", "[0]"),
    ],
)
def test_sendgrid_malformed_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        sendgrid_events(body, now=NOW)
    assert caught.value.field == field


# Mailgun's documented "failed" (permanent) webhook sample.
MAILGUN_FAILED = {
    "signature": {
        "timestamp": "1529006854",
        "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
        "signature": "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55",
    },
    "event-data": {
        "event": "failed",
        "timestamp": 1521233123.501324,
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "log-level": "error",
        "severity": "permanent",
        "reason": "suppress-bounce",
        "recipient": "alice@example.com",
        "recipient-domain": "example.com",
        "envelope": {"sender": "bob@sandbox.mailgun.org", "transport": "smtp"},
        "message": {
            "headers": {
                "to": "Alice <alice@example.com>",
                "message-id": "20130503192659.13651.20287@sandbox.mailgun.org",
                "from": "Bob <bob@sandbox.mailgun.org>",
                "subject": "Test permanent_fail webhook",
            },
            "attachments": [],
            "size": 111,
        },
        "delivery-status": {
            "attempt-no": 1,
            "message": "",
            "code": 605,
            "description": "Not delivering to previously bounced address",
            "session-seconds": 0.0,
        },
    },
}


def test_mailgun_failed_sample() -> None:
    body = json.dumps(MAILGUN_FAILED).encode()
    assert mailgun_signature_fields(body) == (
        "1529006854",
        "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
        "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55",
    )
    [event] = mailgun_events(body, now=NOW)
    assert event.kind is DeliveryEventKind.BOUNCED and event.severity is Severity.HARD
    assert event.message_ids == ("<20130503192659.13651.20287@sandbox.mailgun.org>",)
    assert event.source_ref == "G9Bn5sl1TC6nu79C8C0bwg"
    assert "previously bounced" in event.diagnostic
    assert event.address == "alice@example.com"


def test_mailgun_hard_bounce_by_status_and_temporary_is_deferred() -> None:
    data = json.loads(json.dumps(MAILGUN_FAILED))
    data["event-data"]["reason"] = "bounce"
    data["event-data"]["delivery-status"] = {
        "code": 550,
        "message": "5.1.1 The email account that you tried to reach does not exist.",
        "enhanced-code": "5.1.1",
    }
    [hard] = mailgun_events(json.dumps(data).encode(), now=NOW)
    assert hard.severity is Severity.HARD and hard.status == "5.1.1"
    data["event-data"]["severity"] = "temporary"
    [later] = mailgun_events(json.dumps(data).encode(), now=NOW)
    assert later.kind is DeliveryEventKind.DEFERRED


def test_mailgun_complained_unsubscribed_and_ignored() -> None:
    for name, kind in (
        ("complained", DeliveryEventKind.COMPLAINED),
        ("unsubscribed", DeliveryEventKind.UNSUBSCRIBED),
    ):
        data = {"event-data": {**MAILGUN_FAILED["event-data"], "event": name}}  # type: ignore[dict-item]
        [event] = mailgun_events(json.dumps(data).encode(), now=NOW)
        assert event.kind is kind
    data = {"event-data": {**MAILGUN_FAILED["event-data"], "event": "delivered"}}  # type: ignore[dict-item]
    assert mailgun_events(json.dumps(data).encode(), now=NOW) == []
    with pytest.raises(MalformedPayload) as caught:
        mailgun_events(b'{"event-data": {"event": "failed"}}', now=NOW)
    assert caught.value.field == "event-data.recipient"
    with pytest.raises(MalformedPayload) as caught:
        mailgun_signature_fields(b'{"signature": {"timestamp": "1"}}')
    assert caught.value.field == "signature.token"


# Postmark's documented bounce webhook sample (postmarkapp.com/developer/webhooks/bounce-webhook),
# with the bounce content that "Include bounce content" adds.
POSTMARK_BOUNCE = {
    "RecordType": "Bounce",
    "MessageStream": "outbound",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "Tag": "Test",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Metadata": {"a_key": "a_value", "b_key": "b_value"},
    "ServerID": 23,
    "Description": "The server was unable to deliver your message (ex: unknown user, "
    "mailbox not found).",
    "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
    "Email": "john@example.com",
    "From": "sender@example.com",
    "BouncedAt": "2019-11-05T16:33:54.9070259Z",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Test subject",
    "Content": "Return-Path: <>\r\nMessage-ID: <bounce-1@mta.example>\r\n\r\n"
    "--- original message ---\r\nMessage-ID: <0190c1f2@acme.example>\r\nSubject: x\r\n",
}


def test_postmark_bounce_sample() -> None:
    [event] = postmark_events(json.dumps(POSTMARK_BOUNCE).encode(), now=NOW)
    assert event.kind is DeliveryEventKind.BOUNCED and event.severity is Severity.HARD
    assert event.source_ref == "Bounce:4323372036854775807"
    assert event.message_ids == ("<bounce-1@mta.example>", "<0190c1f2@acme.example>")
    assert event.status == "5.1.1"
    assert event.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)


def test_postmark_metadata_soft_spam_and_subscription_change() -> None:
    record = {**POSTMARK_BOUNCE, "Type": "SoftBounce", "Content": None}
    record["Metadata"] = {"message-id": "<ours@acme.example>"}
    [soft] = postmark_events(json.dumps(record).encode(), now=NOW)
    assert soft.severity is Severity.SOFT and soft.message_ids == ("<ours@acme.example>",)
    assert postmark_events(json.dumps({**record, "Type": "AutoResponder"}).encode(), now=NOW) == []
    spam = {
        "RecordType": "SpamComplaint",
        "ID": 42,
        "Type": "SpamComplaint",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Email": "john@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "Metadata": {"message-id": "<ours@acme.example>"},
    }
    [complaint] = postmark_events(json.dumps(spam).encode(), now=NOW)
    assert complaint.kind is DeliveryEventKind.COMPLAINED
    change = {
        "RecordType": "SubscriptionChange",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 123456,
        "MessageStream": "outbound",
        "ChangedAt": "2020-02-01T10:53:34.416071Z",
        "Recipient": "bounced-address@wildbit.com",
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "my-tag",
        "Metadata": {"example": "value"},
    }
    [unsub] = postmark_events(json.dumps(change).encode(), now=NOW)
    assert unsub.kind is DeliveryEventKind.UNSUBSCRIBED
    assert unsub.address == "bounced-address@wildbit.com"
    reactivated = {**change, "SuppressSending": False}
    assert postmark_events(json.dumps(reactivated).encode(), now=NOW) == []
    with pytest.raises(MalformedPayload) as caught:
        postmark_events(b'{"RecordType": "Bounce", "Type": "HardBounce"}', now=NOW)
    assert caught.value.field == "Email"


# Brevo's documented transactional webhook sample (developers.brevo.com, "Transactional
# webhooks": hard_bounce).
BREVO = {
    "event": "hard_bounce",
    "email": "example@domain.com",
    "id": 26224,
    "date": "YYYY-MM-DD HH:mm:ss",
    "ts": 1598634509,
    "message-id": "<201798300811.5787683@relay.domain.com>",
    "ts_event": 1598034509,
    "subject": "Subject Line",
    "tag": '["transactionalTag"]',
    "sending_ip": "185.41.28.109",
    "ts_epoch": 1598634509223,
    "tags": ["transac_messages"],
    "reason": "550 5.1.1 user unknown",
}


def test_brevo_sample_and_kinds() -> None:
    [event] = brevo_events(json.dumps(BREVO).encode(), now=NOW)
    assert event.kind is DeliveryEventKind.BOUNCED and event.severity is Severity.HARD
    assert event.message_ids == ("<201798300811.5787683@relay.domain.com>",)
    assert event.occurred_at == datetime.fromtimestamp(1598034509, tz=UTC)
    assert event.source_ref.startswith("sha256:")
    again = brevo_events(json.dumps(BREVO, indent=2).encode(), now=NOW)
    assert again[0].source_ref == event.source_ref  # a retry is recognised
    expected = {
        "soft_bounce": (DeliveryEventKind.BOUNCED, Severity.SOFT),
        "blocked": (DeliveryEventKind.BOUNCED, Severity.SOFT),
        "invalid_email": (DeliveryEventKind.BOUNCED, Severity.HARD),
        "spam": (DeliveryEventKind.COMPLAINED, None),
        "unsubscribed": (DeliveryEventKind.UNSUBSCRIBED, None),
        "deferred": (DeliveryEventKind.DEFERRED, None),
    }
    for name, (kind, sev) in expected.items():
        [e] = brevo_events(json.dumps({**BREVO, "event": name}).encode(), now=NOW)
        assert (e.kind, e.severity) == (kind, sev)
    assert brevo_events(json.dumps({**BREVO, "event": "delivered"}).encode(), now=NOW) == []


# SES's documented bounce notification (docs.aws.amazon.com/ses, "Amazon SNS notification
# examples"), mail part trimmed to the fields used.
SES_BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {
        "feedbackId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "jane@example.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            },
            {"emailAddress": "richard@example.com"},
        ],
        "timestamp": "2012-05-25T14:59:38.623Z",
        "remoteMtaIp": "127.0.2.0",
    },
    "mail": {
        "timestamp": "2012-05-25T14:59:38.623Z",
        "source": "john@example.com",
        "messageId": "000001378603176d-5a4b5ad9-6f30-4198-a8c3-b1eb0c270a1d-000000",
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "John Doe <john@example.com>"},
            {"name": "Message-ID", "value": "<custom-message-ID@acme.example>"},
        ],
        "commonHeaders": {
            "from": ["John Doe <john@example.com>"],
            "messageId": "custom-message-ID@acme.example",
            "subject": "Hello",
        },
    },
}


def test_ses_bounce_and_complaint() -> None:
    events = ses_events(json.dumps(SES_BOUNCE), sns_message_id="sns-1", now=NOW)
    assert [e.address for e in events] == ["jane@example.com", "richard@example.com"]
    jane = events[0]
    assert jane.kind is DeliveryEventKind.BOUNCED and jane.severity is Severity.HARD
    assert jane.message_ids == ("<custom-message-ID@acme.example>",)
    assert jane.source_ref == SES_BOUNCE["bounce"]["feedbackId"]  # type: ignore[index]
    assert jane.diagnostic == "smtp; 550 5.1.1 user unknown" and jane.status == "5.1.1"
    transient = json.loads(json.dumps(SES_BOUNCE))
    transient["bounce"]["bounceType"] = "Transient"
    transient["bounce"]["bounceSubType"] = "MailboxFull"
    assert ses_events(json.dumps(transient), sns_message_id="x", now=NOW)[0].severity is (
        Severity.SOFT
    )
    complaint = {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "richard@example.com"}],
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "0000013786031775-fea503bc-7497-49e1-881b-a0379bb037d3-000000",
            "complaintFeedbackType": "abuse",
        },
        "mail": SES_BOUNCE["mail"],
    }
    [c] = ses_events(json.dumps(complaint), sns_message_id="sns-2", now=NOW)
    assert c.kind is DeliveryEventKind.COMPLAINED and c.diagnostic == "abuse"
    delivery = {"notificationType": "Delivery", "mail": SES_BOUNCE["mail"], "delivery": {}}
    assert ses_events(json.dumps(delivery), sns_message_id="x", now=NOW) == []
    with pytest.raises(MalformedPayload) as caught:
        ses_events(
            json.dumps({"notificationType": "Bounce", "mail": {}}), sns_message_id="x", now=NOW
        )
    assert caught.value.field == "Message.bounce"
