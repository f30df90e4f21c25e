"""Webhooks: the URL rules an outbox message of kind ``webhook`` must meet, and the
organization's named webhook secrets (admin only, write-only).

A secret is stored sealed by the secret box under the field ``webhook:<name>``, bound to
its organization. Nothing shows a secret's value after it was stored: listing answers
names and dates; only :func:`put_secret` without a value returns the secret it generated,
once. Every change leaves an audit entry naming the secret, never its value.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from visitmail.domain.addresses import refuse_line_breaks
from visitmail.domain.errors import InvalidInput, NotFound
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.identity import require_role
from visitmail.services.ports import SecretSealer
from visitmail.services.secret_rotation import (
    RotationResult,
    SealedKind,
    SealedValue,
    rotate_sealed,
)
from visitmail.services.webhook_ports import WebhookSecretInfo, WebhookUnitOfWork

MAX_URL_LENGTH = 320  # the outbox stores the URL as the message's recipient
SECRET_MIN = 16
SECRET_MAX = 256
GENERATED_PREFIX = "whsec_"  # a public prefix, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LOCAL_NAMES = {"localhost"}
AUDIT_PREFIX = "webhook_secret."
ACTION_PUT = "webhook_secret.put"
ACTION_DELETE = "webhook_secret.delete"
ACTION_ROTATE = "webhook_secret.rotate_keys"


def sealed_field(name: str) -> str:
    """The secret box's field for the secret ``name`` (binds the token to its name)."""
    return f"webhook:{name}"


# --- rules ---------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str, *, field: str = "url") -> str:
    """A webhook URL: ``https://…``, or ``http://`` only to localhost / 127.0.0.0/8 / ::1
    (a local receiver; anything else would send the signed report in clear text). No
    credentials in the URL (it is shown in the outbox), no fragment, at most 320
    characters. Returns ``value`` unchanged; raises :class:`InvalidInput` naming ``field``.

    Where the host may *resolve* to is checked when the message is sent, against the
    operator's network policy (``VISITMAIL_SMTP_ALLOWED_NETWORKS``)."""
    refuse_line_breaks(value, field=field)
    if not value or len(value) > MAX_URL_LENGTH:
        raise InvalidInput(f"must be 1 to {MAX_URL_LENGTH} characters", field=field)
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput("must not contain spaces or control characters", field=field)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidInput("is not a valid URL", field=field) from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("https", "http"):
        raise InvalidInput("must be an https:// URL", field=field)
    if not host:
        raise InvalidInput("must name a host", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("must not contain a user name or password", field=field)
    if parts.fragment:
        raise InvalidInput("must not contain a #fragment", field=field)
    if port == 0:
        raise InvalidInput("has an invalid port", field=field)
    if scheme == "http" and not _loopback(host):
        raise InvalidInput(
            "must be an https:// URL (plain http:// is only allowed to localhost)", field=field
        )
    return value


def check_name(name: str, *, field: str = "name") -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field=field,
        )
    return name


def check_secret(value: str, *, field: str = "secret") -> str:
    # The message never repeats the value, nor its length.
    if not (SECRET_MIN <= len(value) <= SECRET_MAX) or value != value.strip():
        raise InvalidInput(
            f"must be {SECRET_MIN} to {SECRET_MAX} characters without leading or trailing spaces",
            field=field,
        )
    refuse_line_breaks(value, field=field)
    return value


def generate_secret() -> str:
    """A new random secret, 256 bits: ``whsec_<43 characters>``."""
    return GENERATED_PREFIX + secrets.token_urlsafe(32)


# --- admin use cases -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutResult:
    info: WebhookSecretInfo
    created: bool
    generated: str | None  # the secret, when visitmail generated it; shown this once


async def list_secrets(uow: WebhookUnitOfWork, principal: Principal) -> Sequence[WebhookSecretInfo]:
    """Names and dates of the organization's secrets (admin only); never values."""
    require_role(principal, Role.ADMIN)
    return await uow.webhook_secrets.list(principal.organization_id)


async def put_secret(
    uow: WebhookUnitOfWork,
    box: SecretSealer,
    principal: Principal,
    name: str,
    value: str | None,
    *,
    clock: Clock = utcnow,
) -> PutResult:
    """Create or replace the secret ``name`` (admin only). Without ``value`` a random one is
    generated and returned in ``generated``, the only time it is ever shown."""
    require_role(principal, Role.ADMIN)
    check_name(name)
    generated = None
    if value is None:
        value = generated = generate_secret()
    else:
        check_secret(value)
    org = principal.organization_id
    now = clock()
    sealed = box.seal(value, organization_id=org, field=sealed_field(name))
    created = await uow.webhook_secrets.put(org, name, sealed, now)
    await uow.audit.record(
        org,
        actor_id=principal.user.id,
        action=ACTION_PUT,
        target=f"webhook_secret:{name}",
        fields=["secret"],
        now=now,
    )
    await uow.commit()
    info = next(i for i in await uow.webhook_secrets.list(org) if i.name == name)
    return PutResult(info=info, created=created, generated=generated)


async def delete_secret(
    uow: WebhookUnitOfWork, principal: Principal, name: str, *, clock: Clock = utcnow
) -> None:
    """Delete the secret ``name`` (admin only); ``NotFound`` if there is none. Webhooks
    still naming it fail with "webhook secret <name> is not defined"."""
    require_role(principal, Role.ADMIN)
    check_name(name)
    org = principal.organization_id
    if not await uow.webhook_secrets.delete(org, name):
        raise NotFound(f"no webhook secret named {name}", field="name")
    await uow.audit.record(
        org,
        actor_id=principal.user.id,
        action=ACTION_DELETE,
        target=f"webhook_secret:{name}",
        fields=["secret"],
        now=clock(),
    )
    await uow.commit()


# --- delivery and key rotation -------------------------------------------------------------


async def secret_for_delivery(
    uow: WebhookUnitOfWork, box: SecretSealer, organization_id: UUID, name: str
) -> str | None:
    """The plaintext secret ``name`` for signing, or ``None`` if it is not defined (no role
    check: the caller is the delivery engine). Raises ``SecretUnreadable`` (a
    :class:`~visitmail.domain.errors.Conflict`) when no master key opens it."""
    token = await uow.webhook_secrets.get_sealed(organization_id, name)
    if token is None:
        return None
    return box.open(token, organization_id=organization_id, field=sealed_field(name))


async def rotate_keys(
    uow_factory: Callable[[], WebhookUnitOfWork], box: SecretSealer, *, clock: Clock = utcnow
) -> RotationResult:
    """Re-seal every webhook secret not under the newest key (``visitmail keys rotate``);
    see :mod:`visitmail.services.secret_rotation`."""

    async def sealed(uow: WebhookUnitOfWork, org: UUID) -> list[SealedValue[str]]:
        return [
            SealedValue(name, token, sealed_field(name), name)
            for name, token in await uow.webhook_secrets.sealed_all(org)
        ]

    async def replace(uow: WebhookUnitOfWork, org: UUID, name: str, old: str, new: str) -> bool:
        return await uow.webhook_secrets.replace_sealed(org, name, old=old, new=new)

    kind = SealedKind(
        organizations=lambda uow: uow.webhook_secrets.organizations_with_secrets(),
        sealed=sealed,
        replace=replace,
        audit_action=ACTION_ROTATE,
        audit_target="webhook_secrets",
    )
    return await rotate_sealed(uow_factory, box, kind, clock=clock)
