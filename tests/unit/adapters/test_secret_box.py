"""The secret box: AES-256-GCM bound to organization and field, with key rotation."""

from __future__ import annotations

import base64
import uuid

import pytest

from visitmail.adapters.crypto.keyring import KeyRing, MasterKey, new_key
from visitmail.adapters.crypto.secret_box import SecretBox, SecretUnreadable, associated_data
from visitmail.domain.errors import VisitmailError

ORG_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
ORG_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
SECRET = "correct horse battery staple ✓"
FIELD = "smtp.password"


def ring(*ids: str) -> KeyRing:
    return KeyRing([MasterKey(i, bytes([n + 1]) * 32) for n, i in enumerate(ids)])


def box(*ids: str) -> SecretBox:
    return SecretBox(ring(*ids))


def _assert_clean(exc: VisitmailError, key_material: list[bytes]) -> None:
    text = f"{exc} {exc.message} {exc!r}"
    assert SECRET not in text
    for material in key_material:
        assert base64.urlsafe_b64encode(material).decode() not in text
        assert material.hex() not in text


def test_round_trip_and_token_format() -> None:
    b = box("k1")
    token = b.seal(SECRET, organization_id=ORG_A, field=FIELD)
    version, key_id, body = token.split(":")
    assert (version, key_id) == ("v1", "k1")
    assert SECRET not in token
    assert "=" not in body  # unpadded base64url
    assert b.open(token, organization_id=ORG_A, field=FIELD) == SECRET


def test_every_seal_uses_a_fresh_nonce() -> None:
    b = box("k1")
    tokens = {b.seal(SECRET, organization_id=ORG_A, field=FIELD) for _ in range(50)}
    assert len(tokens) == 50
    nonces = {base64.urlsafe_b64decode(t.split(":")[2] + "==")[:12] for t in tokens}
    assert len(nonces) == 50


def test_empty_and_long_secrets_round_trip() -> None:
    b = box("k1")
    for value in ("", "x" * 10_000):
        token = b.seal(value, organization_id=ORG_A, field=FIELD)
        assert b.open(token, organization_id=ORG_A, field=FIELD) == value


def test_associated_data_names_version_organization_and_field() -> None:
    assert associated_data(ORG_A, FIELD) == f"visitmail:v1:{ORG_A}:smtp.password".encode()


@pytest.mark.parametrize(
    ("org", "field"),
    [(ORG_B, FIELD), (ORG_A, "smtp.proxy.password"), (ORG_B, "smtp.proxy.password")],
)
def test_token_is_bound_to_its_organization_and_field(org: uuid.UUID, field: str) -> None:
    b = box("k1")
    token = b.seal(SECRET, organization_id=ORG_A, field=FIELD)
    with pytest.raises(SecretUnreadable) as caught:
        b.open(token, organization_id=org, field=field)
    assert caught.value.code == "secret_unreadable"
    assert "integrity" in caught.value.message
    _assert_clean(caught.value, [k.material for k in ring("k1").keys])


def test_tampering_is_detected() -> None:
    b = box("k1")
    token = b.seal(SECRET, organization_id=ORG_A, field=FIELD)
    prefix, body = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for index in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        forged = prefix + ":" + base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("=")
        with pytest.raises(SecretUnreadable) as caught:
            b.open(forged, organization_id=ORG_A, field=FIELD)
        _assert_clean(caught.value, [k.material for k in ring("k1").keys])


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "v2:k1:AAAA", "v1::AAAA", "v1:k1:", "v1:k1:!!!!", "v1:k1:AAAA", "v1:k1:é"],
)
def test_malformed_tokens_are_refused_cleanly(token: str) -> None:
    with pytest.raises(SecretUnreadable) as caught:
        box("k1").open(token, organization_id=ORG_A, field=FIELD)
    assert FIELD in caught.value.message


def test_a_key_swapped_under_the_same_id_does_not_open() -> None:
    token = box("k1").seal(SECRET, organization_id=ORG_A, field=FIELD)
    other = SecretBox(KeyRing([MasterKey("k1", b"\x09" * 32)]))
    with pytest.raises(SecretUnreadable):
        other.open(token, organization_id=ORG_A, field=FIELD)


def test_unknown_key_id_names_the_key_but_not_its_material() -> None:
    token = box("gone").seal(SECRET, organization_id=ORG_A, field=FIELD)
    with pytest.raises(SecretUnreadable) as caught:
        box("k1").open(token, organization_id=ORG_A, field=FIELD)
    assert "'gone'" in caught.value.message
    _assert_clean(caught.value, [k.material for k in ring("gone").keys])


def test_rotation_newest_seals_all_open() -> None:
    old = box("k1")
    token = old.seal(SECRET, organization_id=ORG_A, field=FIELD)
    assert not old.needs_rotation(token)

    rotated = box("k1", "k2")
    assert rotated.newest_key_id == "k2"
    assert rotated.needs_rotation(token)
    assert rotated.open(token, organization_id=ORG_A, field=FIELD) == SECRET
    resealed = rotated.seal(
        rotated.open(token, organization_id=ORG_A, field=FIELD), organization_id=ORG_A, field=FIELD
    )
    assert rotated.key_id_of(resealed) == "k2"
    assert not rotated.needs_rotation(resealed)
    # once the old key is retired, only the re-sealed token still opens
    retired = SecretBox(KeyRing([rotated_key for rotated_key in ring("k1", "k2").keys[1:]]))
    assert retired.open(resealed, organization_id=ORG_A, field=FIELD) == SECRET
    with pytest.raises(SecretUnreadable):
        retired.open(token, organization_id=ORG_A, field=FIELD)


def test_unparseable_token_counts_as_needing_rotation() -> None:
    assert box("k1").needs_rotation("nonsense")


def test_repr_shows_no_key_material() -> None:
    key = new_key("kx")
    b = SecretBox(KeyRing([key]))
    assert "kx" in repr(b)
    assert base64.urlsafe_b64encode(key.material).decode() not in repr(b)
