"""DKIM keys and signatures: keys made with ``cryptography``, mail signed with dkimpy.

Formats (the private half is only ever handed to the secret box):

* ``rsa``: 2048-bit, public exponent 65537; private half as PKCS#1 PEM (what dkimpy
  parses); ``p=`` is the base64 DER SubjectPublicKeyInfo (RFC 6376 3.6.1).
* ``ed25519``: private half as the base64 32-byte seed (dkimpy's format, PyNaCl's
  ``SigningKey``); ``p=`` is the base64 raw 32-byte public key (RFC 8463).

Signatures: ``relaxed/relaxed`` canonicalization (survives the header refolding and
trailing-whitespace changes relays make), the headers of
:data:`~visitmail.domain.dkim.SIGNED_HEADERS` with From oversigned, ``i=`` left to its
default (``@domain``), no ``l=`` (a body length would let anyone append content).

Cost, measured on the development machine (2 cores shared with other work; a loop of
200 signatures of a 4 KB message): dkimpy signs RSA-2048 with Python's own
big-integer ``pow`` (CRT): 4 to 9 ms of CPU a message depending on load; Ed25519 through
PyNaCl: about 0.3 ms. Parsing the key is about 0.2 ms and happens per signature inside
``dkim.sign``; the sealed key is opened once per signer (per chunk), not per message.
"""

from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from visitmail.domain.dkim import SIGNED_HEADERS, DkimAlgorithm, DkimKey
from visitmail.domain.errors import Conflict
from visitmail.services.dkim_ports import GeneratedKey, MessageSigner

RSA_BITS = 2048
_HEADERS = [h.encode("ascii") for h in SIGNED_HEADERS]
_CANONICALIZE = (b"relaxed", b"relaxed")


class DkimSignError(Conflict):
    """dkimpy refused to sign (a damaged key); the message names no key material."""

    code = "dkim_key_unusable"


class DkimpySigner:
    """Signs with one key; holds the private half in memory only for its lifetime."""

    __slots__ = ("_algorithm", "_domain", "_private", "_selector")

    def __init__(self, key: DkimKey, private: str) -> None:
        self._selector = key.selector.encode("ascii")
        self._domain = key.domain.encode("ascii")
        self._algorithm = key.algorithm.signature_algorithm.encode("ascii")
        self._private = private.encode("ascii")

    def sign(self, mime: bytes) -> bytes:
        try:
            header: bytes = dkim.sign(
                mime,
                self._selector,
                self._domain,
                self._private,
                canonicalize=_CANONICALIZE,
                signature_algorithm=self._algorithm,
                include_headers=_HEADERS,
                linesep=b"\r\n",
            )
        except dkim.DKIMException as exc:
            raise DkimSignError(
                f"the DKIM key of selector {self._selector.decode()} cannot sign "
                f"({type(exc).__name__}): generate a new key"
            ) from None
        return header + mime

    def __repr__(self) -> str:  # never the key
        return f"DkimpySigner(selector={self._selector!r}, domain={self._domain!r})"


class DkimpyKeys:
    """:class:`~visitmail.services.dkim_ports.DkimKeyMaterial` over cryptography + dkimpy."""

    def generate(self, algorithm: DkimAlgorithm) -> GeneratedKey:
        if algorithm is DkimAlgorithm.RSA:
            key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            public = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return GeneratedKey(pem.decode("ascii"), base64.b64encode(public).decode("ascii"))
        edkey = ed25519.Ed25519PrivateKey.generate()
        seed = edkey.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        raw = edkey.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return GeneratedKey(
            base64.b64encode(seed).decode("ascii"), base64.b64encode(raw).decode("ascii")
        )

    def signer(self, key: DkimKey, private: str) -> MessageSigner:
        return DkimpySigner(key, private)
