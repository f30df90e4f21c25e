"""Bodies of the SMTP-settings API. Requests forbid unknown fields and take numbers as JSON
numbers (``"587"`` is a type error, not a port). Secrets are write-only: requests accept
them, responses only say whether they are set (``password_set``), never a value or length.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field

from visitmail.domain.diagnosis import (
    AutodetectCandidate,
    AutodetectReport,
    DiagnosisReport,
    PortAnswer,
    Step,
    StepName,
    StepStatus,
)
from visitmail.domain.oauth import GenericGrant, OAuthProvider, OAuthSettings
from visitmail.domain.smtp_presets import SmtpPreset, preset_host
from visitmail.domain.smtp_settings import (
    DEFAULT_PORTS,
    AuthMethod,
    Limits,
    ProxyKind,
    ProxySettings,
    Security,
    SmtpSettings,
    Timeouts,
    TlsOptions,
)
from visitmail.services.ports import AuditEntry, SmtpSecretField
from visitmail.services.smtp_config import SecretChanges, SmtpSettingsView
from visitmail.web.api.domain_check_schemas import DomainCheckOut
from visitmail.web.api.schemas import Strict

Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Count = Annotated[int, Field(strict=True, ge=1)]
Seconds = Annotated[float, Field(strict=True, gt=0)]
WRITE_ONLY_DOC = 'write-only: omit to keep the stored value, null or "" to clear it'


_TIMEOUTS = Timeouts()
_LIMITS = Limits()


def _secret(max_length: int) -> Any:
    return Field(
        default=None,
        max_length=max_length,
        description=WRITE_ONLY_DOC,
        json_schema_extra={"writeOnly": True},
    )


# --- requests ------------------------------------------------------------------------------


class TimeoutsIn(Strict):
    connect: Seconds = _TIMEOUTS.connect
    command: Seconds = _TIMEOUTS.command
    overall: Seconds = Field(default=_TIMEOUTS.overall, description="bound for the test")


class TlsIn(Strict):
    ca_pem: str | None = Field(default=None, description="trust this CA (PEM) for the server")
    pinned_sha256: str | None = Field(
        default=None, description="SHA-256 fingerprint of the server certificate (hex)"
    )
    client_cert_pem: str | None = None
    client_key_pem: str | None = _secret(100_000)


class ProxyIn(Strict):
    kind: ProxyKind = ProxyKind.NONE
    host: str | None = Field(default=None, max_length=255)
    port: Port | None = None
    username: str | None = Field(default=None, max_length=255)
    password: str | None = _secret(1024)


class LimitsIn(Strict):
    max_connections: Count = _LIMITS.max_connections
    max_messages_per_connection: Count = _LIMITS.max_messages_per_connection
    per_minute: Count | None = None
    per_hour: Count | None = None
    per_day: Count | None = None
    recipients_per_day: Count | None = Field(
        default=None,
        description="recipients per day (a message to 3 recipients counts 3); "
        "Microsoft 365: 10,000",
    )


Scope = Annotated[str, Field(min_length=1, max_length=200)]


class OAuthIn(Strict):
    """OAuth2 for ``auth_method: "oauth2"``; the mailbox is ``username``. Which fields a
    provider needs: see ``provider``. Secrets are write-only like ``password``."""

    provider: OAuthProvider = Field(
        description="microsoft365_delegated | microsoft365_app | google_delegated | "
        "google_service_account | generic"
    )
    client_id: str | None = Field(default=None, max_length=255)
    tenant_id: str | None = Field(
        default=None, max_length=255, description="Microsoft 365: directory (tenant) id"
    )
    token_url: str | None = Field(
        default=None, max_length=2000, description="generic only: the token endpoint (https)"
    )
    scopes: list[Scope] = Field(
        default_factory=list, max_length=20, description="empty: the provider's defaults"
    )
    include_imap: bool = Field(
        default=False, description="delegated: ask for the mailbox-reading scope too"
    )
    grant: GenericGrant = Field(default=GenericGrant.CLIENT_CREDENTIALS, description="generic only")
    client_cert_pem: str | None = Field(
        default=None,
        max_length=100_000,
        description="microsoft365_app: the certificate (PEM) instead of a client secret",
    )
    client_secret: str | None = _secret(8192)
    private_key_pem: str | None = _secret(100_000)
    service_account_key: str | None = _secret(20_000)
    refresh_token: str | None = _secret(8192)

    def to_domain(self) -> OAuthSettings:
        return OAuthSettings(
            provider=self.provider,
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            token_url=self.token_url,
            scopes=tuple(self.scopes),
            include_imap=self.include_imap,
            grant=self.grant,
            client_cert_pem=self.client_cert_pem,
        )


_OAUTH_SECRETS = {
    "client_secret": SmtpSecretField.OAUTH_CLIENT_SECRET,
    "private_key_pem": SmtpSecretField.OAUTH_PRIVATE_KEY,
    "service_account_key": SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY,
    "refresh_token": SmtpSecretField.OAUTH_REFRESH_TOKEN,
}


class RefreshTokenIn(Strict):
    refresh_token: str = Field(
        min_length=1,
        max_length=8192,
        description="a refresh token obtained for the mailbox elsewhere (write-only)",
        json_schema_extra={"writeOnly": True},
    )


class SmtpSettingsIn(Strict):
    """The whole settings; a PUT replaces them (secrets: see ``password``)."""

    host: str = Field(max_length=255)
    port: Port | None = Field(default=None, description="default: 465 tls, 587 starttls, 25 none")
    security: Security
    helo_name: str | None = Field(default=None, max_length=255)
    username: str | None = Field(default=None, max_length=320)
    password: str | None = _secret(1024)
    auth_method: AuthMethod = AuthMethod.AUTO
    sender_email: str = Field(max_length=320)
    sender_name: str | None = Field(default=None, max_length=200)
    reply_to: str | None = Field(default=None, max_length=320)
    timeouts: TimeoutsIn = Field(default_factory=TimeoutsIn)
    tls: TlsIn = Field(default_factory=TlsIn)
    proxy: ProxyIn = Field(default_factory=ProxyIn)
    limits: LimitsIn = Field(default_factory=LimitsIn)
    preset: str | None = Field(default=None, max_length=64, description="a preset id")
    oauth: OAuthIn | None = Field(default=None, description='with auth_method "oauth2"')

    def to_domain(self) -> SmtpSettings:
        """The settings value, not yet validated (the service validates)."""
        return SmtpSettings(
            host=self.host,
            port=self.port if self.port is not None else DEFAULT_PORTS[self.security],
            security=self.security,
            sender_email=self.sender_email,
            sender_name=self.sender_name,
            reply_to=self.reply_to,
            username=self.username,
            auth_method=self.auth_method,
            helo_name=self.helo_name,
            timeouts=Timeouts(
                connect=self.timeouts.connect,
                command=self.timeouts.command,
                overall=self.timeouts.overall,
            ),
            tls=TlsOptions(
                ca_pem=self.tls.ca_pem,
                pinned_sha256=self.tls.pinned_sha256,
                client_cert_pem=self.tls.client_cert_pem,
            ),
            proxy=ProxySettings(
                kind=self.proxy.kind,
                host=self.proxy.host,
                port=self.proxy.port,
                username=self.proxy.username,
            ),
            limits=Limits(
                max_connections=self.limits.max_connections,
                max_messages_per_connection=self.limits.max_messages_per_connection,
                per_minute=self.limits.per_minute,
                per_hour=self.limits.per_hour,
                per_day=self.limits.per_day,
                recipients_per_day=self.limits.recipients_per_day,
            ),
            preset=self.preset,
            oauth=self.oauth.to_domain() if self.oauth else None,
        )

    def secret_changes(self) -> SecretChanges:
        """Only the secrets the body *mentions*: absent keeps, null/"" clears, text sets."""
        changes: dict[SmtpSecretField, str | None] = {}
        if "password" in self.model_fields_set:
            changes[SmtpSecretField.PASSWORD] = self.password
        if "proxy" in self.model_fields_set and "password" in self.proxy.model_fields_set:
            changes[SmtpSecretField.PROXY_PASSWORD] = self.proxy.password
        if "tls" in self.model_fields_set and "client_key_pem" in self.tls.model_fields_set:
            changes[SmtpSecretField.CLIENT_KEY] = self.tls.client_key_pem
        if self.oauth is not None:
            for name, secret in _OAUTH_SECRETS.items():
                if name in self.oauth.model_fields_set:
                    changes[secret] = getattr(self.oauth, name)
        return changes


class SmtpTestIn(Strict):
    send_to: str | None = Field(
        default=None, max_length=320, description="also send a test message to this address"
    )
    settings: SmtpSettingsIn | None = Field(
        default=None,
        description="test these settings instead of the saved ones (nothing is saved); an "
        "omitted secret is taken from the saved settings only for the same host and account",
    )
    dkim_selectors: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=list,
        max_length=10,
        description="DKIM selectors the domain check looks up besides the provider's own",
    )


class SmtpAutodetectIn(Strict):
    settings: SmtpSettingsIn | None = Field(
        default=None, description="detect for these settings instead of the saved ones"
    )


# --- responses -----------------------------------------------------------------------------


class TimeoutsOut(BaseModel):
    connect: float
    command: float
    overall: float


class TlsOut(BaseModel):
    ca_pem: str | None
    pinned_sha256: str | None
    client_cert_pem: str | None
    client_key_set: bool


class ProxyOut(BaseModel):
    kind: ProxyKind
    host: str | None
    port: int | None
    username: str | None
    password_set: bool


class LimitsOut(BaseModel):
    max_connections: int
    max_messages_per_connection: int
    per_minute: int | None
    per_hour: int | None
    per_day: int | None
    recipients_per_day: int | None


class OAuthOut(BaseModel):
    provider: OAuthProvider
    client_id: str | None
    tenant_id: str | None
    token_url: str | None
    scopes: list[str]
    include_imap: bool
    grant: GenericGrant
    client_cert_pem: str | None
    client_secret_set: bool
    private_key_set: bool
    service_account_key_set: bool
    refresh_token_set: bool = Field(description="the mailbox is connected")
    access_token_cached: bool

    @classmethod
    def of(cls, o: OAuthSettings, view: SmtpSettingsView) -> OAuthOut:
        return cls(
            provider=o.provider,
            client_id=o.client_id,
            tenant_id=o.tenant_id,
            token_url=o.token_url,
            scopes=list(o.scopes),
            include_imap=o.include_imap,
            grant=o.grant,
            client_cert_pem=o.client_cert_pem,
            client_secret_set=view.is_set(SmtpSecretField.OAUTH_CLIENT_SECRET),
            private_key_set=view.is_set(SmtpSecretField.OAUTH_PRIVATE_KEY),
            service_account_key_set=view.is_set(SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY),
            refresh_token_set=view.is_set(SmtpSecretField.OAUTH_REFRESH_TOKEN),
            access_token_cached=view.is_set(SmtpSecretField.OAUTH_ACCESS_TOKEN),
        )


class SmtpSettingsOut(BaseModel):
    host: str
    port: int
    security: Security
    helo_name: str | None
    username: str | None
    password_set: bool
    auth_method: AuthMethod
    sender_email: str
    sender_name: str | None
    reply_to: str | None
    timeouts: TimeoutsOut
    tls: TlsOut
    proxy: ProxyOut
    limits: LimitsOut
    preset: str | None
    oauth: OAuthOut | None = Field(description='set with auth_method "oauth2"')
    warnings: list[str] = Field(description="things to check, e.g. the sender-domain trap")
    updated_at: datetime
    updated_by: UUID | None

    @classmethod
    def of(cls, view: SmtpSettingsView) -> SmtpSettingsOut:
        s = view.settings
        return cls(
            host=s.host,
            port=s.port,
            security=s.security,
            helo_name=s.helo_name,
            username=s.username,
            password_set=view.is_set(SmtpSecretField.PASSWORD),
            auth_method=s.auth_method,
            sender_email=s.sender_email,
            sender_name=s.sender_name,
            reply_to=s.reply_to,
            timeouts=TimeoutsOut(
                connect=s.timeouts.connect, command=s.timeouts.command, overall=s.timeouts.overall
            ),
            tls=TlsOut(
                ca_pem=s.tls.ca_pem,
                pinned_sha256=s.tls.pinned_sha256,
                client_cert_pem=s.tls.client_cert_pem,
                client_key_set=view.is_set(SmtpSecretField.CLIENT_KEY),
            ),
            proxy=ProxyOut(
                kind=s.proxy.kind,
                host=s.proxy.host,
                port=s.proxy.port,
                username=s.proxy.username,
                password_set=view.is_set(SmtpSecretField.PROXY_PASSWORD),
            ),
            limits=LimitsOut(
                max_connections=s.limits.max_connections,
                max_messages_per_connection=s.limits.max_messages_per_connection,
                per_minute=s.limits.per_minute,
                per_hour=s.limits.per_hour,
                per_day=s.limits.per_day,
                recipients_per_day=s.limits.recipients_per_day,
            ),
            preset=s.preset,
            oauth=OAuthOut.of(s.oauth, view) if s.oauth else None,
            warnings=view.warnings,
            updated_at=view.updated_at,
            updated_by=view.updated_by,
        )


class StepOut(BaseModel):
    name: StepName
    status: StepStatus
    duration_ms: int
    reply_code: int | None
    reply_text: str | None
    explanation: str | None
    fix: str | None
    details: dict[str, str | int | list[str]]

    @classmethod
    def of(cls, step: Step) -> StepOut:
        return cls(
            name=step.name,
            status=step.status,
            duration_ms=step.duration_ms,
            reply_code=step.reply_code,
            reply_text=step.reply_text,
            explanation=step.explanation,
            fix=step.fix,
            details=dict(step.details),
        )


class SmtpTestOut(BaseModel):
    ok: bool = Field(description="true if no step failed (the domain check does not count)")
    steps: list[StepOut]
    warnings: list[str]
    domain: DomainCheckOut | None = Field(
        default=None,
        description="the sender-domain check (SPF, DKIM, DMARC), informative; null if the "
        "sender domain could not be checked",
    )

    @classmethod
    def of(cls, report: DiagnosisReport) -> SmtpTestOut:
        return cls(
            ok=report.ok,
            steps=[StepOut.of(s) for s in report.steps],
            warnings=report.warnings,
            domain=DomainCheckOut.of(report.domain) if report.domain else None,
        )


class CandidateOut(BaseModel):
    port: int
    security: str
    ok: bool
    summary: str
    answer: PortAnswer = Field(description="what the port answered to this combination")

    @classmethod
    def of(cls, c: AutodetectCandidate) -> CandidateOut:
        return cls(port=c.port, security=c.security, ok=c.ok, summary=c.summary, answer=c.answer)


class PortResultOut(BaseModel):
    port: int
    answer: PortAnswer
    text: str = Field(description="the answer in words, e.g. 'plain SMTP without STARTTLS'")


class SmtpAutodetectOut(BaseModel):
    candidates: list[CandidateOut]
    recommended: CandidateOut | None
    ports: list[PortResultOut] = Field(
        description="every port tried (the usual ones and the one typed in) and what it "
        "answered: refused, timed out, plain SMTP (with or without STARTTLS), STARTTLS, TLS"
    )

    @classmethod
    def of(cls, report: AutodetectReport) -> SmtpAutodetectOut:
        return cls(
            candidates=[CandidateOut.of(c) for c in report.candidates],
            recommended=CandidateOut.of(report.recommended) if report.recommended else None,
            ports=[PortResultOut(port=p.port, answer=p.answer, text=p.text) for p in report.ports],
        )


class EndpointOut(BaseModel):
    port: int
    security: Security


class PresetLimitsOut(BaseModel):
    per_minute: int | None
    per_hour: int | None
    per_day: int | None
    recipients_per_day: int | None
    max_connections: int | None


class PresetOut(BaseModel):
    id: str
    name: str
    host: str = Field(description="ready to use (Amazon SES: for the default region)")
    host_template: str = Field(description="with {region} where the host depends on it")
    port: int
    security: Security
    alternatives: list[EndpointOut]
    username_hint: str
    username: str | None = Field(
        description="the login name the provider fixes (SendGrid: apikey); null: your own"
    )
    credential_hint: str
    limits: PresetLimitsOut = Field(description="documented, plan-independent limits only")
    limits_note: str | None
    note: str
    parameters: dict[str, str] = Field(description="parameter name -> default")

    @classmethod
    def of(cls, p: SmtpPreset) -> PresetOut:
        return cls(
            id=p.id,
            name=p.name,
            host=preset_host(p),
            host_template=p.host,
            port=p.port,
            security=p.security,
            alternatives=[EndpointOut(port=a.port, security=a.security) for a in p.alternatives],
            username_hint=p.username_hint,
            username=p.username,
            credential_hint=p.credential_hint,
            limits=PresetLimitsOut(
                per_minute=p.limits.per_minute,
                per_hour=p.limits.per_hour,
                per_day=p.limits.per_day,
                recipients_per_day=p.limits.recipients_per_day,
                max_connections=p.limits.max_connections,
            ),
            limits_note=p.limits_note,
            note=p.note,
            parameters=dict(p.parameters),
        )


class AuditEntryOut(BaseModel):
    at: datetime
    actor_id: UUID | None = Field(description="null for operator actions (key rotation)")
    action: str
    fields: list[str] = Field(description="names of the changed fields; never values")

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls(at=e.at, actor_id=e.actor_id, action=e.action, fields=list(e.fields))
