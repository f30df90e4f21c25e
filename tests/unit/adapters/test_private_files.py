"""What visitmail creates on disk is private; what the operator made keeps its mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from visitmail.adapters.private_files import create_private_file, make_private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_directories_and_files_are_private_even_under_a_lax_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert create_private_file(tmp_path / "a" / "b" / "db.sqlite")
    finally:
        os.umask(old)
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b")) == (0o700, 0o700)
    assert mode(tmp_path / "a" / "b" / "db.sqlite") == 0o600


def test_existing_ones_are_left_as_the_operator_made_them(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)  # noqa: S103 (an operator's group-readable directory)
    database = shared / "db.sqlite"
    database.write_bytes(b"data")
    os.chmod(database, 0o640)
    make_private_dir(shared)
    assert not create_private_file(database)
    assert (mode(shared), mode(database), database.read_bytes()) == (0o750, 0o640, b"data")
