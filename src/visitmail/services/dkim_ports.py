"""Ports of DKIM signing: the key store (``adapters/db/dkim_repo.py``) and the key
material adapter (``adapters/dkim/keys.py``, dkimpy and cryptography). Services never see
a crypto library; they see these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from visitmail.domain.dkim import DkimAlgorithm, DkimKey, DkimState
from visitmail.services.ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A fresh key pair: ``private`` is the text to seal (never logged or returned)."""

    private: str
    public_key: str  # base64, as published in ``p=``

    def __repr__(self) -> str:  # never print the private half
        return f"GeneratedKey(public_key={self.public_key[:12]!r}…)"


class MessageSigner(Protocol):
    def sign(self, mime: bytes) -> bytes:
        """``mime`` with a ``DKIM-Signature`` header in front; pure CPU, thread-safe."""
        ...


class DkimKeyMaterial(Protocol):
    def generate(self, algorithm: DkimAlgorithm) -> GeneratedKey: ...

    def signer(self, key: DkimKey, private: str) -> MessageSigner:
        """A signer for ``key`` whose private half is ``private`` (as generated)."""
        ...


class DkimKeyRepository(Protocol):
    async def add(
        self, organization_id: UUID, key: DkimKey, *, sealed: str, actor_id: UUID | None
    ) -> None: ...

    async def list(self, organization_id: UUID) -> Sequence[DkimKey]:
        """Newest first."""
        ...

    async def get(self, organization_id: UUID, key_id: UUID) -> DkimKey | None: ...

    async def delete(self, organization_id: UUID, key_id: UUID) -> bool: ...

    async def state(self, organization_id: UUID, *, for_update: bool = False) -> DkimState:
        """Signing off and no key when nothing was saved."""
        ...

    async def set_state(
        self, organization_id: UUID, state: DkimState, *, now: datetime
    ) -> None: ...

    async def signing_key(self, organization_id: UUID) -> tuple[DkimKey, str] | None:
        """The active key and its sealed private half, only when signing is enabled."""
        ...

    async def organizations_with_keys(self) -> Sequence[UUID]: ...

    async def sealed_all(self, organization_id: UUID) -> Sequence[tuple[DkimKey, str]]: ...

    async def replace_sealed(
        self, organization_id: UUID, key_id: UUID, *, old: str, new: str
    ) -> bool:
        """Swap the sealed private half if it still is ``old`` (key rotation)."""
        ...


class DkimUnitOfWork(UnitOfWork, Protocol):
    dkim_keys: DkimKeyRepository


class DkimReader(Protocol):
    """Any unit of work that can read DKIM keys (the send paths' read units of work)."""

    dkim_keys: DkimKeyRepository
