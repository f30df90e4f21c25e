"""Each relay's proof of origin, with test keys: valid signatures pass, forged ones and
changed bodies fail, URLs outside SNS are refused before anything is fetched."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from visitmail.domain.errors import InvalidInput
from visitmail.domain.relay_events import MalformedPayload
from visitmail.domain.relay_signatures import (
    basic_auth_header,
    check_sns_url,
    check_topic_arn,
    load_sendgrid_key,
    mailgun_signature,
    sns_string_to_sign,
    verify_basic,
    verify_mailgun,
    verify_sendgrid,
    verify_sns,
)


def sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def test_sendgrid_signature() -> None:
    private, public = sendgrid_keys()
    body, stamp = b'[{"event":"bounce"}]', "1600000000"
    signature = base64.b64encode(
        private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    ).decode()
    assert verify_sendgrid(public, signature, stamp, body)
    assert not verify_sendgrid(public, signature, "1600000001", body)
    assert not verify_sendgrid(public, signature, stamp, body + b" ")
    assert not verify_sendgrid(sendgrid_keys()[1], signature, stamp, body)
    assert not verify_sendgrid(public, "not base64!", stamp, body)
    assert not verify_sendgrid(public, "", stamp, body)
    with pytest.raises(InvalidInput) as caught:
        load_sendgrid_key("bm90IGEga2V5")
    assert caught.value.field == "public_key"


def test_mailgun_signature() -> None:
    sig = mailgun_signature("key-test", "1529006854", "tok")
    assert verify_mailgun("key-test", "1529006854", "tok", sig)
    assert verify_mailgun("key-test", "1529006854", "tok", sig.upper())
    assert not verify_mailgun("key-other", "1529006854", "tok", sig)
    assert not verify_mailgun("key-test", "1529006855", "tok", sig)


def test_basic_auth() -> None:
    header = basic_auth_header("visitmail", "pass:word")
    assert verify_basic(header, "visitmail", "pass:word")
    assert not verify_basic(header, "visitmail", "pass")
    assert not verify_basic(header, "other", "pass:word")
    assert not verify_basic("Bearer x", "visitmail", "pass:word")
    assert not verify_basic("Basic !!!", "visitmail", "pass:word")
    assert not verify_basic("", "", "")


def sns_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("version", "algorithm"),
    [("1", hashes.SHA1()), ("2", hashes.SHA256())],  # noqa: S303 - SNS v1 is SHA1
)
def test_sns_signature(version: str, algorithm: hashes.HashAlgorithm) -> None:
    key, pem = sns_certificate()
    message: dict[str, object] = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
        "Subject": "My First Message",
        "Message": "Hello world!",
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": version,
    }
    assert sns_string_to_sign(message).startswith(b"Message\nHello world!\nMessageId\n")
    message["Signature"] = base64.b64encode(
        key.sign(sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    ).decode()
    assert verify_sns(message, pem)
    assert not verify_sns({**message, "Message": "Hello world?"}, pem)
    assert not verify_sns(message, sns_certificate()[1])
    assert not verify_sns({**message, "SignatureVersion": "3"}, pem)


def test_sns_urls_and_topic() -> None:
    good = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
    assert check_sns_url(good, field="SigningCertURL", certificate=True) == good
    for bad in (
        "http://sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
        "https://user:pw@sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
        "https://sns.eu-west-1.amazonaws.com/x.txt",
        "https://s3.amazonaws.com/x.pem",
    ):
        with pytest.raises(MalformedPayload) as caught:
            check_sns_url(bad, field="SigningCertURL", certificate=True)
        assert caught.value.field == "SigningCertURL"
    assert check_topic_arn(" arn:aws:sns:eu-west-1:123456789012:ses-bounces ")
    with pytest.raises(InvalidInput):
        check_topic_arn("arn:aws:sqs:eu-west-1:123456789012:q")
