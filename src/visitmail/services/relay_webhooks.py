"""Relay webhook endpoints: the admin's use cases (create, verification data, list, delete,
self-test) and the receiver (authenticate, read, apply).

An endpoint is one organization's URL for one relay:
``/api/v1/relay-webhooks/<provider>/<token>``. The token (256 random bits) names the
endpoint and is shown once, at creation; only its SHA-256 is stored. Relays cannot send a
bearer token, so the token only *finds* the endpoint: every request must also pass the
provider's own check (:mod:`visitmail.domain.relay_signatures`) with the verification data
set on the endpoint; an endpoint without it refuses everything. The secret half of that
data (Mailgun's signing key, the Postmark / Brevo basic-auth password) is sealed by the
secret box under ``relay_webhook:<provider>``; a generated password is shown once.

What is received is read into delivery events (:mod:`visitmail.domain.relay_events`) and
applied by :func:`visitmail.services.delivery_events.apply_events`: only events naming a
message of this organization's outbox and one of its recipients change anything, and a
retried delivery is a duplicate. Errors: :class:`BadSignature` (401, nothing applied),
:class:`~visitmail.domain.relay_events.MalformedPayload` (400), :class:`RelayUnavailable`
(503: the SNS certificate could not be fetched; SNS retries), ``NotFound`` for an unknown
endpoint. Nothing raised or logged ever carries a secret or the token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from visitmail.domain.delivery_events import DeliveryEvent
from visitmail.domain.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    VisitmailError,
)
from visitmail.domain.identity import Principal
from visitmail.domain.relay_events import (
    MalformedPayload,
    RelayProvider,
    brevo_events,
    mailgun_events,
    mailgun_signature_fields,
    parse_json,
    postmark_events,
    sendgrid_events,
    ses_events,
)
from visitmail.domain.relay_signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    basic_auth_header,
    check_sns_url,
    check_topic_arn,
    load_sendgrid_key,
    mailgun_signature,
    verify_basic,
    verify_mailgun,
    verify_sendgrid,
    verify_sns,
)
from visitmail.domain.roles import Role
from visitmail.logs import get_logger
from visitmail.services.clock import Clock, utcnow
from visitmail.services.delivery_event_ports import DeliveryEventUnitOfWork
from visitmail.services.delivery_events import apply_events
from visitmail.services.identity import require_role
from visitmail.services.ports import AuditLog, SecretSealer
from visitmail.services.relay_webhook_ports import RelayEndpoint, RelayWebhookRepository, SnsClient
from visitmail.services.secret_rotation import (
    RotationResult,
    RotationUnitOfWork,
    SealedKind,
    SealedValue,
    rotate_sealed,
)

log = get_logger(__name__)

URL_PREFIX = "/api/v1/relay-webhooks"
MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_USERNAME = "visitmail"
SECRET_MIN = 8
SECRET_MAX = 256
ACTION_CREATE = "relay_webhook.create"
ACTION_CONFIGURE = "relay_webhook.configure"
ACTION_DELETE = "relay_webhook.delete"
ACTION_ROTATE = "relay_webhook.rotate_keys"
BASIC_AUTH = (RelayProvider.POSTMARK, RelayProvider.BREVO)


class BadSignature(NotAuthenticated):
    """The request did not pass the provider's check; nothing was applied."""

    code = "bad_signature"


class RelayUnavailable(VisitmailError):
    """Something the check needs could not be fetched (the SNS certificate): try later."""

    code = "unavailable"


class RelayWebhookUnitOfWork(DeliveryEventUnitOfWork, RotationUnitOfWork, Protocol):
    relay_webhooks: RelayWebhookRepository
    audit: AuditLog


def sealed_field(provider: RelayProvider) -> str:
    return f"relay_webhook:{provider.value}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def endpoint_path(provider: RelayProvider, token: str) -> str:
    return f"{URL_PREFIX}/{provider.value}/{token}"


def parse_provider(value: str, *, field: str = "provider") -> RelayProvider:
    try:
        return RelayProvider(value)
    except ValueError:
        names = ", ".join(p.value for p in RelayProvider)
        raise NotFound(f"no relay provider {value[:40]!r}; one of {names}", field=field) from None


# --- admin ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    """What the admin sends to set an endpoint's verification data; ``None``: not sent."""

    public_key: str | None = None  # SendGrid
    signing_key: str | None = None  # Mailgun
    username: str | None = None  # Postmark, Brevo
    password: str | None = None  # Postmark, Brevo; None with generate_password: generated
    topic_arn: str | None = None  # SES


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """An endpoint after a change; ``token`` / ``password`` set only when generated now,
    the one time they are shown."""

    endpoint: RelayEndpoint
    token: str | None = None
    password: str | None = None

    @property
    def path(self) -> str | None:
        return endpoint_path(self.endpoint.provider, self.token) if self.token else None


def is_configured(endpoint: RelayEndpoint) -> bool:
    """True once the endpoint holds what its provider's check needs."""
    p = endpoint.provider
    if p is RelayProvider.SENDGRID:
        return bool(endpoint.public_key)
    if p is RelayProvider.SES:
        return bool(endpoint.topic_arn)
    if p is RelayProvider.MAILGUN:
        return bool(endpoint.secret_sealed)
    return bool(endpoint.username and endpoint.secret_sealed)


async def list_endpoints(
    uow: RelayWebhookUnitOfWork, principal: Principal
) -> Sequence[RelayEndpoint]:
    require_role(principal, Role.ADMIN)
    return await uow.relay_webhooks.list(principal.organization_id)


async def _audit(
    uow: RelayWebhookUnitOfWork,
    principal: Principal,
    action: str,
    provider: RelayProvider,
    fields: list[str],
    now: datetime,
) -> None:
    await uow.audit.record(
        principal.organization_id,
        actor_id=principal.user.id,
        action=action,
        target=f"relay_webhook:{provider.value}",
        fields=fields,
        now=now,
    )


async def _stored(uow: RelayWebhookUnitOfWork, org: uuid.UUID, p: RelayProvider) -> RelayEndpoint:
    endpoint = await uow.relay_webhooks.get(org, p)
    if endpoint is None:
        raise NotFound(f"there is no {p.label} endpoint", field="provider")
    return endpoint


async def create_endpoint(
    uow: RelayWebhookUnitOfWork,
    box: SecretSealer,
    principal: Principal,
    provider: RelayProvider,
    *,
    clock: Clock = utcnow,
) -> EndpointChange:
    """Create the organization's endpoint for ``provider`` (admin). Returns its token, and
    for Postmark / Brevo a generated basic-auth password (username ``visitmail``), both
    shown this once. ``Conflict`` if it exists (delete it first to get a new URL)."""
    require_role(principal, Role.ADMIN)
    org, now = principal.organization_id, clock()
    token = secrets.token_urlsafe(32)
    if not await uow.relay_webhooks.create(org, provider, token_hash(token), now):
        raise Conflict(
            f"there is already a {provider.label} endpoint; delete it to get a new URL",
            field="provider",
        )
    password = None
    if provider in BASIC_AUTH:
        password = secrets.token_urlsafe(24)
        await uow.relay_webhooks.set_verification(
            org,
            provider,
            username=DEFAULT_USERNAME,
            public_key=None,
            topic_arn=None,
            secret_sealed=box.seal(password, organization_id=org, field=sealed_field(provider)),
            now=now,
        )
    await _audit(uow, principal, ACTION_CREATE, provider, ["token"], now)
    await uow.commit()
    return EndpointChange(await _stored(uow, org, provider), token=token, password=password)


def _check_secret(value: str, field: str) -> str:
    if not (SECRET_MIN <= len(value) <= SECRET_MAX) or value != value.strip():
        raise InvalidInput(
            f"must be {SECRET_MIN} to {SECRET_MAX} characters without leading or trailing spaces",
            field=field,
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput("must not contain control characters", field=field)
    return value


def _check_username(value: str) -> str:
    if not (1 <= len(value) <= 100) or ":" in value or value != value.strip():
        raise InvalidInput(
            "must be 1 to 100 characters, no ':' and no leading or trailing spaces",
            field="username",
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput("must not contain control characters", field="username")
    return value


_USED = {
    RelayProvider.SENDGRID: {"public_key"},
    RelayProvider.MAILGUN: {"signing_key"},
    RelayProvider.POSTMARK: {"username", "password"},
    RelayProvider.BREVO: {"username", "password"},
    RelayProvider.SES: {"topic_arn"},
}


async def configure_endpoint(
    uow: RelayWebhookUnitOfWork,
    box: SecretSealer,
    principal: Principal,
    provider: RelayProvider,
    data: Verification,
    *,
    generate_password: bool = False,
    clock: Clock = utcnow,
) -> EndpointChange:
    """Set the verification data of ``provider``'s endpoint (admin): SendGrid's public key,
    Mailgun's signing key, the Postmark / Brevo username and password (``generate_password``
    makes a new one, returned once), the SES topic ARN. A field the provider does not use is
    refused by name, as is a missing one; omitted optional ones keep their value."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    endpoint = await _stored(uow, org, provider)
    fields = ("public_key", "signing_key", "username", "password", "topic_arn")
    sent = {k for k in fields if getattr(data, k) is not None}
    unused = sorted(sent - _USED[provider])
    if unused:
        raise InvalidInput(f"is not used by {provider.label}", field=unused[0])
    username, public_key, topic_arn = endpoint.username, endpoint.public_key, endpoint.topic_arn
    sealed = endpoint.secret_sealed
    generated = None
    field_ = sealed_field(provider)
    if provider is RelayProvider.SENDGRID:
        if not data.public_key:
            raise InvalidInput("is required", field="public_key")
        load_sendgrid_key(data.public_key)
        public_key = data.public_key.strip()
    elif provider is RelayProvider.MAILGUN:
        if data.signing_key is None:
            raise InvalidInput("is required", field="signing_key")
        sealed = box.seal(
            _check_secret(data.signing_key, "signing_key"), organization_id=org, field=field_
        )
    elif provider is RelayProvider.SES:
        if data.topic_arn is None:
            raise InvalidInput("is required", field="topic_arn")
        topic_arn = check_topic_arn(data.topic_arn)
    else:
        if data.username is not None:
            username = _check_username(data.username)
        if generate_password:
            if data.password is not None:
                raise InvalidInput("send a password or ask for one, not both", field="password")
            generated = secrets.token_urlsafe(24)
            sealed = box.seal(generated, organization_id=org, field=field_)
        elif data.password is not None:
            sealed = box.seal(
                _check_secret(data.password, "password"), organization_id=org, field=field_
            )
        if not username:
            raise InvalidInput("is required", field="username")
    now = clock()
    await uow.relay_webhooks.set_verification(
        org,
        provider,
        username=username,
        public_key=public_key,
        topic_arn=topic_arn,
        secret_sealed=sealed,
        now=now,
    )
    changed = sorted(sent | ({"password"} if generated else set()))
    await _audit(uow, principal, ACTION_CONFIGURE, provider, changed, now)
    await uow.commit()
    return EndpointChange(await _stored(uow, org, provider), password=generated)


async def delete_endpoint(
    uow: RelayWebhookUnitOfWork,
    principal: Principal,
    provider: RelayProvider,
    *,
    clock: Clock = utcnow,
) -> None:
    """Delete the endpoint (admin); its URL answers 404 from now on."""
    require_role(principal, Role.ADMIN)
    if not await uow.relay_webhooks.delete(principal.organization_id, provider):
        raise NotFound(f"there is no {provider.label} endpoint", field="provider")
    await _audit(uow, principal, ACTION_DELETE, provider, ["token"], clock())
    await uow.commit()


# --- receiving ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """What the receiver needs of an HTTP request: lower-cased headers and the raw body."""

    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Received:
    applied: int
    duplicates: int
    unmatched: int
    confirmed: bool = False  # an SNS subscription was confirmed


def _secret(box: SecretSealer, endpoint: RelayEndpoint) -> str:
    if endpoint.secret_sealed is None:
        raise BadSignature("this endpoint has no verification data yet", field="provider")
    return box.open(
        endpoint.secret_sealed,
        organization_id=endpoint.organization_id,
        field=sealed_field(endpoint.provider),
    )


async def _ses_message(
    endpoint: RelayEndpoint, request: RelayRequest, sns: SnsClient
) -> tuple[dict[str, object], bool]:
    """The verified SNS message; ``True`` if it was a subscription confirmed now."""
    data = parse_json(request.body)
    if not isinstance(data, dict):
        raise MalformedPayload("must be a JSON object", field="body")
    kind = data.get("Type")
    if kind not in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"):
        raise MalformedPayload("must be an SNS message type", field="Type")
    if not endpoint.topic_arn:
        raise BadSignature("this endpoint has no topic ARN yet", field="TopicArn")
    if data.get("TopicArn") != endpoint.topic_arn:
        raise BadSignature("is not the topic this endpoint accepts", field="TopicArn")
    cert_url = data.get("SigningCertURL")
    if not isinstance(cert_url, str):
        raise MalformedPayload("is missing", field="SigningCertURL")
    check_sns_url(cert_url, field="SigningCertURL", certificate=True)
    try:
        pem = await sns.certificate(cert_url)
    except Exception as exc:  # any network failure: SNS retries on 5xx
        log.warning("sns certificate fetch failed", error=type(exc).__name__)
        raise RelayUnavailable(
            "the SNS signing certificate could not be fetched", field="SigningCertURL"
        ) from None
    if not verify_sns(data, pem):
        raise BadSignature("the SNS signature does not verify", field="Signature")
    if kind == "SubscriptionConfirmation":
        url = data.get("SubscribeURL")
        if not isinstance(url, str):
            raise MalformedPayload("is missing", field="SubscribeURL")
        check_sns_url(url, field="SubscribeURL")
        try:
            await sns.confirm_subscription(url)
        except Exception as exc:
            log.warning("sns subscription confirm failed", error=type(exc).__name__)
            raise RelayUnavailable(
                "the subscription could not be confirmed", field="SubscribeURL"
            ) from None
        return data, True
    return data, False


async def authenticate(
    endpoint: RelayEndpoint,
    box: SecretSealer,
    request: RelayRequest,
    sns: SnsClient,
    *,
    now: datetime,
) -> tuple[list[DeliveryEvent], bool]:
    """Check the request with the endpoint's verification data and read its events;
    returns ``(events, confirmed)``. Raises as the module docstring says."""
    p, body, headers = endpoint.provider, request.body, request.headers
    if p is RelayProvider.SENDGRID:
        if not endpoint.public_key:
            raise BadSignature("this endpoint has no public key yet", field="public_key")
        signature = headers.get(SENDGRID_SIGNATURE, "")
        timestamp = headers.get(SENDGRID_TIMESTAMP, "")
        if not verify_sendgrid(endpoint.public_key, signature, timestamp, body):
            raise BadSignature("the signature does not verify", field=SENDGRID_SIGNATURE)
        return list(sendgrid_events(body, now=now)), False
    if p is RelayProvider.MAILGUN:
        key = _secret(box, endpoint)
        timestamp, token, signature = mailgun_signature_fields(body)
        if not verify_mailgun(key, timestamp, token, signature):
            raise BadSignature("the signature does not verify", field="signature.signature")
        return list(mailgun_events(body, now=now)), False
    if p in BASIC_AUTH:
        password = _secret(box, endpoint)
        if not verify_basic(headers.get("authorization", ""), endpoint.username or "", password):
            raise BadSignature("wrong or missing basic-auth credentials", field="authorization")
        read = postmark_events if p is RelayProvider.POSTMARK else brevo_events
        return list(read(body, now=now)), False
    data, confirmed = await _ses_message(endpoint, request, sns)
    if data.get("Type") != "Notification":
        return [], confirmed
    message, message_id = data.get("Message"), data.get("MessageId")
    if not isinstance(message, str):
        raise MalformedPayload("must be a string", field="Message")
    return list(ses_events(message, sns_message_id=str(message_id), now=now)), False


async def receive(
    uow: RelayWebhookUnitOfWork,
    box: SecretSealer,
    sns: SnsClient,
    provider: RelayProvider,
    token: str,
    request: RelayRequest,
    *,
    clock: Clock = utcnow,
) -> Received:
    """Receive one webhook request for the endpoint the token names."""
    if len(token) > 100:
        raise NotFound("no such endpoint", field="endpoint_token")
    endpoint = await uow.relay_webhooks.by_token_hash(provider, token_hash(token))
    if endpoint is None:
        raise NotFound("no such endpoint", field="endpoint_token")
    return await receive_for(uow, box, sns, endpoint, request, clock=clock)


async def receive_for(
    uow: RelayWebhookUnitOfWork,
    box: SecretSealer,
    sns: SnsClient,
    endpoint: RelayEndpoint,
    request: RelayRequest,
    *,
    clock: Clock = utcnow,
) -> Received:
    """:func:`receive` once the endpoint is known (also the self-test's way in)."""
    now = clock()
    try:
        found, confirmed = await authenticate(endpoint, box, request, sns, now=now)
    except BadSignature:
        log.info(
            "relay webhook refused",
            organization_id=str(endpoint.organization_id),
            provider=endpoint.provider.value,
        )
        raise
    result = await apply_events(uow, endpoint.organization_id, found, now=now)
    await uow.relay_webhooks.count(
        endpoint.id,
        applied=result.applied,
        duplicates=result.duplicates,
        unmatched=result.unmatched,
        now=now,
    )
    await uow.commit()
    log.info(
        "relay webhook received",
        organization_id=str(endpoint.organization_id),
        provider=endpoint.provider.value,
        applied=result.applied,
        duplicates=result.duplicates,
        unmatched=result.unmatched,
    )
    return Received(result.applied, result.duplicates, result.unmatched, confirmed)


# --- self-test ------------------------------------------------------------------------------

SELF_TEST_ADDRESS = "self-test@example.invalid"


def sample_request(
    provider: RelayProvider, username: str, secret: str, *, now: datetime
) -> RelayRequest:
    """A sample bounce as ``provider`` posts it, authenticated with the stored secret. It
    names a Message-ID no outbox holds, so it is counted as unmatched and changes nothing."""
    ref = uuid.uuid4().hex
    message_id = f"{ref}@self-test.visitmail.invalid"
    stamp = str(int(now.timestamp()))
    if provider is RelayProvider.MAILGUN:
        token = secrets.token_hex(25)
        body = {
            "signature": {
                "timestamp": stamp,
                "token": token,
                "signature": mailgun_signature(secret, stamp, token),
            },
            "event-data": {
                "event": "failed",
                "id": f"self-test-{ref}",
                "timestamp": now.timestamp(),
                "severity": "permanent",
                "recipient": SELF_TEST_ADDRESS,
                "message": {"headers": {"message-id": message_id}},
                "delivery-status": {
                    "code": 550,
                    "message": "5.1.1 The email account does not exist (visitmail self-test)",
                },
            },
        }
        return RelayRequest({}, json.dumps(body).encode())
    if provider is RelayProvider.POSTMARK:
        record: dict[str, object] = {
            "RecordType": "Bounce",
            "ID": int(now.timestamp()),
            "Type": "HardBounce",
            "Email": SELF_TEST_ADDRESS,
            "Description": "visitmail self-test",
            "Details": "smtp;550 5.1.1 The email account does not exist",
            "Metadata": {"message-id": f"<{message_id}>"},
            "BouncedAt": now.astimezone(UTC).isoformat(),
        }
        body_bytes = json.dumps(record).encode()
    else:
        body_bytes = json.dumps(
            {
                "event": "hard_bounce",
                "email": SELF_TEST_ADDRESS,
                "message-id": f"<{message_id}>",
                "reason": "550 5.1.1 The email account does not exist (visitmail self-test)",
                "ts_event": int(now.timestamp()),
            }
        ).encode()
    return RelayRequest({"authorization": basic_auth_header(username, secret)}, body_bytes)


async def self_test(
    uow: RelayWebhookUnitOfWork,
    box: SecretSealer,
    sns: SnsClient,
    principal: Principal,
    provider: RelayProvider,
    *,
    clock: Clock = utcnow,
) -> Received:
    """Sign a sample bounce with the stored secret and receive it through the endpoint's own
    check (admin). Only Mailgun, Postmark and Brevo: SendGrid and SNS sign with keys only
    they hold (use the relay console's test button); ``Conflict`` says so."""
    require_role(principal, Role.ADMIN)
    endpoint = await _stored(uow, principal.organization_id, provider)
    if provider in (RelayProvider.SENDGRID, RelayProvider.SES):
        raise Conflict(
            f"{provider.label} signs with a key only it holds: send a test from its console",
            field="provider",
        )
    if not is_configured(endpoint):
        raise Conflict("set the verification data first", field="provider")
    secret = _secret(box, endpoint)
    request = sample_request(provider, endpoint.username or "", secret, now=clock())
    try:
        return await receive_for(uow, box, sns, endpoint, request, clock=clock)
    except BadSignature as exc:  # not the admin's 401: the endpoint's check refused it
        raise Conflict(f"the sample was refused: {exc.message}", field="provider") from None


# --- key rotation ---------------------------------------------------------------------------


async def rotate_keys(
    uow_factory: Callable[[], RelayWebhookUnitOfWork], box: SecretSealer, *, clock: Clock = utcnow
) -> RotationResult:
    """Re-seal every relay webhook secret not under the newest key (``visitmail keys
    rotate``)."""

    async def organizations(uow: RelayWebhookUnitOfWork) -> Sequence[uuid.UUID]:
        return await uow.relay_webhooks.organizations_with_secrets()

    async def sealed(
        uow: RelayWebhookUnitOfWork, org: uuid.UUID
    ) -> list[SealedValue[RelayProvider]]:
        return [
            SealedValue(p, token, sealed_field(p), p.value)
            for p, token in await uow.relay_webhooks.sealed_all(org)
        ]

    async def replace(
        uow: RelayWebhookUnitOfWork, org: uuid.UUID, p: RelayProvider, old: str, new: str
    ) -> bool:
        return await uow.relay_webhooks.replace_sealed(org, p, old=old, new=new)

    kind: SealedKind[RelayWebhookUnitOfWork, RelayProvider] = SealedKind(
        organizations=organizations,
        sealed=sealed,
        replace=replace,
        audit_action=ACTION_ROTATE,
        audit_target="relay_webhooks",
    )
    return await rotate_sealed(uow_factory, box, kind, clock=clock)
