"""Files and directories only the operator's account may read.

What visitmail keeps on disk — the SQLite database with its ``-wal`` and ``-shm`` files,
the master key file, the dev inbox's mail — holds leads' data, encrypted secrets or the
key to them. Whatever visitmail *creates* is private: directories mode 0700, files 0600,
whatever the process's umask. Existing files and directories keep the mode the operator
gave them (a backup group, say), except where a caller says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` and each missing parent with mode 0700; existing ones are left as
    they are."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it first: its mode is its own
        os.chmod(directory, DIR_MODE)  # mkdir's mode passes through the umask


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists (then ``False``, untouched).
    SQLite then opens the file instead of creating it with its default 0644, and gives
    the ``-wal`` and ``-shm`` files the database file's mode."""
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True
