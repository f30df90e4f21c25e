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

Speed: dkimpy does everything (canonicalization, body hash, the header list, folding,
the ``DKIM-Signature`` header), except one step for RSA. Its own RSA private-key operation
is Python big-integer arithmetic: 8 to 18 ms of CPU per signature on the development
machine (2 cores shared with other work), which would add 1 to 2 s of CPU to every bulk
chunk of 100. :class:`_OpenSslRsaDkim` therefore overrides ``DKIM.gen_header`` (the last
step, 20 lines kept as dkimpy 1.1 writes them) to compute the same PKCS#1 v1.5 signature
over the same digest with ``cryptography`` (OpenSSL); the result is byte for byte what
``dkim.sign`` makes (a test compares the two at a fixed time), and dkimpy's ``verify``
checks it in every test.

``scripts/bench_dkim.py`` (CPU time per message, best of 3 chunks of 100, on that loaded
machine): a 1.3 KB follow-up costs 7.0 ms with dkimpy's RSA, 1.0 ms as signed here
(RSA-2048; about 0.2 ms of it is dkimpy parsing the PEM again for each message), 0.3 ms
with Ed25519; with a 51 KB attachment (71 KB message) 8.4, 2.7 and 2.2 ms: dkimpy's
relaxed body canonicalization, Python regular expressions over the whole body, is then
the larger part, for either algorithm.
"""

from __future__ import annotations

import base64
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from visitmail.domain.dkim import SIGNED_HEADERS, DkimAlgorithm, DkimKey
from visitmail.domain.errors import Conflict
from visitmail.services.dkim_ports import GeneratedKey, MessageSigner

RSA_BITS = 2048
_HEADERS = [h.encode("ascii") for h in SIGNED_HEADERS]
_CANONICALIZE = (b"relaxed", b"relaxed")


class DkimSignError(Conflict):
    """dkimpy refused to sign (a damaged key); the message names no key material."""

    code = "dkim_key_unusable"


class _OpenSslRsaDkim(dkim.DKIM):  # type: ignore[misc]  # dkimpy has no type hints
    """dkimpy's signer with the RSA private-key operation done by OpenSSL. Only
    ``gen_header`` differs: dkimpy 1.1's code, with ``RSASSA_PKCS1_v1_5_sign(h, pk)``
    replaced by the same signature from ``cryptography`` over the same SHA-256 digest."""

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        super().__init__(message, signature_algorithm=b"rsa-sha256", linesep=b"\r\n")
        self._openssl_key = key

    def gen_header(
        self,
        fields: list[tuple[bytes, bytes]],
        include_headers: Any,
        canon_policy: Any,
        header_name: bytes,
        pk: Any,
        standardize: bool = False,
    ) -> bytes:
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        h = dkim.HashThrough(self.hasher(), self.debug_content)
        sig = dict(fields)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(
            h, canon_policy, headers, include_headers, header, sig
        )
        signature = self._openssl_key.sign(
            h.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256())
        )
        idx = next(i for i, (tag, _) in enumerate(fields) if tag == b"b")
        fields[idx] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        folded: bytes = dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)
        return folded


class DkimpySigner:
    """Signs with one key; holds the private half in memory only for its lifetime (the
    RSA key parsed once, here, not per message)."""

    __slots__ = ("_algorithm", "_domain", "_private", "_rsa", "_selector")

    def __init__(self, key: DkimKey, private: str) -> None:
        self._selector = key.selector.encode("ascii")
        self._domain = key.domain.encode("ascii")
        self._algorithm = key.algorithm.signature_algorithm.encode("ascii")
        self._private = private.encode("ascii")
        self._rsa: rsa.RSAPrivateKey | None = None
        if key.algorithm is DkimAlgorithm.RSA:
            try:
                loaded = serialization.load_pem_private_key(self._private, password=None)
            except (ValueError, TypeError):
                loaded = None
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise DkimSignError(
                    f"the DKIM key of selector {key.selector} is not an RSA private key: "
                    "generate a new key"
                )
            self._rsa = loaded

    def sign(self, mime: bytes) -> bytes:
        try:
            if self._rsa is not None:
                signer = _OpenSslRsaDkim(mime, self._rsa)
                # dkimpy parses ``privkey`` (0.2 ms) before gen_header ignores it: hand it
                # the PEM all the same so that a damaged key fails as it would in dkimpy.
                header: bytes = signer.sign(
                    self._selector,
                    self._domain,
                    self._private,
                    canonicalize=_CANONICALIZE,
                    include_headers=_HEADERS,
                )
            else:
                header = dkim.sign(
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
