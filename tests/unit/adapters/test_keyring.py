from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from visitmail.adapters.crypto.keyring import (
    KeyRingError,
    append_new_key,
    create_file,
    load_file,
    parse_keys,
)


def test_created_file_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "var" / "master.key"
    ring = create_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_file(path).key_ids == ring.key_ids
    assert load_file(path).newest.material == ring.newest.material
    with pytest.raises(KeyRingError, match="already exists"):
        create_file(path)


def test_appended_key_becomes_newest_and_old_keys_stay(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = create_file(path)
    ring = append_new_key(path)
    assert ring.key_ids[0] == first.newest.key_id
    assert ring.newest.key_id != first.newest.key_id
    assert ring.get(first.newest.key_id) is not None
    assert load_file(path).key_ids == ring.key_ids


def test_inline_keys_parse_newest_last() -> None:
    a = base64.urlsafe_b64encode(b"a" * 32).decode()
    b = base64.urlsafe_b64encode(b"b" * 32).decode()
    ring = parse_keys(f"old:{a},new:{b}", source="env", separator=",")
    assert ring.newest.key_id == "new"
    assert ring.get("old") is not None and ring.get("old").material == b"a" * 32  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nokeyhere", "is not '<key id>:<base64 key>'"),
        ("k1:!!!!", "not valid base64"),
        ("k1:" + base64.urlsafe_b64encode(b"short").decode(), "not a 32-byte key"),
        ("", "holds no keys"),
        (
            "k1:"
            + base64.urlsafe_b64encode(b"a" * 32).decode()
            + "\nk1:"
            + base64.urlsafe_b64encode(b"b" * 32).decode(),
            "key id twice",
        ),
    ],
)
def test_bad_key_rings_are_refused_without_key_material(text: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message) as info:
        parse_keys(text, source="keys")
    assert "YWFh" not in str(info.value)


def test_repr_never_shows_material() -> None:
    ring = parse_keys("k1:" + base64.urlsafe_b64encode(b"z" * 32).decode(), source="x")
    assert "z" * 8 not in repr(ring) and "eno" not in repr(ring.newest)
    assert base64.urlsafe_b64encode(b"z" * 32).decode() not in repr(ring.newest)
