"""What an action did, carried across its Post/Redirect/Get redirect in the query.

A UI action that succeeds answers ``303 See Other`` to a page that shows its result, so a
reload repeats nothing. A result that a short word (``?done=saved``) cannot say — which
leads a bulk follow-up queued and which it skipped, the notifications an export fired —
travels in ``?result=<token>``:

- **Sealed.** AES-256-GCM under a key derived (HKDF) from the key ring's newest master key
  for this purpose only; any key of the ring opens it, so a rotation does not break a
  redirect in flight. Nobody can forge a result ("queued" for a lead that was skipped) or
  read the addresses in it from a log line.
- **Per user and per kind.** The associated data names the organization, the user and
  the kind of result (``bulk:<event id>``, ``report:<report id>``): another user's link,
  or a report's result pasted into another report's page, shows nothing.
- **Short-lived.** :data:`RESULT_SECONDS` after the action the token is ignored: the page
  then shows what is stored, without the result.
- **Small.** The JSON is compressed before sealing; the bulk result carries report ids and
  statuses only (the page reads names and messages from the database), which keeps a
  200-report result near 5 KB.

Anything that does not open — altered, another user's, stale, not ours — is ``None``: the
page shows no result rather than an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import zlib
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from visitmail.adapters.crypto.keyring import KeyRing
from visitmail.web.ui.session import UiSession

RESULT_PARAM = "result"
RESULT_SECONDS = 1800  # long enough to read and reload, short enough not to linger
MAX_TOKEN_LENGTH = 12_000
MAX_PLAIN_BYTES = 200_000  # a zip bomb stops here
NONCE_BYTES = 12
_INFO = b"visitmail:ui-action-result:v1"


def _key(material: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material)


def _associated(session: UiSession, kind: str) -> bytes:
    principal = session.principal
    return f"{_INFO.decode()}:{principal.organization_id}:{principal.user.id}:{kind}".encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def seal_result(keyring: KeyRing, session: UiSession, kind: str, payload: dict[str, Any]) -> str:
    """The token for ``payload`` (JSON-serializable), readable by this user for ``kind``."""
    key = keyring.newest
    body = json.dumps({"at": int(time.time()), "p": payload}, separators=(",", ":"))
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_key(key.material)).encrypt(
        nonce, zlib.compress(body.encode(), 9), _associated(session, kind)
    )
    return f"{key.key_id}.{_b64encode(nonce + sealed)}"


def open_result(
    keyring: KeyRing, session: UiSession, kind: str, token: str | None
) -> dict[str, Any] | None:
    """The payload sealed for this user and ``kind`` at most :data:`RESULT_SECONDS` ago,
    else ``None``."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    key_id, _, body = token.partition(".")
    key = keyring.get(key_id)
    if key is None or not body:
        return None
    try:
        raw = _b64decode(body)
        plain = AESGCM(_key(key.material)).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(session, kind)
        )
        inflater = zlib.decompressobj()
        text = inflater.decompress(plain, MAX_PLAIN_BYTES)
        if inflater.unconsumed_tail:
            return None
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("p"), dict):
            return None
        age = time.time() - int(data["at"])
    except (InvalidTag, binascii.Error, ValueError, zlib.error, KeyError, TypeError):
        return None
    if age > RESULT_SECONDS or age < -60:
        return None
    payload: dict[str, Any] = data["p"]
    return payload
