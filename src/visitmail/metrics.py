"""Prometheus metrics of this process (prometheus-client). Queue sizes are read from the
database at scrape time (``/metrics``); counters and latencies are this process's own."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "visitmail_delivery_attempts",
    "Delivery attempts by outcome (per recipient; server_failure per connection)",
    ["outcome"],
)
MESSAGES_SETTLED = Counter(
    "visitmail_messages_settled", "Messages settled by this process, by new status", ["status"]
)
ATTEMPT_SECONDS = Histogram(
    "visitmail_delivery_attempt_seconds",
    "Duration of one delivery attempt (one SMTP transaction, connection reuse included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
