"""Relays' bounce and complaint webhooks, read into :class:`DeliveryEvent`: one pure function
per provider, from the body the relay posted (already authenticated, see
:mod:`relay_signatures`).

What each provider's events become:

* **SendGrid** (a JSON array): ``bounce`` (``type`` ``bounce`` hard, ``blocked`` soft),
  ``dropped`` (hard: SendGrid did not even try), ``deferred``, ``spamreport`` (complained),
  ``unsubscribe`` / ``group_unsubscribe``. The Message-ID is ``smtp-id``; ``sg_event_id``
  (else ``sg_message_id`` + event) is only the event's reference.
* **Mailgun** (``{"signature": …, "event-data": …}``): ``failed`` (``severity`` permanent →
  by its status, ``suppress-bounce`` hard; temporary → deferred), ``complained``,
  ``unsubscribed``; the Message-ID is
  ``message.headers.message-id`` without brackets (added here).
* **Postmark** (one record): ``Bounce`` by ``Type`` (HardBounce / BadEmailAddress hard;
  SoftBounce / DnsError / Blocked / SpamNotification / ManuallyDeactivated soft; Transient
  deferred; Unsubscribe, SpamComplaint; autoresponders and the like ignored),
  ``SpamComplaint``, ``SubscriptionChange`` (only when ``SuppressSending``). Postmark's
  ``MessageID`` is its own id, not the header: candidates are any ``Metadata`` value that
  looks like a Message-ID and the ``Message-ID:`` lines of ``Content`` (the bounce's full
  dump, sent when "include bounce content" is on), which quote the original header.
* **Brevo** (one event): ``hard_bounce`` / ``invalid_email`` hard, ``soft_bounce`` /
  ``blocked`` soft, ``deferred``, ``spam`` (complained), ``unsubscribed``; ``message-id``.
* **Amazon SES** (the SNS notification's ``Message``): ``Bounce`` (Permanent → by status,
  hard unless the status says otherwise; Transient / Undetermined soft), ``Complaint``,
  ``DeliveryDelay`` (deferred); the Message-ID from ``mail.commonHeaders.messageId`` or the
  ``Message-ID`` of ``mail.headers``.

Every other event (deliveries, opens, clicks) is skipped, not an error. An event without a
reference of the relay's gets the SHA-256 of its canonical JSON, so a retried delivery of the
same body is recognised. A body that is not what the provider documents raises
:class:`MalformedPayload` naming the field (``[2].email``, ``event-data.recipient``); at most
:data:`MAX_EVENTS` events per body.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from visitmail.domain.delivery_events import DeliveryEvent, DeliveryEventKind, EventSource
from visitmail.domain.delivery_reports import Severity, severity
from visitmail.domain.errors import VisitmailError

MAX_EVENTS = 10_000  # SendGrid batches many events; 5 MB holds about this many
_MESSAGE_ID = re.compile(r"<[^<>\s@]{1,200}@[^<>\s@]{1,200}>")
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{3,250}>)", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


class RelayProvider(StrEnum):
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    POSTMARK = "postmark"
    BREVO = "brevo"
    SES = "ses"

    @property
    def source(self) -> EventSource:
        return EventSource(self.value)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    RelayProvider.SENDGRID: "SendGrid",
    RelayProvider.MAILGUN: "Mailgun",
    RelayProvider.POSTMARK: "Postmark",
    RelayProvider.BREVO: "Brevo",
    RelayProvider.SES: "Amazon SES (SNS)",
}


class MalformedPayload(VisitmailError):
    """The body is not the provider's documented format; ``field`` names what is wrong."""

    code = "malformed"


# --- helpers --------------------------------------------------------------------------------


def parse_json(body: bytes) -> object:
    """The body as JSON; :class:`MalformedPayload` (field ``body``) otherwise."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("the body is not JSON", field="body") from None


def event_hash(obj: object) -> str:
    """A stable reference for an event the relay gives no id: SHA-256 of canonical JSON."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _obj(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload("must be a JSON object", field=field)
    return value


def _text(obj: Mapping[str, Any], key: str, prefix: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        what = "is missing" if value is None else "must be a string"
        raise MalformedPayload(what, field=f"{prefix}{key}")
    return str(value)


def _address(obj: Mapping[str, Any], key: str, prefix: str) -> str:
    value = _text(obj, key, prefix).strip()
    if "@" not in value or len(value) > 320:
        raise MalformedPayload("must be an email address", field=f"{prefix}{key}")
    return value


def _bracketed(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if not value.startswith("<"):
        value = f"<{value}>"
    return value if _MESSAGE_ID.fullmatch(value) else None


def _ids(*values: str | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        if value and value not in out:
            out.append(value)
    return tuple(out[:10])


def _unix(value: object, now: datetime) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return now
    if isinstance(value, str):
        try:
            return _unix(float(value), now)
        except ValueError:
            return _iso(value, now)
    return now


def _iso(value: object, now: datetime) -> datetime:
    if not isinstance(value, str):
        return now
    text = value.strip().replace("Z", "+00:00")
    # Postmark writes seven fractional digits; Python reads at most six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return now
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _status(*texts: str) -> str | None:
    for text in texts:
        found = _STATUS.search(text or "")
        if found:
            return found.group(0)
    return None


def _events_list(data: object, field: str = "body") -> list[Any]:
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_EVENTS:
        raise MalformedPayload(f"holds more than {MAX_EVENTS} events", field=field)
    return items


# --- SendGrid -------------------------------------------------------------------------------


def sendgrid_events(body: bytes, *, now: datetime) -> list[DeliveryEvent]:
    """SendGrid's Event Webhook body (a JSON array of events)."""
    data = parse_json(body)
    if not isinstance(data, list):
        raise MalformedPayload("must be a JSON array of events", field="body")
    events: list[DeliveryEvent] = []
    for i, raw in enumerate(_events_list(data)):
        prefix = f"[{i}]."
        item = _obj(raw, f"[{i}]")
        name = _text(item, "event", prefix)
        sev: Severity | None = None
        if name == "bounce":
            kind = DeliveryEventKind.BOUNCED
            sev = Severity.SOFT if item.get("type") == "blocked" else Severity.HARD
        elif name == "dropped":
            kind, sev = DeliveryEventKind.BOUNCED, Severity.HARD
        elif name == "deferred":
            kind = DeliveryEventKind.DEFERRED
        elif name == "spamreport":
            kind = DeliveryEventKind.COMPLAINED
        elif name in ("unsubscribe", "group_unsubscribe"):
            kind = DeliveryEventKind.UNSUBSCRIBED
        else:
            continue
        address = _address(item, "email", prefix)
        reason = _text(item, "reason", prefix, required=False) or _text(
            item, "response", prefix, required=False
        )
        status = _text(item, "status", prefix, required=False)
        ref = _text(item, "sg_event_id", prefix, required=False)
        if not ref:
            sg_id = _text(item, "sg_message_id", prefix, required=False)
            ref = f"{sg_id}:{name}" if sg_id else event_hash(item)
        events.append(
            DeliveryEvent(
                source=EventSource.SENDGRID,
                source_ref=ref,
                kind=kind,
                address=address,
                message_ids=_ids(_bracketed(_text(item, "smtp-id", prefix, required=False))),
                occurred_at=_unix(item.get("timestamp"), now),
                severity=sev,
                status=_status(status, reason),
                diagnostic=reason or name,
            )
        )
    return events


# --- Mailgun --------------------------------------------------------------------------------


def mailgun_signature_fields(body: bytes) -> tuple[str, str, str]:
    """``(timestamp, token, signature)`` of a Mailgun webhook body."""
    data = _obj(parse_json(body), "body")
    sig = _obj(data.get("signature"), "signature")
    return (
        _text(sig, "timestamp", "signature."),
        _text(sig, "token", "signature."),
        _text(sig, "signature", "signature."),
    )


def mailgun_events(body: bytes, *, now: datetime) -> list[DeliveryEvent]:
    """One Mailgun webhook (``event-data``): ``failed``, ``complained``, ``unsubscribed``."""
    data = _obj(parse_json(body), "body")
    item = _obj(data.get("event-data"), "event-data")
    prefix = "event-data."
    name = _text(item, "event", prefix)
    if name not in ("failed", "complained", "unsubscribed"):
        return []
    address = _address(item, "recipient", prefix)
    message = item.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    raw_id = headers.get("message-id") if isinstance(headers, dict) else None
    message_ids = _ids(_bracketed(raw_id) if isinstance(raw_id, str) else None)
    delivery = item.get("delivery-status")
    delivery = delivery if isinstance(delivery, dict) else {}
    code = str(delivery.get("code") or "")
    words = str(delivery.get("description") or delivery.get("message") or "")
    enhanced = str(delivery.get("enhanced-code") or "") or _status(words)
    diagnostic = " ".join(p for p in (code, enhanced or "", words) if p) or str(
        item.get("reason") or name
    )
    sev: Severity | None = None
    if name == "failed":
        if item.get("severity") == "temporary":
            kind = DeliveryEventKind.DEFERRED
        else:
            kind = DeliveryEventKind.BOUNCED
            sev = severity(enhanced, diagnostic)
            if item.get("reason") == "suppress-bounce":
                sev = Severity.HARD  # Mailgun refused: the address bounced hard before
    elif name == "complained":
        kind = DeliveryEventKind.COMPLAINED
    else:
        kind = DeliveryEventKind.UNSUBSCRIBED
    ref = _text(item, "id", prefix, required=False) or event_hash(item)
    return [
        DeliveryEvent(
            source=EventSource.MAILGUN,
            source_ref=ref,
            kind=kind,
            address=address,
            message_ids=message_ids,
            occurred_at=_unix(item.get("timestamp"), now),
            severity=sev,
            status=enhanced,
            diagnostic=diagnostic,
        )
    ]


# --- Postmark -------------------------------------------------------------------------------

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress"}
_POSTMARK_SOFT = {"SoftBounce", "DnsError", "Blocked", "SpamNotification", "ManuallyDeactivated"}


def _postmark_ids(item: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str | None] = []
    metadata = item.get("Metadata")
    if isinstance(metadata, dict):
        found += [_bracketed(v) for v in metadata.values() if isinstance(v, str)]
    headers = item.get("Headers")
    if isinstance(headers, list):
        for header in headers:
            if (
                isinstance(header, dict)
                and str(header.get("Name", "")).lower() == "message-id"
                and isinstance(header.get("Value"), str)
            ):
                found.append(_bracketed(header["Value"]))
    content = item.get("Content")
    if isinstance(content, str):
        found += _MESSAGE_ID_LINE.findall(content[:2_000_000])
    return _ids(*found)


def postmark_events(body: bytes, *, now: datetime) -> list[DeliveryEvent]:
    """One Postmark webhook record: ``Bounce``, ``SpamComplaint``, ``SubscriptionChange``."""
    item = _obj(parse_json(body), "body")
    record = _text(item, "RecordType", "")
    sev: Severity | None = None
    address_key = "Email"
    when = item.get("BouncedAt")
    if record == "Bounce":
        kind_name = _text(item, "Type", "")
        if kind_name in _POSTMARK_HARD:
            kind, sev = DeliveryEventKind.BOUNCED, Severity.HARD
        elif kind_name in _POSTMARK_SOFT:
            kind, sev = DeliveryEventKind.BOUNCED, Severity.SOFT
        elif kind_name == "Transient":
            kind = DeliveryEventKind.DEFERRED
        elif kind_name == "SpamComplaint":
            kind = DeliveryEventKind.COMPLAINED
        elif kind_name == "Unsubscribe":
            kind = DeliveryEventKind.UNSUBSCRIBED
        else:
            return []  # an autoresponder, a challenge, an address change: not a failure
    elif record == "SpamComplaint":
        kind = DeliveryEventKind.COMPLAINED
    elif record == "SubscriptionChange":
        if item.get("SuppressSending") is not True:
            return []  # reactivated: nothing to apply
        address_key, when = "Recipient", item.get("ChangedAt")
        reason = item.get("SuppressionReason")
        if reason == "HardBounce":
            kind, sev = DeliveryEventKind.BOUNCED, Severity.HARD
        elif reason == "SpamComplaint":
            kind = DeliveryEventKind.COMPLAINED
        else:
            kind = DeliveryEventKind.UNSUBSCRIBED
    else:
        return []
    description = _text(item, "Description", "", required=False)
    details = _text(item, "Details", "", required=False)
    diagnostic = "; ".join(p for p in (details, description) if p) or str(
        item.get("SuppressionReason") or record
    )
    ref_id = _text(item, "ID", "", required=False)
    ref = f"{record}:{ref_id}" if ref_id else event_hash(item)
    return [
        DeliveryEvent(
            source=EventSource.POSTMARK,
            source_ref=ref,
            kind=kind,
            address=_address(item, address_key, ""),
            message_ids=_postmark_ids(item),
            occurred_at=_iso(when, now),
            severity=sev,
            status=_status(details, description),
            diagnostic=diagnostic,
        )
    ]


# --- Brevo ----------------------------------------------------------------------------------

_BREVO: dict[str, tuple[DeliveryEventKind, Severity | None]] = {
    "hard_bounce": (DeliveryEventKind.BOUNCED, Severity.HARD),
    "invalid_email": (DeliveryEventKind.BOUNCED, Severity.HARD),
    "soft_bounce": (DeliveryEventKind.BOUNCED, Severity.SOFT),
    "blocked": (DeliveryEventKind.BOUNCED, Severity.SOFT),
    "deferred": (DeliveryEventKind.DEFERRED, None),
    "spam": (DeliveryEventKind.COMPLAINED, None),
    "unsubscribed": (DeliveryEventKind.UNSUBSCRIBED, None),
}


def brevo_events(body: bytes, *, now: datetime) -> list[DeliveryEvent]:
    """Brevo's transactional webhook: one event object (or an array of them)."""
    data = parse_json(body)
    events: list[DeliveryEvent] = []
    for i, raw in enumerate(_events_list(data)):
        prefix = f"[{i}]." if isinstance(data, list) else ""
        item = _obj(raw, prefix.rstrip(".") or "body")
        name = _text(item, "event", prefix)
        if name not in _BREVO:
            continue
        kind, sev = _BREVO[name]
        reason = _text(item, "reason", prefix, required=False)
        events.append(
            DeliveryEvent(
                source=EventSource.BREVO,
                source_ref=event_hash(item),  # Brevo's "id" is the webhook's, not the event's
                kind=kind,
                address=_address(item, "email", prefix),
                message_ids=_ids(_bracketed(_text(item, "message-id", prefix, required=False))),
                occurred_at=_unix(item.get("ts_event") or item.get("ts_epoch"), now),
                severity=sev,
                status=_status(reason),
                diagnostic=reason or name,
            )
        )
    return events


# --- Amazon SES -----------------------------------------------------------------------------


def _ses_ids(mail: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str | None] = []
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and isinstance(common.get("messageId"), str):
        found.append(_bracketed(common["messageId"]))
    headers = mail.get("headers")
    if isinstance(headers, list):
        for header in headers:
            if (
                isinstance(header, dict)
                and str(header.get("name", "")).lower() == "message-id"
                and isinstance(header.get("value"), str)
            ):
                found.append(_bracketed(header["value"]))
    return _ids(*found)


def ses_events(message: str, *, sns_message_id: str, now: datetime) -> list[DeliveryEvent]:
    """The SES event JSON an SNS notification carries in ``Message`` (notifications or
    event publishing): ``Bounce``, ``Complaint``, ``DeliveryDelay``."""
    data = _obj(parse_json(message.encode()), "Message")
    name = data.get("notificationType") or data.get("eventType")
    if not isinstance(name, str):
        raise MalformedPayload("has no notificationType or eventType", field="Message")
    mail = _obj(data.get("mail"), "Message.mail")
    message_ids = _ids(*_ses_ids(mail))

    def each(
        key: str, list_key: str, make: Callable[[Mapping[str, Any], str], DeliveryEvent]
    ) -> list[DeliveryEvent]:
        part = _obj(data.get(key), f"Message.{key}")
        recipients = part.get(list_key)
        if not isinstance(recipients, list) or len(recipients) > MAX_EVENTS:
            raise MalformedPayload("must be a list", field=f"Message.{key}.{list_key}")
        ref = str(part.get("feedbackId") or sns_message_id)
        return [
            replace(
                make(_obj(r, f"Message.{key}.{list_key}[{i}]"), f"Message.{key}.{list_key}[{i}]."),
                source_ref=ref,
            )
            for i, r in enumerate(recipients)
        ]

    if name == "Bounce":
        bounce = _obj(data.get("bounce"), "Message.bounce")
        permanent = bounce.get("bounceType") == "Permanent"
        when = _iso(bounce.get("timestamp"), now)

        def bounced(r: Mapping[str, Any], prefix: str) -> DeliveryEvent:
            diagnostic = str(r.get("diagnosticCode") or bounce.get("bounceSubType") or "")
            status = str(r.get("status") or "") or _status(diagnostic)
            sev = Severity.SOFT
            if permanent:
                sev = Severity.HARD if not status else severity(status, diagnostic)
                if bounce.get("bounceSubType") in ("General", "NoEmail", "Suppressed"):
                    sev = Severity.HARD
            return DeliveryEvent(
                EventSource.SES,
                "",
                DeliveryEventKind.BOUNCED,
                _address(r, "emailAddress", prefix),
                message_ids,
                when,
                sev,
                status,
                diagnostic or "bounced",
            )

        return each("bounce", "bouncedRecipients", bounced)
    if name == "Complaint":
        complaint = _obj(data.get("complaint"), "Message.complaint")
        when = _iso(complaint.get("timestamp"), now)
        feedback = str(complaint.get("complaintFeedbackType") or "complaint")
        return each(
            "complaint",
            "complainedRecipients",
            lambda r, prefix: DeliveryEvent(
                EventSource.SES,
                "",
                DeliveryEventKind.COMPLAINED,
                _address(r, "emailAddress", prefix),
                message_ids,
                when,
                None,
                None,
                feedback,
            ),
        )
    if name == "DeliveryDelay":
        delay = _obj(data.get("deliveryDelay"), "Message.deliveryDelay")
        when = _iso(delay.get("timestamp"), now)
        return each(
            "deliveryDelay",
            "delayedRecipients",
            lambda r, prefix: DeliveryEvent(
                EventSource.SES,
                "",
                DeliveryEventKind.DEFERRED,
                _address(r, "emailAddress", prefix),
                message_ids,
                when,
                None,
                str(r.get("status") or "") or None,
                str(r.get("diagnosticCode") or delay.get("delayType") or "delayed"),
            ),
        )
    return []
