"""Identifiers of stored rows: time-ordered UUIDs (version 7, RFC 9562 §5.7).

Why not ``uuid4``: a random key sends every insert to a random page of each B-tree that
holds it (the primary key, and every index that leads with a row id: a follow-up's report,
an outbox recipient's message). Once an organization has a long history, those pages no
longer stay in the database's cache and each insert dirties a page of its own: measured
on SQLite, a chunk of 100 follow-up send records cost 4.0 ms on an empty table and 17.5 ms
with 100,000 rows (docs/benchmarks.md, "history"). A version-7 UUID starts with its
creation time in milliseconds, so new rows land on the right-most pages, which stay hot:
1.2 ms and 1.7 ms. The other 74 bits are random (``secrets``), so an id is still not
guessable; every query is scoped by organization besides.

What an id reveals: its creation time to the millisecond, which every object shows anyway
(``created_at``, ``captured_at``). Python 3.14's ``uuid.uuid7`` does the same; until the
project requires 3.14 this module is it.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_MS_MASK = (1 << 48) - 1


def new_id(*, at: datetime | None = None) -> uuid.UUID:
    """A new UUIDv7 for the current time, or for ``at`` (an aware datetime: the seed of a
    benchmark's history, a migration back-filling rows). Ids made in the same millisecond
    are not ordered among themselves, which costs nothing: they share the same pages."""
    ms = time.time_ns() // 1_000_000 if at is None else int(at.timestamp() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")  # 80 bits, 74 of them used
    value = (
        (ms & _MS_MASK) << 80
        | _VERSION
        | ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
        | _VARIANT
        | (rand & ((1 << 62) - 1))  # rand_b: 62 bits
    )
    return uuid.UUID(int=value)
