"""The connection test's report: ordered steps, each passed / failed / skipped, with the
server's reply where there is one, an explanation in plain words and a concrete fix.

Transcripts and texts in here are shown to users: they never contain a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from visitmail.domain.sender_domain import DomainReport


class StepName(StrEnum):
    RESOLVE = "resolve"
    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    TLS = "tls"
    TOKEN = "token"  # OAuth2 only: an access token was had (or why not)  # noqa: S105
    SCOPE = "scope"  # OAuth2 only: the token carries what SMTP needs
    AUTH = "auth"
    MAIL_FROM = "mail_from"
    RCPT_TO = "rcpt_to"
    SEND = "send"
    QUIT = "quit"


STEP_ORDER: tuple[StepName, ...] = tuple(StepName)
#: Steps reported only for OAuth2 settings (a password report keeps its ten steps).
OAUTH_STEPS = frozenset({StepName.TOKEN, StepName.SCOPE})

#: The ``send`` step's detail that holds the test message's RFC 5322 Message-ID (the API's
#: name for that header everywhere: ``message_id`` means an outbox message's id).
SENT_MESSAGE_ID = "message_id_header"


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Step:
    name: StepName
    status: StepStatus
    duration_ms: int = 0
    reply_code: int | None = None
    reply_text: str | None = None
    explanation: str | None = None  # what happened, in words
    fix: str | None = None  # what to change (failed steps)
    details: dict[str, str | int | list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiagnosisReport:
    steps: list[Step]
    warnings: list[str] = field(default_factory=list)
    # The sender-domain check (SPF, DKIM, DMARC): informative, never fails the test.
    domain: DomainReport | None = None

    @property
    def ok(self) -> bool:
        return all(s.status is not StepStatus.FAILED for s in self.steps) and any(
            s.status is StepStatus.PASSED for s in self.steps
        )

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.status is StepStatus.FAILED), None)


@dataclass(frozen=True, slots=True)
class AutodetectCandidate:
    port: int
    security: str
    ok: bool
    summary: str


@dataclass(frozen=True, slots=True)
class AutodetectReport:
    candidates: list[AutodetectCandidate]
    recommended: AutodetectCandidate | None
