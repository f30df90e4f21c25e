"""Issue 10, item 12: unsubscribe tokens are opaque (the lead's address cannot be read
from the link), survive a key rotation, refuse tampering, and stay out of the logs."""

from __future__ import annotations

import base64
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from visitmail.adapters.crypto.keyring import KeyRing, new_key
from visitmail.adapters.crypto.unsubscribe_tokens import PREFIX, UnsubscribeTokens
from visitmail.domain.follow_up import sign_unsubscribe
from visitmail.logs import REDACTED, scrub_text

ORG = uuid.uuid4()
ADDRESS = "Anna.Mueller@Example.DE"


def decodings(token: str) -> list[bytes]:
    """Every way someone might try to read the token."""
    body = token.removeprefix(PREFIX)
    padded = body + "=" * (-len(body) % 4)
    return [token.encode(), base64.urlsafe_b64decode(padded)]


def test_the_address_cannot_be_read_from_the_token() -> None:
    tokens = UnsubscribeTokens(KeyRing([new_key("k1")]))
    token = tokens.seal(ORG, ADDRESS)
    assert token.startswith(PREFIX)
    for raw in decodings(token):
        assert b"anna" not in raw.lower()
        assert b"example" not in raw.lower()
        assert ORG.bytes not in raw
    assert tokens.open(token) == (ORG, "anna.mueller@example.de")
    assert tokens.seal(ORG, ADDRESS) != token  # a fresh nonce every time


def test_links_survive_a_rotation_and_die_with_their_key() -> None:
    old, new = new_key("k1"), new_key("k2")
    token = UnsubscribeTokens(KeyRing([old])).seal(ORG, ADDRESS)
    assert UnsubscribeTokens(KeyRing([old, new])).open(token) == (ORG, "anna.mueller@example.de")
    assert UnsubscribeTokens(KeyRing([new])).open(token) is None


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + "AA", lambda t: t + "A", lambda t: "u2.", str.upper]
)
def test_a_changed_or_made_up_token_opens_nothing(mangle: object) -> None:
    tokens = UnsubscribeTokens(KeyRing([new_key("k1")]))
    token = tokens.seal(ORG, ADDRESS)
    assert callable(mangle)
    assert tokens.open(mangle(token)) is None
    assert tokens.open("x" * 5000) is None
    assert tokens.open("not-a-token") is None


def test_links_of_the_first_format_in_mail_already_sent_still_work() -> None:
    key = new_key("k1")
    legacy_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"visitmail:unsubscribe:v1"
    ).derive(key.material)
    legacy = sign_unsubscribe([legacy_key], ORG, ADDRESS)
    assert UnsubscribeTokens(KeyRing([key])).open(legacy) == (ORG, "anna.mueller@example.de")


def test_the_access_log_keeps_the_path_not_the_token() -> None:
    token = UnsubscribeTokens(KeyRing([new_key("k1")])).seal(ORG, ADDRESS)
    line = f'127.0.0.1:5000 - "POST /api/v1/unsubscribe/{token} HTTP/1.1" 200'
    scrubbed = scrub_text(line)
    assert token not in scrubbed
    assert f"/api/v1/unsubscribe/{REDACTED} HTTP/1.1" in scrubbed
