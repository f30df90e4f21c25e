"""``GET /metrics``: Prometheus text format, unauthenticated like any scrape target.

Holds this process's counters and latency histogram (``visitmail.metrics``) and gauges
read from the database at scrape time, across every organization (counts only, never an
organization's data). The gauges live in a fresh registry per scrape, so their values are
exactly what the database said, with no stale labels left behind.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
)

from visitmail.adapters.db.metrics_queries import (
    delivery_events_since,
    messages_sent,
    paused_organizations,
)
from visitmail.logs import get_logger
from visitmail.runtime import Runtime
from visitmail.services.clock import utcnow
from visitmail.services.delivery_events import RATE_WINDOW
from visitmail.web.deps import RuntimeDep

log = get_logger(__name__)

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (unauthenticated scrape target)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "metrics"}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text exposition format. No authentication, like any scrape target:
    restrict it at the network or proxy if the numbers are sensitive.

    - `visitmail_outbox_messages{status}` (gauge): messages per status, all organizations
    - `visitmail_organizations_paused` (gauge): organizations whose queue is paused
    - `visitmail_delivery_events_30d{organization,kind}` (gauge): bounces (`bounced_hard`,
      `bounced_soft`), complaints (`complained`), delays and relay unsubscribes reported
      after a 250 in the last 30 days, per organization id
    - `visitmail_complaint_rate_30d{organization}` (gauge): those complaints per message
      accepted in the outbox's retention period (Gmail asks bulk senders for < 0.001)
    - `visitmail_metrics_database_up` (gauge): 1 if the database answered this scrape; at 0
      the two gauges above are missing, the process's own metrics are still served
    - `visitmail_delivery_attempts_total{outcome}` (counter): this process's attempts
    - `visitmail_messages_settled_total{status}` (counter): messages this process settled
    - `visitmail_delivery_attempt_seconds` (histogram): duration of one delivery attempt
    """
    body = generate_latest(REGISTRY) + await database_gauges(runtime)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def database_gauges(runtime: Runtime) -> bytes:
    """The gauges read from the database now, rendered in their own registry."""
    registry = CollectorRegistry(auto_describe=False)
    up = Gauge(
        "visitmail_metrics_database_up",
        "1 if the database answered this scrape",
        registry=registry,
    )
    try:
        async with runtime.uow() as uow:
            counts = await uow.outbox.counts(None)
            paused = await paused_organizations(uow.session)
            came_back = await delivery_events_since(uow.session, utcnow() - RATE_WINDOW)
            # Only organizations that had something come back: a rate of 0 needs no series.
            sent = await messages_sent(uow.session, sorted({org for org, _, _ in came_back}))
    except Exception as exc:  # a scrape must not fail because the database is away
        log.warning("metrics: database unreachable", error_type=type(exc).__name__)
        up.set(0)
        return generate_latest(registry)
    up.set(1)
    messages = Gauge(
        "visitmail_outbox_messages",
        "Outbox messages per status, all organizations",
        ["status"],
        registry=registry,
    )
    for status, n in counts.items():
        messages.labels(status=status.value).set(n)
    Gauge(
        "visitmail_organizations_paused",
        "Organizations whose delivery queue is paused after repeated server failures",
        registry=registry,
    ).set(paused)
    reported = Gauge(
        "visitmail_delivery_events_30d",
        "Bounces, complaints and delays reported after a 250 in the last 30 days, per "
        "organization and kind",
        ["organization", "kind"],
        registry=registry,
    )
    complaints: dict[uuid.UUID, int] = {}
    for organization, kind, n in came_back:
        reported.labels(organization=str(organization), kind=kind).set(n)
        if kind == "complained":
            complaints[organization] = n
    rate = Gauge(
        "visitmail_complaint_rate_30d",
        "Spam complaints of the last 30 days per message the server accepted that the outbox "
        "holds (Gmail asks bulk senders for < 0.001), per organization",
        ["organization"],
        registry=registry,
    )
    for organization, n in complaints.items():
        if sent.get(organization):
            rate.labels(organization=str(organization)).set(n / sent[organization])
    return generate_latest(registry)
