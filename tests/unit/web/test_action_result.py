"""The sealed result of a UI action: opens for the same user and kind only, not altered,
not stale, through a key rotation, and small enough for a query string."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from visitmail.adapters.crypto.keyring import KeyRing, new_key
from visitmail.domain.identity import Principal, User
from visitmail.domain.roles import Role
from visitmail.web.ui import action_result
from visitmail.web.ui.action_result import RESULT_SECONDS, open_result, seal_result
from visitmail.web.ui.session import UiSession

RING = KeyRing([new_key("k1")])


def session(organization_id: uuid.UUID | None = None) -> UiSession:
    user = User(
        id=uuid.uuid4(),
        organization_id=organization_id or uuid.uuid4(),
        email="curator@example.org",
        display_name="Cora Curator",
        role=Role.EVENT_CURATOR,
        disabled=False,
        created_at=datetime.now(UTC),
    )
    return UiSession(Principal(user, "session"), csrf_token="x")


def test_it_opens_for_the_same_user_and_kind_only() -> None:
    mine = session()
    token = seal_result(RING, mine, "bulk:1", {"r": [["ab", "queued"]]})
    assert open_result(RING, mine, "bulk:1", token) == {"r": [["ab", "queued"]]}
    colleague = session(mine.principal.organization_id)
    assert open_result(RING, colleague, "bulk:1", token) is None
    assert open_result(RING, mine, "bulk:2", token) is None
    assert open_result(RING, mine, "bulk:1", None) is None
    assert open_result(RING, mine, "bulk:1", "") is None


@pytest.mark.parametrize("change", ["flip", "cut", "key", "junk"])
def test_an_altered_token_shows_nothing(change: str) -> None:
    mine = session()
    token = seal_result(RING, mine, "report:1", {"a": "export", "n": []})
    key_id, body = token.split(".", 1)
    altered = {
        "flip": f"{key_id}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}",
        "cut": f"{key_id}.{body[:20]}",
        "key": f"k9.{body}",
        "junk": "k1.!!not base64!!",
    }[change]
    assert open_result(RING, mine, "report:1", altered) is None


def test_a_stale_token_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = session()
    token = seal_result(RING, mine, "bulk:1", {"r": []})
    later = time.time() + RESULT_SECONDS + 1
    monkeypatch.setattr(action_result.time, "time", lambda: later)
    assert open_result(RING, mine, "bulk:1", token) is None


def test_a_rotated_ring_still_opens_it() -> None:
    mine = session()
    token = seal_result(RING, mine, "bulk:1", {"r": []})
    rotated = KeyRing([new_key("k2"), *RING.keys])
    assert open_result(rotated, mine, "bulk:1", token) == {"r": []}
    assert open_result(KeyRing([new_key("k3")]), mine, "bulk:1", token) is None


def test_two_hundred_results_fit_a_query_string() -> None:
    mine = session()
    payload = {"r": [[uuid.uuid4().hex, "queued"] for _ in range(200)], "m": {}}
    token = seal_result(RING, mine, "bulk:1", payload)
    assert len(token) < 6_000, len(token)
    assert open_result(RING, mine, "bulk:1", token) == payload
