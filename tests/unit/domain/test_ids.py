"""Row ids are UUIDv7: valid, time-ordered, unguessable in their random part."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from visitmail.domain.ids import new_id


def test_an_id_is_a_version_7_rfc_9562_uuid_carrying_its_millisecond() -> None:
    at = datetime(2026, 12, 2, 7, 30, 15, 123000, tzinfo=UTC)
    made = new_id(at=at)
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert made.int >> 80 == int(at.timestamp() * 1000)


def test_ids_sort_by_creation_time_so_inserts_land_on_the_newest_pages() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_id(at=start + timedelta(milliseconds=i)) for i in range(500)]
    assert ids == sorted(ids)
    assert [i.hex for i in ids] == sorted(i.hex for i in ids)  # SQLite stores the hex


def test_ids_of_the_same_millisecond_differ_in_their_74_random_bits() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ids = {new_id(at=at) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_without_a_time_the_id_is_of_now() -> None:
    before = datetime.now(UTC)
    made = new_id()
    after = datetime.now(UTC)
    ms = made.int >> 80
    assert int(before.timestamp() * 1000) <= ms <= int(after.timestamp() * 1000)
