"""Use cases for an organization's SMTP settings: read, replace, test, auto-detect, audit,
and the operator's key rotation.

Secrets are write-only. A replace (``put_settings``) takes the non-secret settings whole and
the secrets as *changes*: a secret absent from ``secret_changes`` keeps its stored value,
``None`` or ``""`` clears it, any other value replaces it. Secrets are sealed with the
:class:`SecretSealer` (bound to organization and field) before they reach the repository,
and leave it only through :func:`load_for_sending` and the connection test.

Raises :class:`InvalidInput` naming the field, :class:`PermissionDenied` for non-admins,
:class:`NotFound` (code ``not_configured``) before the first save. Messages never contain a
secret, nor its length.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from visitmail.domain.addresses import normalize_email
from visitmail.domain.diagnosis import (
    AutodetectCandidate,
    AutodetectReport,
    DiagnosisReport,
    Step,
)
from visitmail.domain.errors import InvalidInput, NotFound, VisitmailError
from visitmail.domain.identity import Principal
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.oauth_tokens import OAuthCredentials, OAuthTokenFailed, TokenCheck
from visitmail.domain.roles import Role
from visitmail.domain.sender_domain import DomainReport
from visitmail.domain.smtp_presets import PRESETS, SmtpPreset, find_preset
from visitmail.domain.smtp_settings import (
    UNENCRYPTED_WARNING,
    AuthMethod,
    Security,
    SmtpSecrets,
    SmtpSettings,
    validate,
)
from visitmail.services.clock import Clock, utcnow
from visitmail.services.identity import require_role
from visitmail.services.oauth_tokens import TokenService
from visitmail.services.ports import (
    SMTP_CONNECTION_SECRETS,
    AuditEntry,
    SecretSealer,
    SmtpSecretField,
    StoredSmtpSettings,
    UnitOfWork,
)
from visitmail.services.secret_rotation import (
    RotationResult,
    SealedKind,
    SealedValue,
    rotate_sealed,
)
from visitmail.services.sender_domain import (
    DnsResolver,
    DomainCheckUnitOfWork,
    OrganizationalDomain,
    check_domain,
    last_two_labels,
    own_selectors,
    sender_domain,
)
from visitmail.services.smtp_ports import SmtpDiagnoser

AUDIT_TARGET = "smtp_settings"
ACTION_CREATE = "smtp_settings.create"
ACTION_UPDATE = "smtp_settings.update"
ACTION_ROTATE = "smtp_settings.rotate_keys"
# A connection test of the stored settings passed (services/setup_checklist.py reads it).
ACTION_TEST_PASSED = "smtp_settings.test_passed"
MAX_PASSWORD_LENGTH = 1024
MAX_KEY_PEM_LENGTH = 100_000
MAX_OAUTH_TOKEN_LENGTH = 8192  # Microsoft refresh tokens run to a few kB
MAX_SERVICE_ACCOUNT_KEY_LENGTH = 20_000
#: OAuth secrets that are refused when their destination changed (like a password); the
#: tokens are dropped instead (a new sign-in or fetch replaces them).
_OAUTH_REENTER = frozenset(
    {
        SmtpSecretField.OAUTH_CLIENT_SECRET,
        SmtpSecretField.OAUTH_PRIVATE_KEY,
        SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY,
    }
)
REDACTED = "[redacted]"

SecretChanges = Mapping[SmtpSecretField, str | None]


@dataclass(frozen=True, slots=True)
class SmtpSettingsView:
    """What an admin may see: the settings, *whether* each secret is set, and warnings."""

    settings: SmtpSettings
    secrets_set: frozenset[SmtpSecretField]
    warnings: list[str]
    updated_at: datetime
    updated_by: UUID | None

    def is_set(self, secret: SmtpSecretField) -> bool:
        return secret in self.secrets_set


def _not_configured() -> NotFound:
    return NotFound("no SMTP settings have been saved yet", code="not_configured")


# --- secrets -------------------------------------------------------------------------------


def check_secret(secret: SmtpSecretField, value: str | None) -> str | None:
    """A usable secret, ``None`` for "clear", or :class:`InvalidInput` naming the field.
    Passwords go on the wire: CR, LF and NUL are refused. The client key is PEM text."""
    if value is None or value == "":
        return None
    if secret is SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY:
        return check_service_account_key(value)
    if secret in (SmtpSecretField.CLIENT_KEY, SmtpSecretField.OAUTH_PRIVATE_KEY):
        if "\x00" in value:
            raise InvalidInput("must not contain NUL characters", field=secret.value)
        if len(value) > MAX_KEY_PEM_LENGTH:
            raise InvalidInput("is too large (at most 100 kB)", field=secret.value)
        if "-----BEGIN" not in value or "PRIVATE KEY-----" not in value:
            raise InvalidInput(
                "must be a PEM private key (-----BEGIN ... PRIVATE KEY-----)", field=secret.value
            )
        return value.strip() + "\n"
    if any(ch in value for ch in ("\r", "\n", "\x00")):
        raise InvalidInput("must not contain line breaks or NUL characters", field=secret.value)
    limit = MAX_OAUTH_TOKEN_LENGTH if secret.is_oauth else MAX_PASSWORD_LENGTH
    if len(value) > limit:
        raise InvalidInput(f"must be at most {limit} characters", field=secret.value)
    return value


def check_service_account_key(value: str) -> str:
    """A Google service-account JSON key (``type``, ``client_email``, ``private_key``)."""
    name = SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY.value
    if len(value) > MAX_SERVICE_ACCOUNT_KEY_LENGTH:
        raise InvalidInput("is too large (at most 20 kB)", field=name)
    try:
        key = json.loads(value)
    except ValueError:
        raise InvalidInput("must be the service account's JSON key file", field=name) from None
    if (
        not isinstance(key, dict)
        or key.get("type") != "service_account"
        or not isinstance(key.get("client_email"), str)
        or "PRIVATE KEY-----" not in str(key.get("private_key", ""))
    ):
        raise InvalidInput(
            "must be a service account JSON key (type service_account, with client_email "
            "and private_key)",
            field=name,
        )
    return value.strip()


def _secret_allowed(secret: SmtpSecretField, settings: SmtpSettings) -> str | None:
    """``None`` if ``settings`` can use ``secret``; else the field the secret needs."""
    if secret.is_oauth:
        if settings.oauth is None:
            return "auth_method"
        if secret is SmtpSecretField.OAUTH_ACCESS_TOKEN:
            return None
        usable = {s.value for s in settings.oauth.usable_secrets()}
        return None if secret.value in usable else "oauth.provider"
    if secret is SmtpSecretField.PASSWORD:
        if settings.auth_method is AuthMethod.OAUTH2:
            return "auth_method"  # XOAUTH2 sends a token, never the password
        return None if settings.username else "username"
    if secret is SmtpSecretField.PROXY_PASSWORD:
        return None if settings.proxy.enabled and settings.proxy.username else "proxy.username"
    return None if settings.tls.client_cert_pem else "tls.client_cert_pem"


def _plan_secrets(
    settings: SmtpSettings,
    stored: frozenset[SmtpSecretField],
    changes: SecretChanges,
    saved_for: SmtpSettings | None = None,
) -> tuple[dict[SmtpSecretField, str | None], frozenset[SmtpSecretField]]:
    """Which secret columns change (plaintext or ``None``) and which secrets end up set.

    A secret given explicitly that the settings cannot use is refused, naming what it needs
    (a password without a username names ``username``). A *kept* secret the new settings
    cannot use any more is cleared: a stale password is not left behind. A kept secret
    whose destination changed (``saved_for``, the stored settings, differs in host, port or
    username — or the proxy's — see :func:`_may_reuse`) is refused naming the secret: it
    must be entered again, so a changed host never receives the old password.
    """
    plan: dict[SmtpSecretField, str | None] = {}
    present: set[SmtpSecretField] = set()
    for secret in SmtpSecretField:
        if secret is SmtpSecretField.OAUTH_ACCESS_TOKEN:
            continue  # the token service's cache: see put_settings
        if secret in changes:
            value = check_secret(secret, changes[secret])
            if value is not None:
                needs = _secret_allowed(secret, settings)
                if needs == "oauth.provider" and settings.oauth is not None:
                    raise InvalidInput(
                        f"is not used by {settings.oauth.provider.value}", field=secret.value
                    )
                if needs is not None:
                    raise InvalidInput(f"is required when {secret.value} is set", field=needs)
                plan[secret] = value
                present.add(secret)
            elif secret in stored:
                plan[secret] = None
        elif secret in stored:
            if _secret_allowed(secret, settings) is not None:
                plan[secret] = None
            elif saved_for is not None and not _may_reuse(secret, saved_for, settings):
                if secret is SmtpSecretField.OAUTH_REFRESH_TOKEN:
                    plan[secret] = None  # a sign-in for another app or mailbox: dropped
                    continue
                raise InvalidInput(_REENTER[secret], field=secret.value)
            else:
                present.add(secret)
    if settings.tls.client_cert_pem and SmtpSecretField.CLIENT_KEY not in present:
        raise InvalidInput(
            "is required with a client certificate", field=SmtpSecretField.CLIENT_KEY.value
        )
    if settings.oauth is not None:
        for needed in sorted(settings.oauth.required_secrets()):
            if SmtpSecretField(needed.value) not in present:
                raise InvalidInput(_REQUIRED_OAUTH[needed.value], field=needed.value)
    return plan, frozenset(present)


_REQUIRED_OAUTH = {
    "oauth.client_secret": "is required for this provider (the app's client secret)",
    "oauth.private_key_pem": "is required with a client certificate (the certificate's "
    "private key, PEM)",
    "oauth.service_account_key": "is required for a service account (its JSON key file)",
}


def _open_all(
    box: SecretSealer, organization_id: UUID, sealed: Mapping[SmtpSecretField, str]
) -> dict[SmtpSecretField, str]:
    return {
        secret: box.open(token, organization_id=organization_id, field=secret.sealed_as)
        for secret, token in sealed.items()
        if secret in SMTP_CONNECTION_SECRETS  # OAuth secrets only reach the token service
    }


def _secrets_value(plain: Mapping[SmtpSecretField, str]) -> SmtpSecrets:
    return SmtpSecrets(
        password=plain.get(SmtpSecretField.PASSWORD),
        proxy_password=plain.get(SmtpSecretField.PROXY_PASSWORD),
        client_key_pem=plain.get(SmtpSecretField.CLIENT_KEY),
    )


# --- settings ------------------------------------------------------------------------------


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(_flatten(item, name + "."))
        else:
            flat[name] = item
    return flat


def changed_fields(before: SmtpSettings | None, after: SmtpSettings) -> list[str]:
    """Dotted names of the settings that differ (all the set ones for a first save)."""
    new = _flatten(dataclasses.asdict(after))
    if before is None:
        return [k for k, v in new.items() if v is not None]
    old = _flatten(dataclasses.asdict(before))
    return [k for k, v in new.items() if old.get(k) != v]


def settings_warnings(settings: SmtpSettings, secrets_set: frozenset[SmtpSecretField]) -> list[str]:
    warnings: list[str] = []
    sender = settings.sender_domain_warning()
    if sender:
        warnings.append(sender)
    if settings.security is Security.NONE:
        warnings.append(UNENCRYPTED_WARNING)
    if settings.oauth is not None:
        if (
            settings.oauth.uses_refresh_token
            and SmtpSecretField.OAUTH_REFRESH_TOKEN not in secrets_set
        ):
            warnings.append(
                "OAuth2 is chosen but the mailbox is not connected yet: sign in with the "
                "mailbox (Connect) or store a refresh token, then run the connection test."
            )
    elif settings.username and SmtpSecretField.PASSWORD not in secrets_set:
        warnings.append("A username is set but no password: enter the password.")
    return warnings


def _check_preset(settings: SmtpSettings) -> None:
    if settings.preset is not None and find_preset(settings.preset) is None:
        raise InvalidInput("is not a known preset", field="preset")


def _view(stored: StoredSmtpSettings) -> SmtpSettingsView:
    secrets_set = frozenset(stored.sealed)
    return SmtpSettingsView(
        settings=stored.settings,
        secrets_set=secrets_set,
        warnings=settings_warnings(stored.settings, secrets_set),
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


async def get_settings(uow: UnitOfWork, principal: Principal) -> SmtpSettingsView:
    """The organization's settings (admin only); ``NotFound`` ``not_configured`` if none."""
    require_role(principal, Role.ADMIN)
    stored = await uow.smtp_settings.get(principal.organization_id)
    if stored is None:
        raise _not_configured()
    return _view(stored)


async def put_settings(
    uow: UnitOfWork,
    box: SecretSealer,
    principal: Principal,
    settings: SmtpSettings,
    secret_changes: SecretChanges,
    *,
    allow_plaintext_auth: bool = False,
    clock: Clock = utcnow,
    policy: NetworkPolicy | None = None,
) -> SmtpSettingsView:
    """Replace the organization's settings (admin only); see the module doc for secrets.

    Everything is checked before anything is written; one audit entry lists the changed
    field names (never values). A save that changes nothing writes nothing. A save that
    changes something drops the cached OAuth access token (the next connection fetches
    one with the new settings). ``policy`` judges an OAuth token URL's address.
    """
    require_role(principal, Role.ADMIN)
    clean = validate(settings, policy)
    _check_preset(clean)
    org = principal.organization_id
    stored = await uow.smtp_settings.get(org, for_update=True)
    plan, present = _plan_secrets(
        clean,
        frozenset(stored.sealed) if stored else frozenset(),
        secret_changes,
        stored.settings if stored else None,
    )
    if (
        clean.security is Security.NONE
        and SmtpSecretField.PASSWORD in present
        and not allow_plaintext_auth
    ):
        raise InvalidInput(
            "would send the password unencrypted: choose starttls or tls (the operator can "
            "allow plain-text passwords with VISITMAIL_ALLOW_PLAINTEXT_AUTH)",
            field="security",
        )
    if clean.security is Security.NONE and clean.oauth is not None and not allow_plaintext_auth:
        raise InvalidInput(
            "would send the OAuth token unencrypted: choose starttls or tls",
            field="security",
        )
    changed = changed_fields(stored.settings if stored else None, clean)
    changed += [secret.value for secret in plan]
    if stored is not None and not changed:
        return _view(stored)
    if stored is not None and SmtpSecretField.OAUTH_ACCESS_TOKEN in stored.sealed:
        plan[SmtpSecretField.OAUTH_ACCESS_TOKEN] = None
    sealed = {
        secret: (
            box.seal(value, organization_id=org, field=secret.sealed_as)
            if value is not None
            else None
        )
        for secret, value in plan.items()
    }
    now = clock()
    await uow.smtp_settings.save(org, clean, sealed=sealed, actor_id=principal.user.id, now=now)
    # A paused queue is probed at once with the new settings, not at its next probe time.
    await uow.health.schedule_probe(org, now)
    await uow.audit.record(
        org,
        actor_id=principal.user.id,
        action=ACTION_CREATE if stored is None else ACTION_UPDATE,
        target=AUDIT_TARGET,
        fields=changed,
        now=now,
    )
    await uow.commit()
    return SmtpSettingsView(
        settings=clean,
        secrets_set=present,
        warnings=settings_warnings(clean, present),
        updated_at=now,
        updated_by=principal.user.id,
    )


async def store_refresh_token(
    uow: UnitOfWork,
    box: SecretSealer,
    principal: Principal,
    refresh_token: str,
    *,
    clock: Clock = utcnow,
) -> SmtpSettingsView:
    """Store a refresh token for the OAuth2 mailbox (admin only; delegated kinds and generic
    with the refresh-token grant). Drops the cached access token and probes a paused queue
    at once. ``NotFound`` before the first save; :class:`InvalidInput` naming the field."""
    require_role(principal, Role.ADMIN)
    org = principal.organization_id
    stored = await uow.smtp_settings.get(org, for_update=True)
    if stored is None:
        raise _not_configured()
    oauth = stored.settings.oauth
    if oauth is None:
        raise InvalidInput("is not oauth2: choose an OAuth provider first", field="auth_method")
    if not oauth.uses_refresh_token:
        raise InvalidInput(
            f"{oauth.provider.value} does not use a refresh token", field="oauth.provider"
        )
    field = SmtpSecretField.OAUTH_REFRESH_TOKEN
    value = check_secret(field, refresh_token)
    if value is None:
        raise InvalidInput("is required", field=field.value)
    now = clock()
    sealed: dict[SmtpSecretField, str | None] = {
        field: box.seal(value, organization_id=org, field=field.sealed_as),
        SmtpSecretField.OAUTH_ACCESS_TOKEN: None,
    }
    await uow.smtp_settings.save(
        org, stored.settings, sealed=sealed, actor_id=principal.user.id, now=now
    )
    await uow.health.schedule_probe(org, now)
    await uow.audit.record(
        org,
        actor_id=principal.user.id,
        action=ACTION_UPDATE,
        target=AUDIT_TARGET,
        fields=[field.value],
        now=now,
    )
    await uow.commit()
    present = (frozenset(stored.sealed) - {SmtpSecretField.OAUTH_ACCESS_TOKEN}) | {field}
    return SmtpSettingsView(
        settings=stored.settings,
        secrets_set=present,
        warnings=settings_warnings(stored.settings, present),
        updated_at=now,
        updated_by=principal.user.id,
    )


async def load_for_sending(
    uow: UnitOfWork, box: SecretSealer, organization_id: UUID
) -> tuple[SmtpSettings, SmtpSecrets]:
    """The stored settings and their decrypted secrets, for a connection (no role check:
    the caller is the delivery engine or an already authorized use case)."""
    stored = await uow.smtp_settings.get(organization_id)
    if stored is None:
        raise _not_configured()
    return stored.settings, _secrets_value(_open_all(box, organization_id, stored.sealed))


# --- connection test and auto-detect -------------------------------------------------------


def _may_reuse(secret: SmtpSecretField, stored: SmtpSettings, candidate: SmtpSettings) -> bool:
    """A stored secret is only handed to the same server (and account) it was saved for, so
    testing inline settings cannot send it to a host of the caller's choosing. An OAuth
    secret: to the same provider, tenant, client and token endpoint (and a refresh token
    or cached access token only for the same mailbox)."""
    if secret.is_oauth:
        if stored.oauth is None or candidate.oauth is None:
            return False
        same = stored.oauth.destination() == candidate.oauth.destination()
        if secret in _OAUTH_REENTER:
            return same
        return same and stored.username == candidate.username
    if secret is SmtpSecretField.PASSWORD:
        return (
            candidate.host == stored.host
            and candidate.port == stored.port
            and candidate.username == stored.username
        )
    if secret is SmtpSecretField.PROXY_PASSWORD:
        return (
            candidate.proxy.enabled
            and candidate.proxy.kind == stored.proxy.kind
            and candidate.proxy.host == stored.proxy.host
            and candidate.proxy.port == stored.proxy.port
            and candidate.proxy.username == stored.proxy.username
        )
    return candidate.tls.client_cert_pem == stored.tls.client_cert_pem


_REENTER = {
    SmtpSecretField.PASSWORD: "enter the password again: the host, port or username changed, "
    "and a saved password is only sent to the server it was saved for",
    SmtpSecretField.PROXY_PASSWORD: "enter the proxy password again: the proxy's host, port "
    "or username changed, and a saved password is only sent to the proxy it was saved for",
    SmtpSecretField.CLIENT_KEY: "enter the client key again: the client certificate changed",
    SmtpSecretField.OAUTH_CLIENT_SECRET: "enter the client secret again: the provider, tenant, "
    "client id or token URL changed, and a saved secret is only sent where it was saved for",
    SmtpSecretField.OAUTH_PRIVATE_KEY: "enter the private key again: the provider, tenant, "
    "client id or token URL changed",
    SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY: "enter the service account key again: the "
    "OAuth provider changed",
}

_NOT_REUSED = {
    SmtpSecretField.PASSWORD: "The saved password was not used because the host, port or username "
    "differs from the saved settings: enter the password to test with it.",
    SmtpSecretField.PROXY_PASSWORD: "The saved proxy password was not used because the proxy "
    "differs from the saved settings: enter it to test with it.",
    SmtpSecretField.CLIENT_KEY: "The saved client key was not used because the client "
    "certificate differs from the saved one: enter the key to test with it.",
}


@dataclass(frozen=True, slots=True)
class _OAuthPlan:
    """How the connection test gets its token: through the token service with the stored
    credentials (cache, lock, rotation saved), or directly with inline ones."""

    use_stored: bool
    credentials: OAuthCredentials = field(default_factory=OAuthCredentials)


_OAUTH_INPUTS = (
    SmtpSecretField.OAUTH_CLIENT_SECRET,
    SmtpSecretField.OAUTH_PRIVATE_KEY,
    SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY,
    SmtpSecretField.OAUTH_REFRESH_TOKEN,
)


def _oauth_plan(
    box: SecretSealer,
    organization_id: UUID,
    stored: StoredSmtpSettings | None,
    settings: SmtpSettings,
    inline: SmtpSettings | None,
    inline_secrets: SecretChanges,
) -> _OAuthPlan | None:
    if settings.oauth is None:
        return None
    given = {s: check_secret(s, inline_secrets[s]) for s in _OAUTH_INPUTS if s in inline_secrets}
    same = stored is not None and (
        inline is None or _may_reuse(SmtpSecretField.OAUTH_REFRESH_TOKEN, stored.settings, settings)
    )
    if same and not given:
        return _OAuthPlan(use_stored=True)
    plain: dict[SmtpSecretField, str] = {}
    for secret in _OAUTH_INPUTS:
        value = given.get(secret)
        if value is not None:
            plain[secret] = value
        elif (
            secret not in given
            # a stored refresh token is only spent through the token service, which saves
            # the rotated one; a direct fetch would lose it
            and secret is not SmtpSecretField.OAUTH_REFRESH_TOKEN
            and stored is not None
            and secret in stored.sealed
            and _may_reuse(secret, stored.settings, settings)
        ):
            plain[secret] = box.open(
                stored.sealed[secret], organization_id=organization_id, field=secret.sealed_as
            )
    return _OAuthPlan(
        use_stored=False,
        credentials=OAuthCredentials(
            client_secret=plain.get(SmtpSecretField.OAUTH_CLIENT_SECRET),
            private_key_pem=plain.get(SmtpSecretField.OAUTH_PRIVATE_KEY),
            service_account_key=plain.get(SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY),
            refresh_token=plain.get(SmtpSecretField.OAUTH_REFRESH_TOKEN),
        ),
    )


async def _token_check(
    tokens: TokenService | None,
    organization_id: UUID,
    settings: SmtpSettings,
    plan: _OAuthPlan | None,
) -> TokenCheck | None:
    """The connection test's token step (``None`` for settings without OAuth2)."""
    if plan is None or settings.oauth is None:
        return None
    if tokens is None:
        return TokenCheck(
            None,
            OAuthTokenFailed(
                "OAuth2 tokens cannot be fetched here.",
                fix="Run the test from the web UI, the API or `visitmail smtp test`.",
            ),
        )
    assert settings.username is not None  # validate() requires the mailbox
    started = time.monotonic()
    try:
        if plan.use_stored:
            token = await tokens.access_token(organization_id, settings.username)
        else:
            token = await tokens.fetch_for_test(
                settings.oauth, plan.credentials, mailbox=settings.username
            )
    except OAuthTokenFailed as e:
        return TokenCheck(None, e, int((time.monotonic() - started) * 1000))
    except VisitmailError as e:  # a sealed secret no master key opens
        failure = OAuthTokenFailed(e.message, fix="Enter the OAuth secrets again.")
        return TokenCheck(None, failure, int((time.monotonic() - started) * 1000))
    return TokenCheck(token, None, int((time.monotonic() - started) * 1000))


async def _candidate(
    uow: UnitOfWork,
    box: SecretSealer,
    organization_id: UUID,
    inline: SmtpSettings | None,
    inline_secrets: SecretChanges,
    policy: NetworkPolicy | None = None,
) -> tuple[SmtpSettings, SmtpSecrets, list[str], _OAuthPlan | None]:
    """The settings to test: inline ones (validated, not saved) or the stored ones, with
    inline secrets first and stored ones where allowed. Ends the read transaction."""
    stored = await uow.smtp_settings.get(organization_id)
    if inline is not None:
        settings = validate(inline, policy)
    elif stored is not None:
        settings = stored.settings
    else:
        raise _not_configured()
    notes: list[str] = []
    plain: dict[SmtpSecretField, str] = {}
    for secret in SMTP_CONNECTION_SECRETS:
        if secret in inline_secrets:
            value = check_secret(secret, inline_secrets[secret])
            if value is not None:
                plain[secret] = value
        elif stored is not None and secret in stored.sealed:
            if inline is None or _may_reuse(secret, stored.settings, settings):
                plain[secret] = box.open(
                    stored.sealed[secret], organization_id=organization_id, field=secret.sealed_as
                )
            else:
                notes.append(_NOT_REUSED[secret])
    plan = _oauth_plan(box, organization_id, stored, settings, inline, inline_secrets)
    await uow.commit()  # no transaction stays open across SMTP
    return settings, _secrets_value(plain), notes, plan


def _scrubber(secrets: SmtpSecrets, extra: Sequence[str] = ()) -> Callable[[str], str]:
    """Defence in depth: mask secrets should an adapter ever echo one into a report."""
    candidates = (secrets.password, secrets.proxy_password, *extra)
    values = [v for v in candidates if v and len(v) >= 4]

    def scrub(text: str) -> str:
        for value in values:
            text = text.replace(value, REDACTED)
        return text

    return scrub


def _scrub_step(step: Step, scrub: Callable[[str], str]) -> Step:
    def opt(text: str | None) -> str | None:
        return scrub(text) if text is not None else None

    details: dict[str, str | int | list[str]] = {}
    for key, item in step.details.items():
        if isinstance(item, str):
            details[key] = scrub(item)
        elif isinstance(item, list):
            details[key] = [scrub(x) for x in item]
        else:
            details[key] = item
    return dataclasses.replace(
        step,
        reply_text=opt(step.reply_text),
        explanation=opt(step.explanation),
        fix=opt(step.fix),
        details=details,
    )


def _finish(
    report: DiagnosisReport,
    secrets: SmtpSecrets,
    extra_warnings: Sequence[str],
    extra_secrets: Sequence[str] = (),
    domain: DomainReport | None = None,
) -> DiagnosisReport:
    scrub = _scrubber(secrets, extra_secrets)
    warnings: list[str] = []
    for warning in [*report.warnings, *extra_warnings]:
        cleaned = scrub(warning)
        if cleaned not in warnings:
            warnings.append(cleaned)
    return DiagnosisReport(
        steps=[_scrub_step(s, scrub) for s in report.steps], warnings=warnings, domain=domain
    )


@dataclass(frozen=True, slots=True)
class DomainCheck:
    """How the connection test also checks the sender domain (SPF, DKIM, DMARC)."""

    resolver: DnsResolver
    organizational_domain: OrganizationalDomain = last_two_labels
    selectors: Sequence[str] = ()


async def _with_domain_check(
    run: Awaitable[DiagnosisReport], settings: SmtpSettings, check: DomainCheck | None
) -> tuple[DiagnosisReport, DomainReport | None, list[str]]:
    """The SMTP test and the domain check side by side. The domain check is informative:
    a domain it cannot check becomes a warning, never a failed test."""
    if check is None:
        return await run, None, []
    domain_task = asyncio.ensure_future(
        check_domain(
            check.resolver,
            sender_domain(settings),
            settings=settings,
            selectors=check.selectors,
            organizational_domain=check.organizational_domain,
            # within the test's own bound: the domain check never makes the test slower
            budget_seconds=settings.timeouts.overall,
        )
    )
    try:
        report = await run
    except BaseException:
        domain_task.cancel()
        raise
    try:
        return report, await domain_task, []
    except InvalidInput as exc:
        domain = sender_domain(settings)
        return (
            report,
            None,
            [f"The sender domain {domain} cannot be checked in DNS: it {exc.message}."],
        )


async def _with_own_selector(
    uow: DomainCheckUnitOfWork,
    organization_id: UUID,
    settings: SmtpSettings,
    check: DomainCheck | None,
) -> DomainCheck | None:
    """``check`` with the selector of visitmail's own DKIM key added, when it signs for the
    sender's domain (its record must be published for the check to pass)."""
    if check is None:
        return None
    own = await own_selectors(uow, organization_id, sender_domain(settings))
    extra = tuple(s for s in own if s not in check.selectors)
    return replace(check, selectors=(*check.selectors, *extra)) if extra else check


async def diagnose_settings(
    uow: DomainCheckUnitOfWork,
    box: SecretSealer,
    diagnoser: SmtpDiagnoser,
    principal: Principal,
    *,
    inline: SmtpSettings | None = None,
    inline_secrets: SecretChanges | None = None,
    send_to: str | None = None,
    on_step: Callable[[Step], None] | None = None,
    domain_check: DomainCheck | None = None,
    tokens: TokenService | None = None,
    policy: NetworkPolicy | None = None,
    clock: Clock = utcnow,
) -> DiagnosisReport:
    """Run the connection test (admin only) on the stored settings, or on ``inline``
    settings before they are saved. Inline secrets win; an omitted one is taken from the
    stored settings only if it is meant for the same server (see :func:`_may_reuse`).
    ``on_step`` sees each step (scrubbed like the report) as soon as it is known. With
    ``domain_check`` the sender domain is checked alongside (the report's ``domain``).
    OAuth2: ``tokens`` fetches the access token (stored credentials through the cache and
    the refresh lock; inline ones directly, never spending the stored refresh token)."""
    require_role(principal, Role.ADMIN)
    recipient = normalize_email(send_to, field="send_to") if send_to else None
    org = principal.organization_id
    settings, secrets, notes, plan = await _candidate(
        uow, box, org, inline, inline_secrets or {}, policy
    )
    domain_check = await _with_own_selector(uow, org, settings, domain_check)
    await uow.commit()  # the read above began a transaction: none stays open across SMTP
    check = await _token_check(tokens, org, settings, plan)
    hidden = _hidden(plan, check)
    scrub = _scrubber(secrets, hidden)
    extra: dict[str, Any] = {"oauth_token": check} if check is not None else {}
    if on_step is not None:
        extra["on_step"] = lambda step: on_step(_scrub_step(step, scrub))
    run = diagnoser.diagnose(settings, secrets, send_to=recipient, **extra)
    report, domain, domain_notes = await _with_domain_check(run, settings, domain_check)
    warnings = [*notes, *_test_warnings(settings, secrets, plan), *domain_notes]
    finished = _finish(report, secrets, warnings, hidden, domain)
    if finished.ok:
        await _record_pass(uow, box, org, settings, secrets, principal.user.id, clock())
    return finished


async def _record_pass(
    uow: UnitOfWork,
    box: SecretSealer,
    organization_id: UUID,
    tested: SmtpSettings,
    secrets: SmtpSecrets,
    actor_id: UUID | None,
    now: datetime,
) -> None:
    """Note in the audit log that a test passed, when what was tested is what is stored
    (the same settings and connection secrets): the dashboard's "connected and tested"
    step is ticked until the settings change again. A test of unsaved values records
    nothing (the admin saves, then tests)."""
    stored = await uow.smtp_settings.get(organization_id)
    if stored is None or stored.settings != tested:
        return
    for secret in SMTP_CONNECTION_SECRETS:
        sealed = stored.sealed.get(secret)
        kept = (
            box.open(sealed, organization_id=organization_id, field=secret.sealed_as)
            if sealed is not None
            else None
        )
        if kept != _secret_of(secrets, secret):
            return
    await uow.audit.record(
        organization_id,
        actor_id=actor_id,
        action=ACTION_TEST_PASSED,
        target=AUDIT_TARGET,
        fields=[],
        now=now,
    )
    await uow.commit()


def _hidden(plan: _OAuthPlan | None, check: TokenCheck | None) -> list[str]:
    """The OAuth values the test had in hand, masked in its report should one leak."""
    values: list[str | None] = []
    if plan is not None:
        c = plan.credentials
        values += [c.client_secret, c.refresh_token]
    if check is not None and check.token is not None:
        values.append(check.token.token)
    return [v for v in values if v]


def _test_warnings(
    settings: SmtpSettings, secrets: SmtpSecrets, plan: _OAuthPlan | None
) -> list[str]:
    present = set(s for s in SMTP_CONNECTION_SECRETS if _secret_of(secrets, s))
    if plan is not None and (plan.use_stored or plan.credentials.refresh_token):
        present.add(SmtpSecretField.OAUTH_REFRESH_TOKEN)  # the token step says if it is not
    return settings_warnings(settings, frozenset(present))


def _secret_of(secrets: SmtpSecrets, secret: SmtpSecretField) -> str | None:
    if secret is SmtpSecretField.PASSWORD:
        return secrets.password
    if secret is SmtpSecretField.PROXY_PASSWORD:
        return secrets.proxy_password
    return secrets.client_key_pem


async def diagnose_organization(
    uow: DomainCheckUnitOfWork,
    box: SecretSealer,
    diagnoser: SmtpDiagnoser,
    organization_id: UUID,
    *,
    send_to: str | None = None,
    domain_check: DomainCheck | None = None,
    tokens: TokenService | None = None,
) -> DiagnosisReport:
    """The operator's connection test (``visitmail smtp test``): stored settings, no role
    check. ``NotFound`` (field ``org``) for an unknown organization. ``domain_check``: as
    in :func:`diagnose_settings`."""
    if await uow.organizations.get(organization_id) is None:
        raise NotFound("no such organization", field="org")
    recipient = normalize_email(send_to, field="send_to") if send_to else None
    settings, secrets = await load_for_sending(uow, box, organization_id)
    domain_check = await _with_own_selector(uow, organization_id, settings, domain_check)
    await uow.commit()
    plan = _OAuthPlan(use_stored=True) if settings.oauth is not None else None
    check = await _token_check(tokens, organization_id, settings, plan)
    hidden = _hidden(plan, check)
    extra: dict[str, Any] = {"oauth_token": check} if check is not None else {}
    report, domain, domain_notes = await _with_domain_check(
        diagnoser.diagnose(settings, secrets, send_to=recipient, **extra), settings, domain_check
    )
    warnings = [*_test_warnings(settings, secrets, plan), *domain_notes]
    finished = _finish(report, secrets, warnings, hidden, domain)
    if finished.ok:
        await _record_pass(uow, box, organization_id, settings, secrets, None, utcnow())
    return finished


async def autodetect(
    uow: UnitOfWork,
    box: SecretSealer,
    diagnoser: SmtpDiagnoser,
    principal: Principal,
    *,
    inline: SmtpSettings | None = None,
    inline_secrets: SecretChanges | None = None,
) -> AutodetectReport:
    """Try the usual port x security combinations on the host (admin only) and recommend
    the one that works; same settings and secret rules as :func:`diagnose_settings`."""
    require_role(principal, Role.ADMIN)
    settings, secrets, _notes, _plan = await _candidate(
        uow, box, principal.organization_id, inline, inline_secrets or {}
    )
    found = await diagnoser.autodetect(settings, secrets)
    scrub = _scrubber(secrets)

    def clean(c: AutodetectCandidate) -> AutodetectCandidate:
        return dataclasses.replace(c, summary=scrub(c.summary))

    recommended = clean(found.recommended) if found.recommended else None
    return AutodetectReport(
        candidates=[clean(c) for c in found.candidates],
        recommended=recommended,
        ports=found.ports,
    )


# --- presets, audit, rotation --------------------------------------------------------------


def list_presets(principal: Principal) -> Sequence[SmtpPreset]:
    require_role(principal, Role.ADMIN)
    return PRESETS


async def list_audit(
    uow: UnitOfWork, principal: Principal, *, limit: int = 100
) -> Sequence[AuditEntry]:
    """Who changed which SMTP fields when, newest first (admin only); never values."""
    require_role(principal, Role.ADMIN)
    return await uow.smtp_settings.history(principal.organization_id, limit=limit)


async def rotate_keys(
    uow_factory: Callable[[], UnitOfWork], box: SecretSealer, *, clock: Clock = utcnow
) -> RotationResult:
    """Re-seal every stored SMTP secret (passwords, client key, OAuth2 secrets and tokens)
    not under the newest key; see :mod:`visitmail.services.secret_rotation`."""

    async def sealed(uow: UnitOfWork, org: UUID) -> list[SealedValue[SmtpSecretField]]:
        stored = await uow.smtp_settings.get(org)
        if stored is None:
            return []
        return [
            SealedValue(secret, token, secret.sealed_as, secret.value)
            for secret, token in stored.sealed.items()
        ]

    async def replace_one(
        uow: UnitOfWork, org: UUID, secret: SmtpSecretField, old: str, new: str
    ) -> bool:
        return await uow.smtp_settings.replace_sealed(org, secret, old=old, new=new)

    kind = SealedKind(
        organizations=lambda uow: uow.smtp_settings.organizations_with_secrets(),
        sealed=sealed,
        replace=replace_one,
        audit_action=ACTION_ROTATE,
        audit_target=AUDIT_TARGET,
    )
    return await rotate_sealed(uow_factory, box, kind, clock=clock)
