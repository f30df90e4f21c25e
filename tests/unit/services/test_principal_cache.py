"""The bearer-token cache: entries live at most ``ttl`` seconds, a clear forgets them and
keeps a lookup begun before it from storing stale data, and the size is bounded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from visitmail.domain.identity import Principal, User
from visitmail.domain.roles import Role
from visitmail.services.identity import PrincipalCache


def principal(name: str = "a") -> Principal:
    user = User(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        email=f"{name}@example.com",
        display_name=name,
        role=Role.REPORTER,
        disabled=False,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    return Principal(user=user, via="token")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_at_most_ttl_seconds() -> None:
    clock = Clock()
    cache = PrincipalCache(5.0, clock=clock)
    who = principal()
    cache.put("h", who, generation=cache.generation)
    clock.now += 4.9
    assert cache.get("h") == who
    clock.now += 0.1
    assert cache.get("h") is None
    assert len(cache) == 0


def test_clear_forgets_and_refuses_a_lookup_begun_before_it() -> None:
    cache = PrincipalCache(5.0, clock=Clock())
    begun = cache.generation
    cache.put("h", principal(), generation=begun)
    cache.clear()  # e.g. a token was revoked in this process
    assert cache.get("h") is None
    cache.put("h", principal(), generation=begun)  # a lookup that started before the clear
    assert cache.get("h") is None
    cache.put("h", principal(), generation=cache.generation)
    assert cache.get("h") is not None


def test_the_least_recently_used_entries_go_first() -> None:
    cache = PrincipalCache(5.0, max_entries=2, clock=Clock())
    for name in ("a", "b"):
        cache.put(name, principal(name), generation=cache.generation)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", principal("c"), generation=cache.generation)
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = PrincipalCache(0.0, clock=Clock())
    cache.put("h", principal(), generation=cache.generation)
    assert cache.get("h") is None
