"""The webhook signature and the mapping of HTTP answers onto the outbox's replies."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from visitmail.adapters.webhooks.sender import _reply_for
from visitmail.adapters.webhooks.signature import sign, signature_header, verify
from visitmail.domain.smtp_replies import ReplyClass, classify

SECRET = "whsec_unit-test-secret-value"
BODY = '{"a": "ä"}'.encode()


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, BODY) == expected
    assert signature_header(SECRET, 1700000000, BODY) == f"sha256={expected}"


def test_known_vector() -> None:
    # Computed independently: printf '0.' | openssl dgst -sha256 -hmac key
    assert sign("key", 0, b"") == hmac.new(b"key", b"0.", hashlib.sha256).hexdigest()
    assert len(sign("key", 0, b"")) == 64


def test_signature_depends_on_secret_timestamp_and_body() -> None:
    base = sign(SECRET, 1, BODY)
    assert sign(SECRET + "x", 1, BODY) != base
    assert sign(SECRET, 2, BODY) != base
    assert sign(SECRET, 1, BODY + b" ") != base


def test_verify_accepts_the_right_signature_within_tolerance() -> None:
    header = signature_header(SECRET, 1000, BODY)
    assert verify(SECRET, "1000", BODY, header, now=1100)
    assert not verify(SECRET, "1000", BODY, header, now=1000 + 301)  # replayed too late
    assert not verify("other-secret-value", "1000", BODY, header, now=1000)
    assert not verify(SECRET, "1000", BODY + b"x", header, now=1000)
    assert not verify(SECRET, "1001", BODY, header, now=1000)
    assert not verify(SECRET, "1000", BODY, header.replace("sha256=", "sha1="), now=1000)
    assert not verify(SECRET, "x", BODY, header, now=1000)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (200, 250, ReplyClass.ACCEPTED),
        (204, 250, ReplyClass.ACCEPTED),
        (408, 451, ReplyClass.TEMPORARY),
        (425, 451, ReplyClass.TEMPORARY),
        (429, 451, ReplyClass.THROTTLED),
        (500, 451, ReplyClass.TEMPORARY),
        (503, 451, ReplyClass.TEMPORARY),
        (301, 550, ReplyClass.PERMANENT),
        (400, 550, ReplyClass.PERMANENT),
        (404, 550, ReplyClass.PERMANENT),
        (410, 550, ReplyClass.PERMANENT),
    ],
)
def test_http_status_maps_onto_the_outbox_classification(
    status: int, code: int, kind: ReplyClass
) -> None:
    reply = _reply_for(status, "Reason", "")
    assert reply.code == code
    assert reply.text.startswith(f"HTTP {status}")
    assert reply.enhanced_status is None
    assert classify(reply) is kind


def test_reply_text_is_short() -> None:
    reply = _reply_for(500, "Internal Server Error", "x" * 5000)
    assert len(reply.text) == 200
