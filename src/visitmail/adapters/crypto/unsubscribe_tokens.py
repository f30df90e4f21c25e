"""Opaque unsubscribe tokens: the organization and the lead's address, encrypted.

The one-click link (RFC 8058) travels in every follow-up, through mail scanners, proxies and
access logs; it must not show whom it unsubscribes. A token is::

    u2.<base64url, unpadded, of nonce(12 bytes) || AES-256-GCM(org uuid || address) || tag>

under a key derived (HKDF-SHA256, ``info = visitmail:unsubscribe:v2``) from each master
key, with associated data ``visitmail-unsubscribe-v2``: the newest key seals, every key in
the ring opens, so links in mail already sent survive a rotation while the old key is
held. Nobody without a master key learns the address, and a changed token does not open.
Tokens of the first format (``<payload>.<mac>``, signed but readable: see
:func:`visitmail.domain.follow_up.verify_unsubscribe`) are still honoured, because they are
in mail that has already been sent.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from visitmail.adapters.crypto.keyring import KeyRing
from visitmail.domain.follow_up import suppression_address, verify_unsubscribe

PREFIX = "u2."
_INFO = b"visitmail:unsubscribe:v2"
_AAD = b"visitmail-unsubscribe-v2"
_LEGACY_INFO = b"visitmail:unsubscribe:v1"
_NONCE = 12
_MAX_TOKEN_CHARS = 1_000


def _derive(material: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material)


class UnsubscribeTokens:
    """Seal with the ring's newest key, open with any (see the module docstring)."""

    def __init__(self, keyring: KeyRing) -> None:
        newest_first = list(reversed(keyring.keys))
        self._ciphers: Sequence[AESGCM] = [AESGCM(_derive(k.material, _INFO)) for k in newest_first]
        self._legacy_keys = [_derive(k.material, _LEGACY_INFO) for k in newest_first]

    def seal(self, organization_id: UUID, address: str) -> str:
        nonce = os.urandom(_NONCE)
        plain = organization_id.bytes + suppression_address(address).encode("utf-8")
        sealed = nonce + self._ciphers[0].encrypt(nonce, plain, _AAD)
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, token: str) -> tuple[UUID, str] | None:
        """``(organization id, address)``, or ``None`` for anything that is not a token
        sealed (or, in the first format, signed) under a key of the ring."""
        if len(token) > _MAX_TOKEN_CHARS:
            return None
        if not token.startswith(PREFIX):
            return verify_unsubscribe(self._legacy_keys, token)
        body = token[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        nonce, sealed = raw[:_NONCE], raw[_NONCE:]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, sealed, _AAD)
            except (InvalidTag, ValueError):
                continue
            if len(plain) <= 16:
                return None
            try:
                return UUID(bytes=plain[:16]), plain[16:].decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None
