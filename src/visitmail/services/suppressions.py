"""Use cases of the suppression list as people manage it: list, add by hand, lift, and the
audit trail of those changes. (Addresses also land on the list by themselves: the
unsubscribe link and the rejection hook, both in ``services/follow_ups.py``.)

Who may do what: ``event_curator`` and up read the list and its audit trail (they run
bulk follow-ups and need to see why a lead was ``suppressed``); ``event_manager`` and up
add and lift entries (admins included). Lower roles get :class:`PermissionDenied`.

Rules:

- An address is checked by the rule used everywhere (``domain.addresses``: what SMTP
  accepts) and kept lower-cased, as the send path compares it
  (``domain.follow_up.suppression_address``).
- Adding an address already on the list changes nothing and raises :class:`Conflict`
  (code ``already_suppressed``, field ``address``) naming why it is there: the first
  reason stays (an unsubscribe is never overwritten by a manual entry, nor the evidence
  of a refusal).
- Lifting takes the entry off and records the time of the lift, so the rejection hook
  counts only refusals that come after it: the address is sendable again at once, and a
  new permanent refusal of it suppresses it again. Lifting an address that is not on the
  list raises :class:`NotFound`.
- Every add and lift writes one audit entry (action ``suppression.add`` /
  ``suppression.lift``, target the address, who, when) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from visitmail.domain.addresses import normalize_email
from visitmail.domain.errors import Conflict, InvalidInput, NotFound
from visitmail.domain.follow_up import SuppressionReason, suppression_address
from visitmail.domain.header_text import header_safe
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.follow_up_ports import Suppression, SuppressionPage, SuppressionRepository
from visitmail.services.identity import require_role
from visitmail.services.ports import AuditLog, UserRepository

READ_ROLE = Role.EVENT_CURATOR
MANAGE_ROLE = Role.EVENT_MANAGER
MAX_NOTE = 500
MAX_ADDRESS = 320
MAX_PAGE = 200

ADD_ACTION = "suppression.add"
LIFT_ACTION = "suppression.lift"


class SuppressionUnitOfWork(Protocol):
    """One transaction with the suppression list, the audit log and the users (for the
    names in the audit trail)."""

    suppressions: SuppressionRepository
    audit: AuditLog
    users: UserRepository

    async def commit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SuppressionChange:
    """One audit entry of the list: who (``actor_name`` None if the user is gone) did
    ``action`` (``add`` or ``lift``) to ``address`` when."""

    at: datetime
    action: str
    address: str
    actor_id: UUID | None
    actor_name: str | None


def checked_address(value: str, *, field: str = "address") -> str:
    """``value`` as it is kept on the list, if it is a valid address; else
    :class:`InvalidInput` naming ``field``."""
    if len(value) > MAX_ADDRESS:
        raise InvalidInput(f"must be at most {MAX_ADDRESS} characters", field=field)
    return suppression_address(normalize_email(value, field=field))


def _checked_note(note: str | None) -> str | None:
    if note is None:
        return None
    note = header_safe(note, field="note", allow_tab=False).strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"must be at most {MAX_NOTE} characters", field="note")
    return note or None


async def list_suppressions(
    uow: SuppressionUnitOfWork,
    actor: Principal,
    *,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> SuppressionPage:
    """A page of the organization's list, newest first; ``search`` keeps the addresses
    that contain it (case-insensitive, literally). Raises :class:`InvalidInput` naming
    ``limit``, ``offset`` or ``search``."""
    require_role(actor, READ_ROLE)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", field="limit")
    if offset < 0:
        raise InvalidInput("must not be negative", field="offset")
    term = (search or "").strip()
    if len(term) > MAX_ADDRESS:
        raise InvalidInput(f"must be at most {MAX_ADDRESS} characters", field="search")
    if term:
        header_safe(term, field="search")
    return await uow.suppressions.page(
        actor.organization_id, search=term or None, limit=limit, offset=offset
    )


async def add_suppression(
    uow: SuppressionUnitOfWork,
    actor: Principal,
    address: str,
    *,
    note: str | None = None,
    clock: Clock = utcnow,
) -> Suppression:
    """Put ``address`` on the list by hand (reason ``manual``; event_manager+), audited,
    and commit. Raises :class:`InvalidInput` naming ``address`` or ``note``, and
    :class:`Conflict` ``already_suppressed`` (nothing changes) if it is on the list."""
    require_role(actor, MANAGE_ROLE)
    key = checked_address(address)
    clean_note = _checked_note(note)
    org = actor.organization_id
    now = clock()
    added = await uow.suppressions.add(
        org, key, SuppressionReason.MANUAL, now, created_by=actor.user.id, note=clean_note
    )
    if not added:
        existing = await uow.suppressions.get(org, key)
        why = existing.reason.value if existing else "listed"
        since = f" since {existing.created_at:%Y-%m-%d %H:%M} UTC" if existing else ""
        raise Conflict(
            f"{key} is already on the suppression list ({why}{since})",
            field="address",
            code="already_suppressed",
        )
    await uow.audit.record(
        org,
        actor_id=actor.user.id,
        action=ADD_ACTION,
        target=key,
        fields=["address", "note"] if clean_note else ["address"],
        now=now,
    )
    entry = await uow.suppressions.get(org, key)
    await uow.commit()
    assert entry is not None  # added in this very transaction
    return entry


async def lift_suppression(
    uow: SuppressionUnitOfWork, actor: Principal, address: str, *, clock: Clock = utcnow
) -> None:
    """Take ``address`` off the list (event_manager+), audited, and commit: follow-ups to
    it are queued again, whatever refused it before. Raises :class:`NotFound` if it is
    not on the list (an address that is not even valid is not on it either)."""
    require_role(actor, MANAGE_ROLE)
    # Matched as stored, not re-normalized (an entry from before a rule change must stay
    # liftable); text no entry can hold (NUL, controls, a lone surrogate) is not looked up:
    # PostgreSQL refuses NUL in text outright (a 500).
    key = suppression_address(address)
    try:
        header_safe(key, field="address")
    except InvalidInput:
        key = ""
    org = actor.organization_id
    now = clock()
    if (
        not key
        or len(key) > MAX_ADDRESS
        or not await uow.suppressions.remove(org, key, actor_id=actor.user.id, now=now)
    ):
        raise NotFound("the address is not on the suppression list", field="address")
    await uow.audit.record(
        org, actor_id=actor.user.id, action=LIFT_ACTION, target=key, fields=["address"], now=now
    )
    await uow.commit()


async def list_changes(
    uow: SuppressionUnitOfWork, actor: Principal, *, limit: int = 50
) -> Sequence[SuppressionChange]:
    """Who added or lifted which address when, newest first (event_curator+)."""
    require_role(actor, READ_ROLE)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", field="limit")
    org = actor.organization_id
    entries = await uow.suppressions.history(org, limit=limit)
    names = {u.id: u.display_name for u in await uow.users.list(org)} if entries else {}
    return [
        SuppressionChange(
            at=e.at,
            action=e.action.removeprefix("suppression."),
            address=e.target,
            actor_id=e.actor_id,
            actor_name=names.get(e.actor_id) if e.actor_id else None,
        )
        for e in entries
    ]
