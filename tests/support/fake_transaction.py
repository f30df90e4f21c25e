"""The transaction semantics every in-memory fake unit of work shares: work on a deep copy
of the committed state; ``commit`` publishes it; leaving the block without committing rolls
back (like the SQL unit of work)."""

from __future__ import annotations

import copy
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

S = TypeVar("S")


class HoldsState(Protocol[S]):
    state: S


class CopyOnCommit(Generic[S]):
    def __init__(self, db: HoldsState[S]) -> None:
        self._db = db
        self.work: S = copy.deepcopy(db.state)

    async def __aenter__(self) -> Self:
        self.work = copy.deepcopy(self._db.state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.work = copy.deepcopy(self._db.state)  # roll back whatever was not committed

    async def commit(self) -> None:
        self._db.state = copy.deepcopy(self.work)
