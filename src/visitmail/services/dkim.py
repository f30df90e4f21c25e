"""Use cases of DKIM signing for organizations whose relay does not sign: keys, the DNS
record to publish, on/off, which key signs, the operator's key rotation, and loading the
signer the send paths use.

Keys: an admin generates a key (``rsa`` 2048 or ``ed25519``) for a selector and a signing
domain (rules in ``domain/dkim.py``; the domain defaults to the sender address's domain and
must be aligned with it). The private half is sealed with the :class:`SecretSealer` for
the field ``dkim.private_key:<key id>`` of the organization, is write-only (no reply, page
or log shows it) and leaves the store only through :meth:`DkimSigning.load`. The first key
becomes the active one; a later key (a rotation) is only *added*: mail keeps being signed
with the active key until the admin selects the new one (``PUT`` with
``active_key_id``), after publishing its record. Signing starts off, and the admin turns
it on once the record is in DNS: a signature nobody can verify helps no one.

Where mail is signed (:meth:`DkimSigning.load`, called by ``services/follow_ups.py`` and
``services/notifications.py``): **at enqueue, right after the MIME is rendered**, and the
signed bytes are what the outbox stores.

* Every retry then sends byte-identical, identically signed mail, which is the outbox's
  promise (DESIGN.md, "A message's life"); signing at send time would put the key on the
  delivery worker's hot path and make the stored message differ from the sent one.
* The cost is paid where rendering already runs off the event loop: in bulk, in the
  worker thread that builds a chunk of 100, with the key read and decrypted **once per
  chunk** (one query; one decryption), and per notification action in the export's
  preparation. Per message (``scripts/bench_dkim.py``, details in
  ``adapters/dkim/keys.py``): about 1 ms of CPU for RSA-2048 (dkimpy with the RSA step in
  OpenSSL; dkimpy's own pure-Python RSA took 7 ms) and 0.3 ms for Ed25519 on a 1.3 KB
  follow-up, 2 to 3 ms for either with a 51 KB attachment (body canonicalization): a
  bulk chunk of 100 gains 0.1 to 0.3 s of CPU, in its rendering thread.
* The signature's ``t=`` is the enqueue time and it carries no ``x=`` expiry, so a message
  retried for days still verifies.
* Mail of an organization without an active, enabled key is not touched: the bytes are
  exactly those the renderer made. A key whose domain is no longer aligned with the
  sender (the sender address changed) does not sign; the status says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from visitmail.domain.dkim import (
    MAX_KEYS,
    DkimAlgorithm,
    DkimKey,
    DkimState,
    PublishedSelector,
    aligned,
    check_selector,
    check_signing_domain,
    default_selector,
    domain_of,
)
from visitmail.domain.errors import Conflict, InvalidInput, NotFound
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.dkim_ports import (
    DkimKeyMaterial,
    DkimReader,
    DkimUnitOfWork,
    MessageSigner,
)
from visitmail.services.identity import require_role
from visitmail.services.ports import SecretSealer
from visitmail.services.secret_rotation import (
    RotationResult,
    SealedKind,
    SealedValue,
    rotate_sealed,
)

AUDIT_TARGET = "dkim"
ACTION_GENERATE = "dkim.generate"
ACTION_UPDATE = "dkim.update"
ACTION_DELETE = "dkim.delete"
ACTION_ROTATE = "dkim.rotate_keys"


@dataclass(frozen=True, slots=True)
class DkimStatus:
    """What the admin sees: on/off, the active key, every key, and why signing would not
    happen now (``problems``: empty when mail is being signed)."""

    enabled: bool
    active: DkimKey | None
    keys: Sequence[DkimKey]
    sender_domain: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def signing(self) -> bool:
        return not self.problems


def _not_configured() -> NotFound:
    return NotFound(
        "save the SMTP settings first: the signing domain follows the sender address",
        code="not_configured",
    )


async def _sender_domain(uow: DkimUnitOfWork, organization_id: UUID) -> str | None:
    stored = await uow.smtp_settings.get(organization_id)
    return domain_of(stored.settings.sender_email) if stored is not None else None


def _problems(state: DkimState, active: DkimKey | None, sender_domain: str | None) -> list[str]:
    problems: list[str] = []
    if not state.enabled:
        problems.append("signing is off")
    if active is None:
        problems.append("there is no key: generate one")
    elif sender_domain is None:
        problems.append("the SMTP settings are not saved")
    elif not aligned(active.domain, sender_domain):
        problems.append(
            f"the active key signs for {active.domain}, which is not the sender's domain "
            f"({sender_domain}) nor a parent of it: mail is sent unsigned until a key for "
            "an aligned domain is generated and selected"
        )
    return problems


async def get_status(uow: DkimUnitOfWork, principal: Principal) -> DkimStatus:
    """The organization's DKIM status (admin only)."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    state = await uow.dkim_keys.state(org)
    keys = await uow.dkim_keys.list(org)
    active = next((k for k in keys if k.id == state.active_key_id), None)
    sender_domain = await _sender_domain(uow, org)
    return DkimStatus(
        state.enabled, active, keys, sender_domain, _problems(state, active, sender_domain)
    )


async def generate_key(
    uow: DkimUnitOfWork,
    box: SecretSealer,
    material: DkimKeyMaterial,
    principal: Principal,
    *,
    algorithm: DkimAlgorithm,
    selector: str | None = None,
    domain: str | None = None,
    clock: Clock = utcnow,
) -> DkimKey:
    """Make and store a new key (admin only); the first key becomes the active one, a
    later one is only added (see the module doc). Returns it (without its private half).

    Raises :class:`NotFound` ``not_configured`` (no SMTP settings: the sender's domain is
    unknown), :class:`InvalidInput` naming ``selector`` or ``domain`` (see
    ``domain/dkim.py``; ``domain`` says when it is not aligned with the sender),
    :class:`Conflict` naming ``selector`` (that selector and domain already have a key)
    or ``keys`` (:data:`MAX_KEYS` reached)."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    now = clock()
    chosen_selector = check_selector(selector if selector else default_selector(now))
    sender_domain = await _sender_domain(uow, org)
    if sender_domain is None:
        raise _not_configured()
    chosen_domain = check_signing_domain(domain if domain else sender_domain, sender_domain)
    existing = await uow.dkim_keys.list(org)
    if any(k.selector == chosen_selector and k.domain == chosen_domain for k in existing):
        raise Conflict(
            f"a key for selector {chosen_selector!r} of {chosen_domain} exists already: "
            "choose another selector (both records must stand in DNS during a switch)",
            field="selector",
            code="selector_taken",
        )
    if len(existing) >= MAX_KEYS:
        raise Conflict(
            f"the organization has {MAX_KEYS} keys: delete one it no longer publishes",
            field="keys",
            code="too_many_keys",
        )
    # Generation is CPU work (an RSA key: tens to hundreds of ms): off the event loop.
    made = await asyncio.to_thread(material.generate, algorithm)
    key = DkimKey(uuid4(), chosen_selector, chosen_domain, algorithm, made.public_key, now)
    sealed = box.seal(made.private, organization_id=org, field=key.sealed_field())
    await uow.dkim_keys.add(org, key, sealed=sealed, actor_id=principal.user.id)
    state = await uow.dkim_keys.state(org, for_update=True)
    if state.active_key_id is None:
        await uow.dkim_keys.set_state(org, DkimState(state.enabled, key.id), now=now)
    await uow.audit.record(
        org,
        actor_id=principal.user.id,
        action=ACTION_GENERATE,
        target=f"{AUDIT_TARGET}:{key.id}",
        fields=["algorithm", "selector", "domain", "private_key"],
        now=now,
    )
    await uow.commit()
    return key


async def update_state(
    uow: DkimUnitOfWork,
    principal: Principal,
    *,
    enabled: bool | None = None,
    active_key_id: UUID | None = None,
    clock: Clock = utcnow,
) -> DkimStatus:
    """Turn signing on or off and/or select the key that signs (admin only).

    Raises :class:`InvalidInput` naming ``active_key_id`` (not a key of the organization)
    or ``enabled`` (turning on without a key)."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    now = clock()
    state = await uow.dkim_keys.state(org, for_update=True)
    new_active = state.active_key_id
    changed: list[str] = []
    if active_key_id is not None and active_key_id != state.active_key_id:
        if await uow.dkim_keys.get(org, active_key_id) is None:
            raise InvalidInput("is not a key of this organization", field="active_key_id")
        new_active = active_key_id
        changed.append("active_key_id")
    new_enabled = state.enabled if enabled is None else enabled
    if new_enabled != state.enabled:
        changed.append("enabled")
    if new_enabled and new_active is None:
        raise InvalidInput("cannot turn signing on without a key: generate one", field="enabled")
    if changed:
        await uow.dkim_keys.set_state(org, DkimState(new_enabled, new_active), now=now)
        await uow.audit.record(
            org,
            actor_id=principal.user.id,
            action=ACTION_UPDATE,
            target=AUDIT_TARGET,
            fields=changed,
            now=now,
        )
        await uow.commit()
    return await get_status(uow, principal)


async def delete_key(
    uow: DkimUnitOfWork, principal: Principal, key_id: UUID, *, clock: Clock = utcnow
) -> None:
    """Delete a key that no longer signs (admin only). :class:`NotFound` for no such key;
    :class:`Conflict` naming ``key_id`` for the active key (select another first)."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    state = await uow.dkim_keys.state(org, for_update=True)
    if state.active_key_id == key_id:
        raise Conflict(
            "this key is the active one: select another key before deleting it",
            field="key_id",
            code="key_active",
        )
    if not await uow.dkim_keys.delete(org, key_id):
        raise NotFound("no such DKIM key")
    await uow.audit.record(
        org,
        actor_id=principal.user.id,
        action=ACTION_DELETE,
        target=f"{AUDIT_TARGET}:{key_id}",
        fields=["private_key"],
        now=clock(),
    )
    await uow.commit()


async def published_selector(reader: DkimReader, organization_id: UUID) -> PublishedSelector | None:
    """The active key's selector, domain and record, for the sender-domain check (which
    looks the record up in DNS); ``None`` without an active key. ``enabled`` says whether
    mail is signed with it now. No role check: the caller already holds the organization."""
    state = await reader.dkim_keys.state(organization_id)
    if state.active_key_id is None:
        return None
    key = await reader.dkim_keys.get(organization_id, state.active_key_id)
    if key is None:
        return None
    return PublishedSelector(
        key.selector, key.domain, key.algorithm, key.record_name, key.record_value, state.enabled
    )


@dataclass(frozen=True, slots=True)
class DkimSigning:
    """What the send paths need to sign: the secret box and the key-material adapter."""

    box: SecretSealer
    material: DkimKeyMaterial

    async def load(
        self, reader: DkimReader, organization_id: UUID, sender_address: str
    ) -> MessageSigner | None:
        """The organization's signer, or ``None`` when mail is sent unsigned (signing
        off, no key, or a key not aligned with ``sender_address``). One query and one
        decryption: callers load once per chunk and sign every message of it. Raises a
        :class:`Conflict`: ``secret_unreadable`` if no master key opens the key,
        ``dkim_key_unusable`` if what it opens is not a usable key."""
        found = await reader.dkim_keys.signing_key(organization_id)
        if found is None:
            return None
        key, sealed = found
        if not aligned(key.domain, domain_of(sender_address)):
            return None
        private = self.box.open(sealed, organization_id=organization_id, field=key.sealed_field())
        return self.material.signer(key, private)


async def rotate_keys(
    uow_factory: Callable[[], DkimUnitOfWork], box: SecretSealer, *, clock: Clock = utcnow
) -> RotationResult:
    """Re-seal every DKIM private key not under the newest master key (``visitmail keys
    rotate``); see :mod:`visitmail.services.secret_rotation`."""

    async def sealed(uow: DkimUnitOfWork, org: UUID) -> list[SealedValue[UUID]]:
        return [
            SealedValue(key.id, token, key.sealed_field(), str(key.id))
            for key, token in await uow.dkim_keys.sealed_all(org)
        ]

    async def replace(uow: DkimUnitOfWork, org: UUID, key_id: UUID, old: str, new: str) -> bool:
        return await uow.dkim_keys.replace_sealed(org, key_id, old=old, new=new)

    kind = SealedKind(
        organizations=lambda uow: uow.dkim_keys.organizations_with_keys(),
        sealed=sealed,
        replace=replace,
        audit_action=ACTION_ROTATE,
        audit_target=AUDIT_TARGET,
    )
    return await rotate_sealed(uow_factory, box, kind, clock=clock)
