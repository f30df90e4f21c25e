"""The master key ring: several 256-bit keys, the newest encrypts, all decrypt.

File format (one key per line, newest last, ``#`` comments allowed)::

    <key id>:<urlsafe base64 of 32 bytes>

The same format is accepted inline from ``VISITMAIL_MASTER_KEYS`` (comma-separated).
Errors name the file and the line, never the key material.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from visitmail.adapters.private_files import make_private_dir

KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyRingError(Exception):
    """The key ring cannot be loaded or written; the message holds no key material."""


@dataclass(frozen=True, slots=True)
class MasterKey:
    key_id: str
    material: bytes

    def __repr__(self) -> str:  # never print key material
        return f"MasterKey(key_id={self.key_id!r})"


class KeyRing:
    """Ordered keys; ``newest`` encrypts, ``get(id)`` finds any for decryption."""

    def __init__(self, keys: list[MasterKey]) -> None:
        if not keys:
            raise KeyRingError("the key ring holds no keys")
        ids = [k.key_id for k in keys]
        if len(set(ids)) != len(ids):
            raise KeyRingError("the key ring holds a key id twice")
        self._keys = list(keys)
        self._by_id = {k.key_id: k for k in keys}

    @property
    def newest(self) -> MasterKey:
        return self._keys[-1]

    @property
    def keys(self) -> list[MasterKey]:
        return list(self._keys)

    @property
    def key_ids(self) -> list[str]:
        return [k.key_id for k in self._keys]

    def get(self, key_id: str) -> MasterKey | None:
        return self._by_id.get(key_id)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={self.key_ids!r})"


def new_key(key_id: str | None = None) -> MasterKey:
    kid = key_id or datetime.now(UTC).strftime("k%Y%m%d%H%M%S") + secrets.token_hex(2)
    return MasterKey(kid, secrets.token_bytes(KEY_BYTES))


def _format(key: MasterKey) -> str:
    return f"{key.key_id}:{base64.urlsafe_b64encode(key.material).decode()}"


def parse_keys(text: str, *, source: str, separator: str = "\n") -> KeyRing:
    keys: list[MasterKey] = []
    for number, raw in enumerate(text.split(separator), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, encoded = line.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise KeyRingError(f"{source}: entry {number} is not '<key id>:<base64 key>'")
        try:
            material = base64.b64decode(encoded.strip(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise KeyRingError(f"{source}: entry {number} is not valid base64") from None
        if len(material) != KEY_BYTES:
            raise KeyRingError(f"{source}: entry {number} is not a {KEY_BYTES}-byte key")
        keys.append(MasterKey(key_id, material))
    return KeyRing(keys)


def load_file(path: Path) -> KeyRing:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyRingError(f"{path}: cannot read the key file ({exc.strerror})") from None
    return parse_keys(text, source=str(path))


def create_file(path: Path) -> KeyRing:
    """Create a key file with one new key, mode 0600; refuse to overwrite an existing one."""
    make_private_dir(path.parent)
    key = new_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyRingError(f"{path}: already exists") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# visitmail master keys, newest last. Keep this file secret.\n")
        handle.write(_format(key) + "\n")
    return KeyRing([key])


def append_new_key(path: Path) -> KeyRing:
    """Add a fresh key at the end of the file (it becomes the newest) and return the ring."""
    ring = load_file(path)
    key = new_key()
    with path.open("a", encoding="utf-8") as handle:
        handle.write(_format(key) + "\n")
    os.chmod(path, 0o600)
    return KeyRing([*ring.keys, key])
