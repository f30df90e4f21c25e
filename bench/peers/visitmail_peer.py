"""``visitmail``: the system under test.

Enqueue N messages into visitmail's durable outbox, then run its delivery worker until the
outbox is drained, with ``connections`` pooled SMTP connections to the sink.

Setup, untimed: a ``Runtime`` on the fresh database (migrated), one organization, its SMTP
settings pointing at the sink (no TLS, no auth, ``max_connections`` = K, no rate limits), a
network policy that allows loopback, and the N workload messages enqueued through
``visitmail.services.outbox.enqueue`` (500 per transaction), with the workload's bytes as
the pre-rendered MIME and the workload's Message-IDs.

Timed: from starting a ``DeliveryWorker`` (``concurrency`` = K, claims of 200) until the
last settlement was *committed* (every message ``sent`` in the database), which is later
than the sink's last 250: for a durable outbox a message counts once its outcome is
written. The clock stops right after the worker's flush that settled the N-th message, not
after an idle wait; the worker's shutdown (QUIT, closing pools) is outside the window.

Differences from the other peers, all outside the measured work:

- the envelope domain: visitmail refuses special-use domains (``.invalid``) in addresses,
  so the envelope's ``bench.visitmail.invalid`` becomes ``bench.visitmail.example`` (the
  same length; RFC 2606 reserved). The MIME bytes, headers included, are the workload's;
- ``PeerResult.sent`` is the number of messages ``sent`` in the database after the run.

``database_url`` is a fresh, empty database for this run (``sqlite:///…`` in a temporary
directory, or a throwaway PostgreSQL database); migrating it is setup, outside the window.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from visitmail.domain.identity import Principal
    from visitmail.runtime import Runtime

from bench.peers.base import PeerResult, PeerUnavailable
from bench.workload import BenchMessage, build_messages

ENQUEUE_BATCH = 500  # messages per enqueue transaction (setup)
CLAIM_BATCH = 200  # WorkerOptions.batch
STALL_SECONDS = 60.0  # give up when no message was settled for this long
SENDER_DOMAIN = "bench.visitmail.example"
_WORKLOAD_DOMAIN = "@bench.visitmail.invalid"


def envelope_address(address: str) -> str:
    """The workload's envelope address on a domain visitmail accepts (see the module doc)."""
    if address.endswith(_WORKLOAD_DOMAIN):
        return address[: -len(_WORKLOAD_DOMAIN)] + "@" + SENDER_DOMAIN
    return address


def _sent_total() -> float:
    """This process's count of messages settled as ``sent``: the worker's own counter,
    incremented right after the flush that wrote them has committed."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("visitmail_messages_settled_total", {"status": "sent"})
    return value or 0.0


def new_master_keys() -> str:
    """A fresh key ring for ``VISITMAIL_MASTER_KEYS`` (one key, for one bench run)."""
    return "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode()


async def setup_organization(
    database_url: str,
    var_dir: Path,
    connections: int,
    sink_host: str,
    sink_port: int,
    *,
    keys: str | None = None,
) -> tuple[Runtime, Principal]:
    """A migrated runtime and one organization whose SMTP settings point at the sink
    (``max_connections`` = ``connections``): ``(runtime, principal of its admin)``. ``keys``
    is the key ring (a fresh one when None); worker processes started later need the same."""
    from visitmail.adapters.crypto.secret_box import SecretBox
    from visitmail.adapters.db import migrate
    from visitmail.config import Settings
    from visitmail.domain.identity import Principal
    from visitmail.domain.smtp_settings import Limits, Security, SmtpSettings, Timeouts
    from visitmail.runtime import build_runtime
    from visitmail.services import identity, smtp_config

    settings = Settings(
        database_url=database_url, var_dir=var_dir, master_keys=keys or new_master_keys()
    )
    runtime = build_runtime(settings, create_key=False, fast_hashing=True)
    try:
        await migrate.upgrade(runtime.engine)
        async with runtime.uow() as uow:
            created = await identity.create_organization(
                uow,
                runtime.hasher,
                name="Bench",
                admin_email=f"bench-admin@{SENDER_DOMAIN}",
                admin_name="Bench Admin",
            )
        principal = Principal(user=created.admin, via="token")
        smtp = SmtpSettings(
            host=sink_host,
            port=sink_port,
            security=Security.NONE,
            sender_email=f"bench-sender@{SENDER_DOMAIN}",
            sender_name="Bench",
            timeouts=Timeouts(connect=10, command=60, overall=120),
            limits=Limits(max_connections=connections, max_messages_per_connection=10_000),
        )
        async with runtime.uow() as uow:
            await smtp_config.put_settings(uow, SecretBox(runtime.keyring), principal, smtp, {})
    except BaseException:
        await runtime.close()
        raise
    return runtime, principal


async def enqueue_all(
    runtime: Runtime,
    organization_id: uuid.UUID,
    messages: Sequence[BenchMessage],
    *,
    batch: int = ENQUEUE_BATCH,
) -> frozenset[str]:
    """Enqueue ``messages`` through ``visitmail.services.outbox.enqueue``, in transactions
    of ``batch``; return the Message-IDs of the messages created."""
    from visitmail.domain.outbox import MessageKind
    from visitmail.services import outbox
    from visitmail.services.outbox_ports import NewMessage, NewRecipient

    ids: set[str] = set()
    for start in range(0, len(messages), batch):
        async with runtime.uow() as uow:
            for m in messages[start : start + batch]:
                done = await outbox.enqueue(
                    uow,
                    NewMessage(
                        organization_id=organization_id,
                        kind=MessageKind.NOTIFICATION,
                        idempotency_key=m.message_id,
                        message_id=m.message_id,
                        mail_from=envelope_address(m.sender),
                        subject="Visit report",
                        mime=m.raw,
                        recipients=[NewRecipient(envelope_address(m.recipient))],
                    ),
                )
                if done.created:
                    ids.add(m.message_id)
            await uow.commit()
    return frozenset(ids)


@dataclass
class _Progress:
    sent: float = 0.0  # messages settled as sent so far
    at: float | None = None  # perf_counter time of the flush that settled the latest


async def _deliver(
    runtime: Runtime, organization_id: uuid.UUID, n: int, connections: int
) -> tuple[float, float | None]:
    """Run a worker until ``n`` messages are settled as sent (or nothing settles for
    ``STALL_SECONDS``): ``(started, last settlement)``, ``perf_counter`` times."""
    from visitmail.adapters.smtp.sender import SmtpSender
    from visitmail.domain.network_policy import NetworkPolicy
    from visitmail.worker import DeliveryWorker, WorkerOptions

    if not callable(getattr(DeliveryWorker, "_flush", None)):
        raise PeerUnavailable("DeliveryWorker has no _flush to time settlements by")

    baseline = _sent_total()
    all_sent = asyncio.Event()
    progress = _Progress()

    class TimedWorker(DeliveryWorker):
        """Notes when each flush that settled messages as sent has committed."""

        async def _flush(self) -> None:
            await super()._flush()
            sent = _sent_total() - baseline
            if sent > progress.sent:
                progress.sent, progress.at = sent, time.perf_counter()
                if sent >= n:
                    all_sent.set()

    options = WorkerOptions(
        concurrency=connections,
        batch=CLAIM_BATCH,
        organizations=frozenset({organization_id}),
    )
    loopback = NetworkPolicy((ipaddress.ip_network("127.0.0.0/8"),))
    worker = TimedWorker(runtime, SmtpSender(loopback), options)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    try:
        while not all_sent.is_set():
            seen = progress.sent
            try:
                await asyncio.wait_for(all_sent.wait(), STALL_SECONDS)
            except TimeoutError:
                if progress.sent == seen:
                    break  # stalled: report what was sent
            if task.done():
                break
    finally:
        stop.set()
        await task  # raises the worker's own error, if any
    return started, progress.at


async def _outcome(runtime: Runtime, principal: Principal) -> tuple[int, str | None]:
    """Messages ``sent`` in the database, and one non-sent message's last error."""
    from visitmail.domain.outbox import MessageStatus
    from visitmail.services import outbox

    async with runtime.uow() as uow:
        counts = await outbox.counts(uow, principal)
        first_error = None
        if counts[MessageStatus.SENT] != sum(counts.values()):
            for status in MessageStatus:
                if status is MessageStatus.SENT or not counts[status]:
                    continue
                found = await outbox.list_messages(uow, principal, status=status, limit=1)
                if found:
                    first_error = f"{status.value}: {found[0].last_error}"
                    break
    return counts[MessageStatus.SENT], first_error


async def run(
    n: int, connections: int, sink_host: str, sink_port: int, database_url: str
) -> PeerResult:
    """Send ``n`` messages through visitmail's outbox and worker to the sink; report the
    messages sent and the seconds from starting the worker to the last settlement."""
    try:
        from importlib.metadata import version

        import visitmail.worker  # noqa: F401

        visitmail_version = version("visitmail")
    except ImportError as e:
        raise PeerUnavailable(f"visitmail's delivery engine cannot be imported: {e}") from e
    messages = build_messages(n)
    with tempfile.TemporaryDirectory(prefix="visitmail-bench-var-") as var_dir:
        runtime, principal = await setup_organization(
            database_url, Path(var_dir), connections, sink_host, sink_port
        )
        try:
            message_ids = await enqueue_all(runtime, principal.organization_id, messages)
            started, last = await _deliver(runtime, principal.organization_id, n, connections)
            sent, first_error = await _outcome(runtime, principal)
        finally:
            await runtime.close()
    details = {
        "visitmail": visitmail_version,
        "database": database_url.split(":", 1)[0],
        "claim_batch": str(CLAIM_BATCH),
        "concurrency": str(connections),
    }
    if first_error:
        details["first_error"] = first_error
    seconds = (last if last is not None else time.perf_counter()) - started
    return PeerResult(sent=sent, seconds=seconds, message_ids=message_ids, details=details)
