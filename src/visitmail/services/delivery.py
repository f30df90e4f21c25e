"""The delivery use case for one claimed message: send it through the transport, classify
the result, and say how the message and its recipients settle. No I/O of its own: the
transport and the clock come in as arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from visitmail.domain.outbox import AttemptOutcome, RecipientStatus, settle
from visitmail.domain.retry_policy import RetryPolicy
from visitmail.domain.smtp_replies import ReplyClass, classify
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings
from visitmail.services.outbox_ports import (
    AttemptRecord,
    ClaimedMessage,
    MessageTransport,
    SettledMessage,
)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease: timedelta = timedelta(minutes=5)
    pause_after: int = 5  # consecutive connection/TLS/auth failures before the queue pauses
    first_probe: timedelta = timedelta(minutes=1)
    max_probe_interval: timedelta = timedelta(minutes=15)
    retention: timedelta = timedelta(days=30)


def attempt_records(outcome: AttemptOutcome) -> list[AttemptRecord]:
    """The ledger lines for one attempt: one per answered recipient, or one for the server."""
    if outcome.server_failure is not None:
        reply = outcome.failure_reply
        return [
            AttemptRecord(
                recipient=None,
                outcome="server_failure",
                code=reply.code if reply else None,
                enhanced=reply.enhanced_status if reply else None,
                text=f"{outcome.server_failure.value}: {outcome.failure_text}"[:2000],
                duration_ms=outcome.duration_ms,
            )
        ]
    records = []
    for result in outcome.results:
        kind = {
            ReplyClass.ACCEPTED: RecipientStatus.ACCEPTED.value,
            ReplyClass.PERMANENT: RecipientStatus.REJECTED.value,
        }.get(classify(result.reply), RecipientStatus.DEFERRED.value)
        records.append(
            AttemptRecord(
                recipient=result.address,
                outcome=kind,
                code=result.reply.code,
                enhanced=result.reply.enhanced_status,
                text=result.reply.text[:2000],
                duration_ms=outcome.duration_ms,
            )
        )
    for address in outcome.unknown_recipients:
        records.append(
            AttemptRecord(
                recipient=address,
                outcome="unknown",
                code=None,
                enhanced=None,
                text="connection lost after the final dot; the outcome is unknown",
                duration_ms=outcome.duration_ms,
            )
        )
    return records


def settle_message(
    message: ClaimedMessage,
    outcome: AttemptOutcome,
    *,
    now: datetime,
    policy: DeliveryPolicy,
    rng: random.Random | None = None,
) -> SettledMessage:
    settlement = settle(
        outcome,
        open_recipients=message.open_recipients,
        attempt=message.attempt,
        created_at=message.created_at,
        expires_at=message.expires_at,
        already_possible_duplicate=message.possible_duplicate,
        now=now,
        policy=policy.retry,
        accepted_before=message.accepted_before,
        rng=rng,
    )
    return SettledMessage(message, settlement, attempt_records(outcome))


async def deliver(
    transport: MessageTransport,
    settings: SmtpSettings,
    secrets: SmtpSecrets,
    message: ClaimedMessage,
    *,
    now: datetime,
    policy: DeliveryPolicy,
) -> SettledMessage:
    """One attempt for one message; never raises for server behaviour."""
    if not message.open_recipients:  # every recipient settled earlier (e.g. unknown outcome)
        outcome = AttemptOutcome()
    else:
        outcome = await transport.send(message.organization_id, settings, secrets, message)
    return settle_message(message, outcome, now=now, policy=policy)


def next_probe_interval(previous: timedelta | None, policy: DeliveryPolicy) -> timedelta:
    """Probes back off from ``first_probe`` to ``max_probe_interval``."""
    if previous is None:
        return policy.first_probe
    return min(previous * 2, policy.max_probe_interval)
