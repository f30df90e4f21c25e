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


class PortAnswer(StrEnum):
    """What a port answered when auto-detect knocked, from what was seen on the wire."""

    REFUSED = "refused"
    TIMED_OUT = "timed_out"
    PLAIN_NO_STARTTLS = "plain_no_starttls"  # EHLO answered without STARTTLS
    PLAIN = "plain_smtp"  # answered in plain text to a TLS handshake; STARTTLS not known
    STARTTLS = "starttls"
    TLS = "tls"
    FAILED = "failed"  # something else; the candidate's summary says what


PORT_ANSWER_TEXT: dict[PortAnswer, str] = {
    PortAnswer.REFUSED: "refused the connection",
    PortAnswer.TIMED_OUT: "timed out (no answer)",
    PortAnswer.PLAIN_NO_STARTTLS: "plain SMTP without STARTTLS (not encrypted)",
    PortAnswer.PLAIN: "plain SMTP (not implicit TLS)",
    PortAnswer.STARTTLS: "STARTTLS (encrypted after the greeting)",
    PortAnswer.TLS: "TLS (implicit TLS from the first byte)",
    PortAnswer.FAILED: "answered, but the test failed",
}

# When several combinations were tried on one port, the most telling answer wins.
_PORT_ANSWER_RANK: tuple[PortAnswer, ...] = (
    PortAnswer.TLS,
    PortAnswer.STARTTLS,
    PortAnswer.PLAIN_NO_STARTTLS,
    PortAnswer.PLAIN,
    PortAnswer.FAILED,
    PortAnswer.TIMED_OUT,
    PortAnswer.REFUSED,
)


@dataclass(frozen=True, slots=True)
class AutodetectCandidate:
    port: int
    security: str
    ok: bool
    summary: str
    answer: PortAnswer = PortAnswer.FAILED


@dataclass(frozen=True, slots=True)
class PortResult:
    """One port auto-detect tried and what it answered, in words for the admin."""

    port: int
    answer: PortAnswer
    text: str


def ports_answered(candidates: list[AutodetectCandidate]) -> list[PortResult]:
    """Per port, in the order first tried, the most telling answer of its candidates."""
    best: dict[int, PortAnswer] = {}
    for c in candidates:
        known = best.get(c.port)
        if known is None or _PORT_ANSWER_RANK.index(c.answer) < _PORT_ANSWER_RANK.index(known):
            best[c.port] = c.answer
    return [PortResult(port, a, PORT_ANSWER_TEXT[a]) for port, a in best.items()]


@dataclass(frozen=True, slots=True)
class AutodetectReport:
    candidates: list[AutodetectCandidate]
    recommended: AutodetectCandidate | None
    ports: list[PortResult] = field(default_factory=list)
