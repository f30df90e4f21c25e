"""Keys made by the adapter sign mail that dkimpy verifies against the published record;
signing only puts a header in front; a changed body or header fails."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import dkim
import pytest

from visitmail.adapters.dkim.keys import DkimpyKeys, DkimSignError
from visitmail.adapters.render.mime import build_message
from visitmail.domain.dkim import SIGNED_HEADERS, DkimAlgorithm, DkimKey
from visitmail.domain.mail import Mailbox, MailSpec


def mime() -> bytes:
    spec = MailSpec(
        sender=Mailbox("sales@example.com", "Sales"),
        to=(Mailbox("anna@example.de", "Anna Müller"),),
        reply_to=Mailbox("rep@example.com"),
        subject="Ihr Besuch am Stand",
        text="Sehr geehrte Frau Müller,\n\nvielen Dank.\n",
        html="<p>Danke</p>",
        headers=(("List-Unsubscribe", "<https://x.example/u/1>"),),
        date=datetime(2026, 12, 2, 6, 0, tzinfo=UTC),
        message_id="<m1@example.com>",
    )
    return build_message(spec).mime


def key_of(algorithm: DkimAlgorithm, public_key: str) -> DkimKey:
    return DkimKey(
        uuid.uuid4(), "vm202612", "example.com", algorithm, public_key, datetime.now(UTC)
    )


def dns(record: str):  # type: ignore[no-untyped-def]
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record.encode() if name == b"vm202612._domainkey.example.com." else None

    return lookup


@pytest.mark.parametrize("algorithm", list(DkimAlgorithm))
def test_signed_mail_verifies_against_the_record_and_tampering_fails(
    algorithm: DkimAlgorithm,
) -> None:
    made = DkimpyKeys().generate(algorithm)
    key = key_of(algorithm, made.public_key)
    if algorithm is DkimAlgorithm.RSA:
        assert made.private.startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert len(base64.b64decode(made.public_key)) == 294  # SPKI of a 2048-bit key
    else:
        assert len(base64.b64decode(made.public_key)) == 32
    assert made.private not in repr(made)

    original = mime()
    signed = DkimpyKeys().signer(key, made.private).sign(original)
    assert signed.startswith(b"DKIM-Signature: v=1; a=" + algorithm.signature_algorithm.encode())
    assert signed.endswith(original)  # the message itself is untouched
    sig = signed[: len(signed) - len(original)]
    assert b"c=relaxed/relaxed" in sig and b"d=example.com" in sig and b"s=vm202612" in sig
    unfolded = b"".join(sig.split(b"\r\n"))
    assert b"h=from : from : to : cc : subject : date : message-id : reply-to" in unfolded
    assert dkim.verify(signed, dnsfunc=dns(key.record_value))

    assert not dkim.verify(
        signed.replace(b"vielen Dank", b"vielen Dunk"), dnsfunc=dns(key.record_value)
    )
    assert not dkim.verify(
        signed.replace(b"Subject: Ihr Besuch", b"Subject: Sein Besuch"),
        dnsfunc=dns(key.record_value),
    )
    # a second From added on the way breaks the oversigned signature
    hacked = signed.replace(b"\r\nFrom: ", b"\r\nFrom: evil@example.net\r\nFrom: ", 1)
    assert not dkim.verify(hacked, dnsfunc=dns(key.record_value))
    other = DkimpyKeys().generate(algorithm)
    assert not dkim.verify(signed, dnsfunc=dns(key_of(algorithm, other.public_key).record_value))


def test_a_damaged_key_is_a_domain_error_without_key_material() -> None:
    key = key_of(DkimAlgorithm.ED25519, "AAAA")
    with pytest.raises(DkimSignError) as caught:
        DkimpyKeys().signer(key, "bm90LWEta2V5").sign(mime())
    assert "vm202612" in caught.value.message
    assert "bm90LWEta2V5" not in caught.value.message


def test_the_openssl_rsa_path_makes_exactly_dkimpys_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """visitmail replaces only dkimpy's RSA arithmetic: at the same moment (``t=``) the
    header is byte for byte the one ``dkim.sign`` makes with its own RSA."""
    monkeypatch.setattr(dkim.time, "time", lambda: 1_796_190_000.0)
    made = DkimpyKeys().generate(DkimAlgorithm.RSA)
    key = key_of(DkimAlgorithm.RSA, made.public_key)
    message = mime()
    ours = DkimpyKeys().signer(key, made.private).sign(message)
    theirs = dkim.sign(
        message,
        b"vm202612",
        b"example.com",
        made.private.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h.encode() for h in SIGNED_HEADERS],
        linesep=b"\r\n",
    )
    assert b"t=1796190000" in theirs
    assert ours == theirs + message


def test_a_key_that_is_not_rsa_pem_is_refused_when_the_signer_is_made() -> None:
    key = key_of(DkimAlgorithm.RSA, "AAAA")
    ed = DkimpyKeys().generate(DkimAlgorithm.ED25519)
    with pytest.raises(DkimSignError) as caught:
        DkimpyKeys().signer(key, ed.private)
    assert ed.private not in caught.value.message
