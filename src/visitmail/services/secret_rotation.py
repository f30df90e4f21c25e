"""``visitmail keys rotate``: re-seal stored secrets under the newest master key.

One loop for every kind of sealed secret (SMTP and proxy passwords, webhook secrets,
DKIM private keys, OAuth tokens): each kind says how to list the organizations holding
one, how to list an organization's sealed values and how to swap one. Per organization
one transaction; a value is replaced only if it is still the token that was read
(compare-and-swap), so a save that ran meanwhile wins (it sealed under the newest key
anyway). Idempotent. A value no master key opens is counted, and left as it is: the
operator needs the old key back, and deleting would lose the setting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar
from uuid import UUID

from visitmail.domain.errors import VisitmailError
from visitmail.services.clock import Clock, utcnow
from visitmail.services.ports import AuditLog, SecretSealer


@dataclass(frozen=True, slots=True)
class RotationResult:
    organizations: int  # organizations holding at least one secret
    reencrypted: int  # secrets now sealed under the newest key
    already_current: int  # secrets that were already under the newest key
    unreadable: int  # secrets no key in the ring opens (left untouched)
    unreadable_organizations: tuple[UUID, ...] = ()

    def __add__(self, other: RotationResult) -> RotationResult:
        broken = list(self.unreadable_organizations)
        broken += [o for o in other.unreadable_organizations if o not in broken]
        return RotationResult(
            self.organizations + other.organizations,
            self.reencrypted + other.reencrypted,
            self.already_current + other.already_current,
            self.unreadable + other.unreadable,
            tuple(broken),
        )


class RotationUnitOfWork(Protocol):
    """What the loop itself needs of a unit of work; each kind adds its repository."""

    audit: AuditLog

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


U = TypeVar("U", bound=RotationUnitOfWork)
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class SealedValue(Generic[K]):
    """One stored secret: ``key`` names it to :attr:`SealedKind.replace`, ``field`` is the
    associated data it was sealed under, ``label`` what the audit log calls it."""

    key: K
    token: str
    field: str
    label: str


@dataclass(frozen=True, slots=True)
class SealedKind(Generic[U, K]):
    """How one kind of secret is stored."""

    organizations: Callable[[U], Awaitable[Iterable[UUID]]]
    sealed: Callable[[U, UUID], Awaitable[Iterable[SealedValue[K]]]]
    replace: Callable[[U, UUID, K, str, str], Awaitable[bool]]  # (uow, org, key, old, new)
    audit_action: str
    audit_target: str


async def rotate_sealed(
    uow_factory: Callable[[], U],
    box: SecretSealer,
    kind: SealedKind[U, K],
    *,
    clock: Clock = utcnow,
) -> RotationResult:
    """Re-seal every value of ``kind`` not under the newest key; see the module doc."""
    async with uow_factory() as uow:
        organizations = list(await kind.organizations(uow))
    reencrypted = current = unreadable = 0
    broken: list[UUID] = []
    for org in organizations:
        async with uow_factory() as uow:
            rotated: list[str] = []
            for value in await kind.sealed(uow, org):
                if not box.needs_rotation(value.token):
                    current += 1
                    continue
                try:
                    plain = box.open(value.token, organization_id=org, field=value.field)
                except VisitmailError:
                    unreadable += 1
                    if org not in broken:
                        broken.append(org)
                    continue
                new = box.seal(plain, organization_id=org, field=value.field)
                if await kind.replace(uow, org, value.key, value.token, new):
                    rotated.append(value.label)
                    reencrypted += 1
                else:  # changed meanwhile by a save, which sealed under the newest key
                    current += 1
            if rotated:
                await uow.audit.record(
                    org,
                    actor_id=None,
                    action=kind.audit_action,
                    target=kind.audit_target,
                    fields=rotated,
                    now=clock(),
                )
            await uow.commit()
    return RotationResult(len(organizations), reencrypted, current, unreadable, tuple(broken))
