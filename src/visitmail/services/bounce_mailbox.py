"""The bounce mailbox (``domain.bounce_mailbox``): its settings (admins), a test an admin can
run, and the poll the worker runs for every enabled mailbox.

A poll takes the mailbox's lease (one worker at a time), signs in (the mailbox's own
password, or as the mail server does: its password or its OAuth2 token), reads what arrived
since the cursor, turns the reports in it into delivery events and applies them
(``services.delivery_events``), then stores the cursor. Applying commits before the cursor
moves: a crash in between reads the same mail again, and the events are recognised as
duplicates. A failure is stored on the mailbox (shown on the settings page) and the cursor
stays where it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from visitmail.domain.bounce_mailbox import (
    FIRST_LOOK_DAYS,
    BounceMailbox,
    MailboxCursor,
    MailboxFailure,
    MailboxState,
    MailboxStep,
)
from visitmail.domain.delivery_events import DeliveryEvent, events_of_report
from visitmail.domain.delivery_reports import read_report
from visitmail.domain.errors import InvalidInput, NotFound, VisitmailError
from visitmail.domain.identity import Principal
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.roles import Role
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings
from visitmail.services import smtp_config
from visitmail.services.bounce_mailbox_ports import (
    BounceUnitOfWork,
    MailboxLogin,
    MailboxReader,
    ReadBatch,
    StoredBounceMailbox,
)
from visitmail.services.delivery_events import apply_events
from visitmail.services.identity import require_role
from visitmail.services.oauth_tokens import AccessTokenSource
from visitmail.services.ports import SecretSealer
from visitmail.services.secret_rotation import (
    RotationResult,
    SealedKind,
    SealedValue,
    rotate_sealed,
)

ROLE = Role.ADMIN
PASSWORD_FIELD = "bounce_mailbox.password"  # noqa: S105 (the sealed field's name)
POLL_LEASE = timedelta(minutes=5)
MAX_PASSWORD = 1000


class Keep:
    """``password=KEEP``: leave the stored password as it is."""


KEEP = Keep()


@dataclass(frozen=True, slots=True)
class BounceMailboxView:
    settings: BounceMailbox
    password_set: bool
    state: MailboxState


@dataclass(frozen=True, slots=True)
class PollResult:
    looked_at: int
    reports: int
    applied: int
    suppressed: tuple[str, ...]
    error: str | None = None


def _not_configured() -> NotFound:
    return NotFound("no bounce mailbox is set up", field="bounce_mailbox")


async def get_mailbox(uow: BounceUnitOfWork, actor: Principal) -> BounceMailboxView:
    """The organization's bounce mailbox (admin only); ``NotFound`` if none."""
    require_role(actor, ROLE)
    stored = await uow.bounce_mailboxes.get(actor.organization_id)
    if stored is None:
        raise _not_configured()
    return BounceMailboxView(stored.settings, stored.password_sealed is not None, stored.state)


def _checked_password(value: str) -> str:
    if not value or len(value) > MAX_PASSWORD:
        raise InvalidInput(f"must be 1 to {MAX_PASSWORD} characters", field="password")
    if any(c in value for c in "\r\n\x00"):
        raise InvalidInput("must not contain line breaks", field="password")
    return value


async def put_mailbox(
    uow: BounceUnitOfWork,
    box: SecretSealer,
    actor: Principal,
    settings: BounceMailbox,
    *,
    password: str | Keep | None,
    now: datetime,
) -> BounceMailboxView:
    """Store the settings (admin only) and commit. With the mailbox's own ``username`` a
    password is required (``KEEP`` keeps the stored one); without one the mailbox signs in
    as the mail server does, which must then be set up. Raises :class:`InvalidInput`
    naming the field."""
    require_role(actor, ROLE)
    org = actor.organization_id
    smtp = await uow.smtp_settings.get(org)
    stored = await uow.bounce_mailboxes.get(org)
    sealed: str | None = None
    if settings.username is None:
        if isinstance(password, str) and password:
            raise InvalidInput(
                "is only used with the mailbox's own username: leave it empty to sign in "
                "as the mail server does",
                field="password",
            )
        if smtp is None:
            raise InvalidInput(
                "set up the mail server first, or give the mailbox's own username",
                field="username",
            )
        if not smtp.settings.username:
            raise InvalidInput(
                "the mail server signs in without a username: give the mailbox's own",
                field="username",
            )
    elif isinstance(password, Keep) or password is None:
        sealed = stored.password_sealed if stored is not None else None
        if sealed is None:
            raise InvalidInput("is required with the mailbox's own username", field="password")
    else:
        sealed = box.seal(_checked_password(password), organization_id=org, field=PASSWORD_FIELD)
    await uow.bounce_mailboxes.put(org, settings, sealed, now)
    fields = ["host", "port", "security", "username", "folder", "enabled"]
    if isinstance(password, str):
        fields.append("password")
    await uow.audit.record(
        org,
        actor_id=actor.user.id,
        action="bounce_mailbox.put",
        target="bounce_mailbox",
        fields=fields,
        now=now,
    )
    await uow.commit()
    return await get_mailbox(uow, actor)


async def delete_mailbox(uow: BounceUnitOfWork, actor: Principal, *, now: datetime) -> None:
    """Stop reading bounces (admin only); ``NotFound`` if none was set up."""
    require_role(actor, ROLE)
    if not await uow.bounce_mailboxes.delete(actor.organization_id):
        raise _not_configured()
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="bounce_mailbox.delete",
        target="bounce_mailbox",
        fields=[],
        now=now,
    )
    await uow.commit()


async def login_for(
    organization_id: UUID,
    mailbox: BounceMailbox,
    password_sealed: str | None,
    smtp: SmtpSettings,
    secrets: SmtpSecrets,
    box: SecretSealer,
    tokens: AccessTokenSource | None,
) -> MailboxLogin:
    """The sign-in a poll uses (see the module docstring)."""
    if mailbox.username is not None:
        assert password_sealed is not None  # put_mailbox guarantees it
        password = box.open(password_sealed, organization_id=organization_id, field=PASSWORD_FIELD)
        return MailboxLogin(mailbox.username, password=password)
    username = smtp.username or smtp.sender_email
    if smtp.uses_oauth:
        if tokens is None:
            raise InvalidInput("OAuth2 sign-in is not available here", field="bounce_mailbox")
        token = await tokens.access_token(organization_id, username)
        return MailboxLogin(username, access_token=token.token)
    return MailboxLogin(username, password=secrets.password)


def _explained(exc: VisitmailError) -> str:
    """What failed and how to fix it, as stored and shown: the mailbox's failures, the OAuth
    token's and the mail server settings' carry a ``fix``."""
    fix = getattr(exc, "fix", None)
    return f"{exc.message} {fix}" if fix else exc.message


async def _read(
    organization_id: UUID,
    stored: StoredBounceMailbox,
    smtp: SmtpSettings,
    secrets: SmtpSecrets,
    box: SecretSealer,
    tokens: AccessTokenSource | None,
    reader: MailboxReader,
    *,
    policy: NetworkPolicy,
    cursor: MailboxCursor | None,
    now: datetime,
) -> ReadBatch:
    """Sign in and read. An OAuth2 token the server refuses at login is refreshed once and
    tried again (revoked on the provider's side, as after a password change), like SMTP."""
    login = await login_for(
        organization_id, stored.settings, stored.password_sealed, smtp, secrets, box, tokens
    )
    try:
        return await reader(
            stored.settings, smtp, secrets, login, policy=policy, cursor=cursor, now=now
        )
    except VisitmailError as exc:
        refused = isinstance(exc, MailboxFailure) and exc.step is MailboxStep.LOGIN
        if not refused or login.access_token is None or tokens is None:
            raise
        fresh = await tokens.access_token(
            organization_id, login.username, rejected=login.access_token
        )
        retry = MailboxLogin(login.username, access_token=fresh.token)
        return await reader(
            stored.settings, smtp, secrets, retry, policy=policy, cursor=cursor, now=now
        )


def events_of_batch(batch: ReadBatch, now: datetime) -> tuple[int, list[DeliveryEvent]]:
    """``(reports found, their events)``; each mail is named ``<uidvalidity>:<uid>``."""
    reports, events = 0, []
    for mail in batch.mails:
        report = read_report(mail.raw)
        if report is None:
            continue
        reports += 1
        ref = f"imap:{batch.cursor.uidvalidity}:{mail.uid}"
        events += events_of_report(report, source_ref=ref, received_at=now)
    return reports, events


async def poll_once(
    uow_factory: Callable[[], BounceUnitOfWork],
    box: SecretSealer,
    organization_id: UUID,
    *,
    reader: MailboxReader,
    policy: NetworkPolicy,
    tokens: AccessTokenSource | None,
    clock: Callable[[], datetime],
) -> PollResult | None:
    """One poll of the organization's mailbox; ``None`` if another worker holds its lease
    or it is gone. Never raises for the mailbox's behaviour: the error is stored."""
    now = clock()
    async with uow_factory() as uow:
        if not await uow.bounce_mailboxes.claim(organization_id, now, now + POLL_LEASE):
            return None
        await uow.commit()
    cursor: MailboxCursor | None = None
    try:
        async with uow_factory() as uow:
            stored = await uow.bounce_mailboxes.get(organization_id)
            if stored is None:
                return None
            smtp, secrets = await smtp_config.load_for_sending(uow, box, organization_id)
        batch = await _read(
            organization_id,
            stored,
            smtp,
            secrets,
            box,
            tokens,
            reader,
            policy=policy,
            cursor=stored.state.cursor,
            now=now,
        )
        reports, events = events_of_batch(batch, now)
        async with uow_factory() as uow:
            applied = await apply_events(uow, organization_id, events, now=now)
        cursor = batch.cursor
        result = PollResult(batch.looked_at, reports, applied.applied, applied.suppressed)
    except VisitmailError as exc:
        result = PollResult(0, 0, 0, (), error=_explained(exc)[:1000])
    async with uow_factory() as uow:
        await uow.bounce_mailboxes.finish(
            organization_id,
            cursor=cursor,
            polled_at=clock(),
            error=result.error,
            found=result.reports,
        )
        await uow.commit()
    return result


PollFunction = Callable[[UUID], Awaitable[PollResult | None]]


@dataclass(frozen=True, slots=True)
class MailboxTest:
    """What a test of the stored settings found: it signed in and opened the folder
    (``ok``), or the ``error`` with its fix. Nothing is applied and the cursor stays."""

    ok: bool
    messages_in_folder: int = 0
    reports_seen: int = 0
    looked_back_days: int = 0
    error: str | None = None
    step: str | None = None


async def test_mailbox(
    uow: BounceUnitOfWork,
    box: SecretSealer,
    actor: Principal,
    *,
    reader: MailboxReader,
    policy: NetworkPolicy,
    tokens: AccessTokenSource | None,
    now: datetime,
) -> MailboxTest:
    """Sign in with the stored settings, open the folder and count the reports of the last
    days (admin only; ``NotFound`` if nothing is set up)."""
    require_role(actor, ROLE)
    org = actor.organization_id
    stored = await uow.bounce_mailboxes.get(org)
    if stored is None:
        raise _not_configured()
    try:
        smtp, secrets = await smtp_config.load_for_sending(uow, box, org)
        batch = await _read(
            org, stored, smtp, secrets, box, tokens, reader, policy=policy, cursor=None, now=now
        )
    except VisitmailError as exc:
        step = exc.step.value if isinstance(exc, MailboxFailure) else None
        return MailboxTest(ok=False, error=_explained(exc), step=step)
    reports, _events = events_of_batch(batch, now)
    return MailboxTest(
        ok=True,
        messages_in_folder=batch.messages_in_folder,
        reports_seen=reports,
        looked_back_days=FIRST_LOOK_DAYS,
    )


ACTION_ROTATE = "bounce_mailbox.rotate_keys"


async def rotate_keys(
    uow_factory: Callable[[], BounceUnitOfWork], box: SecretSealer
) -> RotationResult:
    """Re-seal every bounce-mailbox password not under the newest key (``visitmail keys
    rotate``); see :mod:`visitmail.services.secret_rotation`."""

    async def sealed(uow: BounceUnitOfWork, org: UUID) -> list[SealedValue[str]]:
        token = await uow.bounce_mailboxes.sealed_passwords(org)
        return [] if token is None else [SealedValue("password", token, PASSWORD_FIELD, "password")]

    async def replace(uow: BounceUnitOfWork, org: UUID, _key: str, old: str, new: str) -> bool:
        return await uow.bounce_mailboxes.swap_password(org, old, new)

    kind: SealedKind[BounceUnitOfWork, str] = SealedKind(
        organizations=lambda uow: uow.bounce_mailboxes.organizations_with_password(),
        sealed=sealed,
        replace=replace,
        audit_action=ACTION_ROTATE,
        audit_target="bounce_mailbox",
    )
    return await rotate_sealed(uow_factory, box, kind)
