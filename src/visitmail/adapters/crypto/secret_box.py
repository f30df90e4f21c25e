"""Secrets at rest: AES-256-GCM under the key ring's newest key, bound to their place.

Token format (ASCII, safe in a text column)::

    v1:<key id>:<base64url, unpadded, of nonce(12 bytes) || ciphertext || tag(16 bytes)>

The associated data is ``visitmail:v1:<organization uuid>:<field>``, so a token copied to
another organization or another field (the proxy password into the SMTP password, say)
does not decrypt. Every seal draws a fresh 96-bit random nonce.

:class:`SecretUnreadable` is raised for a token that is malformed, tampered with, bound to
another place, or sealed under a key the ring no longer holds. Its message names the field
and, for a missing key, the key id; never the plaintext, the token or key material.
"""

from __future__ import annotations

import base64
import binascii
import os
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from visitmail.adapters.crypto.keyring import KeyRing
from visitmail.domain.errors import Conflict

VERSION = "v1"
NONCE_BYTES = 12
TAG_BYTES = 16


class SecretUnreadable(Conflict):
    """A stored secret cannot be decrypted with the configured master keys."""

    code = "secret_unreadable"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def associated_data(organization_id: UUID, field: str) -> bytes:
    return f"visitmail:{VERSION}:{organization_id}:{field}".encode()


def _split(token: str, field: str) -> tuple[str, str]:
    version, sep1, rest = token.partition(":")
    key_id, sep2, body = rest.partition(":")
    if version != VERSION or not sep1 or not sep2 or not key_id or not body:
        raise SecretUnreadable(f"the stored secret {field} is not in a format visitmail knows")
    return key_id, body


class SecretBox:
    """Seal and open secrets with a :class:`KeyRing`: the newest key seals, any key opens."""

    def __init__(self, keyring: KeyRing) -> None:
        self._ring = keyring

    @property
    def newest_key_id(self) -> str:
        return self._ring.newest.key_id

    def seal(self, plaintext: str, *, organization_id: UUID, field: str) -> str:
        key = self._ring.newest
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key.material).encrypt(
            nonce, plaintext.encode("utf-8"), associated_data(organization_id, field)
        )
        return f"{VERSION}:{key.key_id}:{_b64encode(nonce + sealed)}"

    def open(self, token: str, *, organization_id: UUID, field: str) -> str:
        """The plaintext, or :class:`SecretUnreadable` (never with secret data in it)."""
        key_id, body = _split(token, field)
        key = self._ring.get(key_id)
        if key is None:
            raise SecretUnreadable(
                f"the stored secret {field} was encrypted with master key {key_id!r}, which is "
                "not in the key ring: restore that key, or enter the secret again"
            )
        try:
            raw = _b64decode(body)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise SecretUnreadable(f"the stored secret {field} is damaged") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SecretUnreadable(f"the stored secret {field} is damaged")
        try:
            plain = AESGCM(key.material).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data(organization_id, field)
            )
        except InvalidTag:
            raise SecretUnreadable(
                f"the stored secret {field} failed its integrity check: it was altered, or it "
                "belongs to another organization or field"
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretUnreadable(f"the stored secret {field} is damaged") from None

    def key_id_of(self, token: str) -> str:
        return _split(token, "secret")[0]

    def needs_rotation(self, token: str) -> bool:
        """True if ``token`` was sealed under any key but the newest (or is unparseable)."""
        try:
            return self.key_id_of(token) != self._ring.newest.key_id
        except SecretUnreadable:
            return True

    def __repr__(self) -> str:
        return f"SecretBox(newest={self._ring.newest.key_id!r})"
