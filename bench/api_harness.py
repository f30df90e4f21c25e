"""A real ``visitmail serve`` for the API scenarios (``bulk``, ``capture``, ``latency``,
``history``), driven over HTTP as a new user would drive it.

:func:`visitmail_server` creates a fresh database (a SQLite file in a temporary directory
or a throwaway PostgreSQL database, :mod:`bench.databases`), runs ``visitmail migrate`` and
``visitmail org create`` (whose output gives the API token), then starts ``visitmail
serve`` (the venv's ``visitmail`` next to ``sys.executable``) on a free loopback port with
the delivery worker in the same process, and yields an :class:`ApiServer`. On exit (also
on error or cancellation) the server gets SIGTERM, then SIGKILL after a grace period, and
the database and temporary directory are removed.

The server's environment: ``VISITMAIL_DATABASE_URL``, ``VISITMAIL_VAR_DIR`` (a temporary
directory; the master key file is created there on first use) and
``VISITMAIL_SMTP_ALLOWED_NETWORKS=127.0.0.0/8``, so the organization may send to a loopback
sink. The log level is WARNING, so logging costs what it costs a quiet production server.

:class:`Api` wraps the HTTP calls the scenarios need: SMTP settings, an event with
questions, follow-up templates, the notification mapping, captured reports, outbox counts.
Every call checks its status code and raises :class:`ApiError` with the reply otherwise.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.databases import fresh_database
from bench.scenarios.base import DatabaseKind, Progress

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_GRACE = 10.0
BULK_TIMEOUT = (
    1800.0  # one bulk request of 500 (issue 9 measured up to 70 ms each, more with history)
)
_TOKEN = re.compile(r"api token:\s+(\S+)")
_ORG = re.compile(r"organization id:\s+(\S+)")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# The event, templates and leads every API scenario uses.
QUESTIONS: list[dict[str, Any]] = [
    {"key": "interest", "label": {"en": "Interest"}, "type": "text"},
    {
        "key": "size",
        "label": {"en": "Size"},
        "type": "single",
        "options": [{"key": "small"}, {"key": "large"}],
    },
]
FOLLOW_UP_TEMPLATE: dict[str, str] = {
    "subject": "Your visit, {{ lead.company }}",
    "text": "{{ salutation }},\n\nthank you for talking with us about {{ answers.interest }}.\n"
    "We will be in touch soon.\n\n{{ reporter.name }}\n",
    "html": "<p>{{ salutation }},</p><p>thank you for talking with us about "
    "<b>{{ answers.interest }}</b>.</p><p>{{ reporter.name }}</p>",
}
SENDER = "visits@bench.example"


class ApiError(RuntimeError):
    """An API call answered an unexpected status; the message has the method, path, status
    and the start of the body."""


class ServerFailed(RuntimeError):
    """``visitmail`` (migrate, org create or serve) failed; the message has its output's
    tail."""


def visitmail_binary() -> Path:
    """The ``visitmail`` script of the running interpreter's environment."""
    return Path(sys.executable).parent / "visitmail"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def log_tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log file, joined with `` | ``."""
    return _tail(path.read_text(errors="replace"), lines)


def server_errors(path: Path, limit: int = 3) -> list[str]:
    """The server log's last distinct error lines (``[error ...]`` records and exception
    messages such as ``sqlite3.OperationalError: database is locked``), oldest first."""
    if not path.exists():
        return []
    found: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        text = line.strip()
        if "[error" in text or re.match(r"^[\w.]+(Error|Exception)\b.*:", text):
            text = re.sub(r"^\S+Z ", "", text)  # the timestamp
            text = re.sub(r"\s+", " ", _UUID.sub("<id>", text))
            if text not in found:
                found.append(text)
    return found[-limit:]


def describe(error: BaseException) -> str:
    """``str(error)`` with the notes :func:`visitmail_server` added (the server's errors)."""
    notes = getattr(error, "__notes__", None) or []
    return " | ".join([str(error), *notes])


def lead(i: int, *, run: str = "") -> dict[str, Any]:
    """The ``i``-th bench lead: distinct address, realistic fields, consent to follow-ups."""
    return {
        "gender": "female" if i % 2 else "male",
        "title": "Dr." if i % 5 == 0 else "",
        "first_name": f"Alex{i}",
        "last_name": f"Miller{i}",
        "company": f"Company {i} Ltd",
        "position": "CTO",
        "email": f"lead{i}.{run or 'x'}@leads.bench.example",
        "phone": "+49 30 1234",
        "street": "Main St. 1",
        "zip": f"{10000 + i % 90000}",
        "city": "Berlin",
        "country": "DE",
        "language": "en",
    }


def report_body(event_id: str, i: int, *, run: str = "", **changes: Any) -> dict[str, Any]:
    """A ``POST /api/v1/reports`` body for lead ``i`` (consent to follow-ups given)."""
    body: dict[str, Any] = {
        "event_id": event_id,
        "lead": lead(i, run=run),
        "answers": {"interest": f"product line {i % 7}", "size": "large" if i % 2 else "small"},
        "notes": "Met at the booth.",
        "consent": {"follow_up_email": True, "marketing": False},
    }
    body.update(changes)
    return body


@dataclass
class Api:
    """The HTTP calls the scenarios make, with the organization admin's token."""

    client: httpx.AsyncClient

    async def call(
        self,
        method: str,
        path: str,
        *,
        expect: int = 200,
        json: Any = None,
        limit_seconds: float | None = None,
    ) -> dict[str, Any]:
        """One request; its JSON body. :class:`ApiError` for another status than ``expect``
        or a transport failure (timeout, refused connection)."""
        try:
            if limit_seconds is None:
                reply = await self.client.request(method, path, json=json)
            else:
                reply = await self.client.request(method, path, json=json, timeout=limit_seconds)
        except httpx.HTTPError as e:
            raise ApiError(f"{method} {path} failed: {type(e).__name__} {e}") from e
        if reply.status_code != expect:
            raise ApiError(f"{method} {path} answered {reply.status_code}: {reply.text[:300]}")
        result: dict[str, Any] = reply.json()
        return result

    async def configure_smtp(self, host: str, port: int, *, connections: int) -> None:
        """Plain SMTP (security none, no auth) to ``host:port``, ``connections`` at once, no
        rate limits."""
        await self.call(
            "PUT",
            "/api/v1/smtp-settings",
            json={
                "host": host,
                "port": port,
                "security": "none",
                "sender_email": SENDER,
                "sender_name": "Bench Sales",
                "limits": {
                    "max_connections": connections,
                    "max_messages_per_connection": 10_000,
                },
            },
        )

    async def create_event(self, name: str = "Bench fair") -> str:
        event = await self.call(
            "POST",
            "/api/v1/events",
            expect=201,
            json={"name": name, "languages": ["en"], "questions": QUESTIONS, "status": "live"},
        )
        return str(event["id"])

    async def put_template(
        self, event_id: str, template: Mapping[str, Any] = FOLLOW_UP_TEMPLATE
    ) -> str:
        stored = await self.call(
            "PUT", f"/api/v1/events/{event_id}/templates/en", json=dict(template)
        )
        return str(stored["id"])

    async def put_mapping(self, document: Mapping[str, Any]) -> None:
        await self.call("PUT", "/api/v1/notification-mapping", json=dict(document))

    async def capture(self, body: Mapping[str, Any]) -> str:
        report = await self.call("POST", "/api/v1/reports", expect=201, json=dict(body))
        return str(report["id"])

    async def capture_many(
        self, event_id: str, count: int, *, run: str = "", in_flight: int = 16, **changes: Any
    ) -> list[str]:
        """Capture ``count`` reports (leads 0..count-1), ``in_flight`` requests at once;
        their ids in lead order."""
        ids: list[str] = [""] * count
        queue = iter(range(count))

        async def one_worker() -> None:
            for i in queue:
                ids[i] = await self.capture(report_body(event_id, i, run=run, **changes))

        await asyncio.gather(*(one_worker() for _ in range(min(in_flight, count) or 1)))
        return ids

    async def bulk_follow_up(self, report_ids: Sequence[str]) -> dict[str, int]:
        """One ``POST /api/v1/follow-ups/bulk``; its summary (status -> count). It may take
        long where each follow-up's cost grows with the history (``BULK_TIMEOUT``)."""
        reply = await self.call(
            "POST",
            "/api/v1/follow-ups/bulk",
            json={"report_ids": list(report_ids)},
            limit_seconds=BULK_TIMEOUT,
        )
        return {str(k): int(v) for k, v in reply["summary"].items()}

    async def message_counts(self) -> dict[str, int]:
        """The outbox's messages per status (the cheapest page: one item)."""
        reply = await self.call("GET", "/api/v1/messages?limit=1")
        return {str(k): int(v) for k, v in reply["counts"].items()}


@dataclass
class ApiServer:
    """A running ``visitmail serve`` with one organization; ``api`` is its admin."""

    kind: DatabaseKind
    base_url: str
    token: str
    organization_id: str
    database_url: str  # sqlite:///... or postgresql://... (as given to visitmail)
    workdir: Path
    process: asyncio.subprocess.Process
    client: httpx.AsyncClient
    api: Api
    env: dict[str, str] = field(repr=False, default_factory=dict)

    def log_tail(self, lines: int = 8) -> str:
        return log_tail(self.workdir / "serve.log", lines)


def server_env(database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of every ``visitmail`` command of one server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISITMAIL_")}
    env.update(
        {
            "VISITMAIL_DATABASE_URL": database_url,
            "VISITMAIL_VAR_DIR": str(var_dir),
            "VISITMAIL_SMTP_ALLOWED_NETWORKS": "127.0.0.0/8",
            "VISITMAIL_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


async def run_cli(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """Run ``visitmail ARGS``; its stdout, or :class:`ServerFailed` with its output."""
    process = await asyncio.create_subprocess_exec(
        str(visitmail_binary()),
        *args,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise ServerFailed(
            f"visitmail {' '.join(args[:2])} exited {process.returncode}: "
            f"{_tail(err.decode(errors='replace') or out.decode(errors='replace'))}"
        )
    return out.decode(errors="replace")


async def stop_process(process: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (or at once if the wait is cancelled);
    waits for the exit. Idempotent."""
    if process.returncode is not None:
        return
    try:
        process.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        pass
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_http_ready(
    url: str, process: asyncio.subprocess.Process, log: Path, within: float = START_TIMEOUT
) -> None:
    """Poll ``url`` until it answers 200; :class:`ServerFailed` if the process exits or the
    time runs out."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as probe:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise ServerFailed(f"the server exited with {process.returncode}: {log_tail(log)}")
            try:
                if (await probe.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise ServerFailed(f"no answer from {url} in {within:.0f} s")


async def start_process(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path
) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # the bench's Ctrl-C reaches it only through us
        )


@asynccontextmanager
async def visitmail_server(
    kind: DatabaseKind,
    progress: Progress | None = None,
    *,
    worker: bool = True,
    env: Mapping[str, str] | None = None,
    request_timeout: float = 120.0,
    max_connections: int = 100,
) -> AsyncIterator[ApiServer]:
    """A fresh database, migrated, one organization, ``visitmail serve`` running on it (with
    the in-process delivery worker unless ``worker`` is False). Raises
    :class:`bench.peers.base.PeerUnavailable` when PostgreSQL cannot be reached,
    :class:`ServerFailed` when visitmail does not come up."""
    workdir = Path(tempfile.mkdtemp(prefix="visitmail-bench-api-"))
    try:
        async with fresh_database(kind) as database_url:
            var_dir = workdir / "var"
            var_dir.mkdir()
            full_env = server_env(database_url, var_dir, **(env or {}))
            if progress:
                progress(f"  visitmail serve on {kind}: migrating, creating the organization")
            await run_cli(["migrate"], full_env, workdir)
            created = await run_cli(
                [
                    "org",
                    "create",
                    "Bench organization",
                    "--admin-email",
                    "admin@bench.example",
                    "--admin-name",
                    "Bench Admin",  # the signature the peers' templates use too
                ],
                full_env,
                workdir,
            )
            token_match, org_match = _TOKEN.search(created), _ORG.search(created)
            if token_match is None or org_match is None:
                raise ServerFailed(f"`visitmail org create` printed no token: {_tail(created)}")
            port = free_port()
            argv = [str(visitmail_binary()), "serve", "--host", HOST, "--port", str(port)]
            if not worker:
                argv.append("--no-worker")
            log = workdir / "serve.log"
            process = await start_process(argv, full_env, workdir, log)
            try:
                base_url = f"http://{HOST}:{port}"
                await wait_http_ready(f"{base_url}/healthz", process, log)
                limits = httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                )
                async with httpx.AsyncClient(
                    base_url=base_url,
                    headers={"Authorization": f"Bearer {token_match.group(1)}"},
                    timeout=request_timeout,
                    limits=limits,
                ) as client:
                    try:
                        yield ApiServer(
                            kind=kind,
                            base_url=base_url,
                            token=token_match.group(1),
                            organization_id=org_match.group(1),
                            database_url=database_url,
                            workdir=workdir,
                            process=process,
                            client=client,
                            api=Api(client),
                            env=full_env,
                        )
                    except Exception as e:
                        errors = server_errors(log)
                        if errors:
                            e.add_note(f"server log ({kind}): " + " / ".join(errors))
                        raise
            finally:
                await stop_process(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def wait_until_sent(
    api: Api,
    expected: int,
    *,
    stall: float,
    sink_count: Callable[[], int] | None = None,
    poll: float = 0.05,
) -> tuple[float, dict[str, int]]:
    """Wait until the outbox counts ``expected`` messages ``sent``; return the monotonic
    time that was first seen and the counts. ``sink_count`` (a callable returning the
    sink's count), when given, is polled first, so the API is asked only once a second
    until the sink has them all. Raises ``TimeoutError`` (with the last counts) when
    neither count moved for ``stall`` seconds, and ``RuntimeError`` as soon as a message
    failed, expired or was cancelled."""
    last_api = 0.0
    counts: dict[str, int] = {}
    progress: tuple[int, int] = (-1, -1)
    last_change = time.monotonic()
    while True:
        now = time.monotonic()
        at_sink_count = sink_count() if sink_count is not None else expected
        at_sink = at_sink_count >= expected
        if at_sink or now - last_api >= 1.0:
            counts = await api.message_counts()
            seen = time.monotonic()
            last_api = seen
            if counts.get("sent", 0) >= expected:
                return seen, counts
            if counts.get("failed", 0) or counts.get("expired", 0) or counts.get("cancelled", 0):
                raise RuntimeError(f"messages did not go out: {counts}")
        if (at_sink_count, counts.get("sent", 0)) != progress:
            progress, last_change = (at_sink_count, counts.get("sent", 0)), now
        elif now - last_change > stall:
            raise TimeoutError(
                f"not all {expected} messages sent, none for {stall:.0f} s: {counts}"
            )
        await asyncio.sleep(poll if at_sink else 0.01)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation; ``values`` not empty."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)
