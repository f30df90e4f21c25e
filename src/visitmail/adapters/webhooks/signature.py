"""The webhook signature (Stripe style), for senders and receivers alike.

Every request carries::

    X-Visitmail-Timestamp: <unix seconds when the attempt was made>
    X-Visitmail-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw request body (the bytes
as received, before any JSON parsing), compares in constant time, and refuses timestamps
too far from its own clock (replays). Every retry is signed afresh with a new timestamp;
the body and ``X-Visitmail-Id`` stay the same, so a receiver can deduplicate on the id.
"""

from __future__ import annotations

import hashlib
import hmac

SCHEME = "sha256"
DEFAULT_TOLERANCE = 300  # seconds


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.".encode() + body`` under ``secret``."""
    signed = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The value of ``X-Visitmail-Signature``: ``sha256=<hex>``."""
    return f"{SCHEME}={sign(secret, timestamp, body)}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """What a receiver does: the header holds the right signature for ``timestamp`` and
    ``body``, and ``timestamp`` is within ``tolerance`` seconds of ``now``."""
    scheme, _, digest = header.partition("=")
    if scheme != SCHEME or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(digest, sign(secret, int(timestamp), body))
