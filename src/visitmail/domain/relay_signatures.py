"""How each relay proves a webhook is its own; pure checks over the raw request.

* **SendGrid**: ECDSA (P-256, SHA-256) over ``timestamp + body``; the signature and the
  timestamp in ``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp``, the public key
  (base64 DER, as SendGrid's console shows it) configured per endpoint.
* **Mailgun**: HMAC-SHA256 of ``timestamp + token`` with the webhook signing key, hex, in
  the body's ``signature`` object.
* **Postmark, Brevo**: HTTP basic auth with the username and password configured on the
  endpoint (both compared in constant time).
* **Amazon SES via SNS**: the SNS message's RSA signature (``SignatureVersion`` 1: SHA1,
  2: SHA256) over its canonical string, checked with the certificate at ``SigningCertURL``,
  which must be ``https://sns.<region>.amazonaws.com/….pem`` (anything else is refused
  before it is fetched). ``SubscribeURL`` must be https on the same kind of host.

Every check answers ``True``/``False`` or raises :class:`~relay_events.MalformedPayload`
for a value that cannot even be read; none ever puts a secret into a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from visitmail.domain.errors import InvalidInput
from visitmail.domain.relay_events import MalformedPayload

SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]{1,30}\.amazonaws\.com(\.cn)?$")
_TOPIC_ARN = re.compile(r"^arn:aws(-[a-z]+)*:sns:[a-z0-9-]{1,30}:\d{12}:[A-Za-z0-9_.-]{1,256}$")
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


# --- SendGrid -------------------------------------------------------------------------------


def load_sendgrid_key(value: str, *, field: str = "public_key") -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 of a DER ``SubjectPublicKeyInfo`` (a PEM block
    is accepted too). Raises :class:`InvalidInput` naming ``field``."""
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise InvalidInput("is not a base64 DER public key", field=field) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidInput("must be an elliptic-curve (ECDSA) public key", field=field)
    return key


def verify_sendgrid(public_key: str, signature: str, timestamp: str, body: bytes) -> bool:
    """True if ``signature`` (base64 DER ECDSA) signs ``timestamp + body``."""
    try:
        key = load_sendgrid_key(public_key)
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidInput, InvalidSignature, ValueError, binascii.Error):
        return False
    return True


# --- Mailgun --------------------------------------------------------------------------------


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify_mailgun(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    expected = mailgun_signature(signing_key, timestamp, token)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


# --- basic auth -----------------------------------------------------------------------------


def basic_auth_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def verify_basic(authorization: str, username: str, password: str) -> bool:
    """True if the ``Authorization`` header carries exactly these credentials."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    same_user = hmac.compare_digest(user.encode(), username.encode())
    same_password = hmac.compare_digest(secret.encode(), password.encode())
    return bool(sep) and same_user and same_password


# --- Amazon SNS -----------------------------------------------------------------------------


def check_topic_arn(value: str, *, field: str = "topic_arn") -> str:
    value = value.strip()
    if not _TOPIC_ARN.match(value):
        raise InvalidInput(
            "must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)", field=field
        )
    return value


def check_sns_url(url: str, *, field: str, certificate: bool = False) -> str:
    """An SNS URL visitmail may fetch: https on ``sns.<region>.amazonaws.com``, no
    credentials or port; a certificate's path ends in ``.pem``. Raises
    :class:`MalformedPayload` naming ``field``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise MalformedPayload("is not a valid URL", field=field) from None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not _SNS_HOST.match(host):
        raise MalformedPayload("must be an https URL on sns.<region>.amazonaws.com", field=field)
    if parts.username or parts.password or port not in (None, 443):
        raise MalformedPayload("must not carry credentials or a port", field=field)
    if certificate and not parts.path.endswith(".pem"):
        raise MalformedPayload("must name a .pem certificate", field=field)
    return url


def sns_string_to_sign(message: Mapping[str, object]) -> bytes:
    """The canonical string an SNS message's signature covers."""
    keys = _NOTIFICATION_KEYS if message.get("Type") == "Notification" else _SUBSCRIPTION_KEYS
    out = ""
    for key in keys:
        value = message.get(key)
        if value is None:
            continue  # only Subject is optional; a missing required key fails the signature
        out += f"{key}\n{value}\n"
    return out.encode()


def verify_sns(message: Mapping[str, object], certificate_pem: bytes) -> bool:
    """True if the message's signature verifies with the certificate's RSA key."""
    version = message.get("SignatureVersion")
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 - SNS SignatureVersion 1 is SHA1 by definition
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        return False
    signature = message.get("Signature")
    if not isinstance(signature, str):
        return False
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem)
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        key.verify(
            base64.b64decode(signature, validate=True),
            sns_string_to_sign(message),
            padding.PKCS1v15(),
            algorithm,
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
