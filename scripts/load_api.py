# ruff: noqa: S603, ASYNC220, ASYNC221 - a measuring tool that starts its own processes
"""A small load script for the capture and export paths, against a real ``visitmail serve``.

It builds a throw-away installation (a SQLite file in a temporary directory, or a fresh
PostgreSQL database), migrates it, creates an organization, starts ``visitmail serve`` (with
its in-process worker) on a free port and an aiosmtpd sink in a thread, then measures:

* ``capture``: ``POST /api/v1/reports``, ``--requests`` of them with ``--concurrency`` in
  flight; prints reports/s and the request latency percentiles;
* ``latency``: exports at a steady ``--rate`` per second (each report exported once); the
  latency of each is from sending the export request to the sink accepting the notification
  (``X-Visitmail-Report`` names the report); with ``--pdf`` the mapping attaches the report PDF.

Usage::

    .venv/bin/python scripts/load_api.py capture --db sqlite
    .venv/bin/python scripts/load_api.py latency --db postgresql --rate 50 --count 500
    .venv/bin/python scripts/load_api.py latency --db sqlite --rate 20 --count 200 --pdf

A measuring tool, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

PG_BASE = os.environ.get("VISITMAIL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
VISITMAIL = str(Path(sys.executable).parent / "visitmail")
_REPORT = re.compile(rb"^x-visitmail-report:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)

QUESTIONS: list[dict[str, Any]] = [
    {"key": "interest", "label": {"de": "Interesse"}, "type": "text"},
    {"key": "budget", "label": {"de": "Budget"}, "type": "number"},
    {
        "key": "products",
        "label": {"de": "Produkte"},
        "type": "multi",
        "options": [{"key": "mail"}, {"key": "crm"}],
    },
    {"key": "call_back", "label": {"de": "Rückruf"}, "type": "bool"},
]


def report_body(event_id: str, n: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "lead": {
            "gender": "female",
            "first_name": "Anna",
            "last_name": f"Müller {n}",
            "company": "Müller GmbH",
            "email": f"anna.{n}@example.de",
            "zip": "10115",
            "city": "Berlin",
            "country": "de",
            "language": "de",
        },
        "answers": {"interest": "Mailing", "budget": 5000, "products": ["crm"], "call_back": True},
        "notes": "Met at booth 4.\nWants a demo.",
        "consent": {"follow_up_email": True, "marketing": False},
    }


class Arrivals:
    """aiosmtpd handler: the monotonic time each report's notification was accepted."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        found = _REPORT.search(content.split(b"\r\n\r\n", 1)[0])
        if found:
            with self.lock:
                self.at.setdefault(found.group(1).decode(), time.monotonic())
        return "250 OK"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``): on a shared machine
    the server's CPU per request is steadier than its wall-clock throughput."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(pid: int) -> subprocess.Popen[bytes] | None:
    """With ``LOAD_PYSPY=<file>``: py-spy records the server (collapsed stacks) until
    interrupted; py-spy must be installed (``pip install py-spy``)."""
    out = os.environ.get("LOAD_PYSPY")
    if not out:
        return None
    spy = str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "-p", str(pid), "-o", out, "-f", "raw", "-r", "200"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def make_database(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'visitmail.db'}", None
    name = f"vmload_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_BASE)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_BASE.rsplit("/", 1)[0] + "/" + name, name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_BASE)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def wait_up(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit("visitmail serve exited early")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("visitmail serve did not come up")


async def run_capture(
    client: httpx.AsyncClient, headers: dict[str, str], args: Any, pid: int
) -> None:
    event = await client.post(
        "/api/v1/events",
        headers=headers,
        json={"name": "Fair", "languages": ["de"], "questions": QUESTIONS, "status": "live"},
    )
    assert event.status_code == 201, event.text
    event_id = event.json()["id"]
    for i in range(20):  # warm up
        await client.post("/api/v1/reports", headers=headers, json=report_body(event_id, i))
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.requests):
        queue.put_nowait(i)

    async def one_lane() -> None:
        nonlocal errors
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            reply = await client.post(
                "/api/v1/reports", headers=headers, json=report_body(event_id, i)
            )
            latencies.append(time.perf_counter() - started)
            if reply.status_code != 201:
                errors += 1

    spy = profile(pid)
    started = time.perf_counter()
    cpu = cpu_seconds(pid)
    await asyncio.gather(*(one_lane() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    print(
        f"capture {args.db}: {args.requests} reports, {args.concurrency} in flight: "
        f"{args.requests / elapsed:.0f} reports/s; latency p50 {pct(latencies, 50) * 1000:.1f} ms "
        f"p99 {pct(latencies, 99) * 1000:.1f} ms; server CPU {cpu / args.requests * 1000:.2f} "
        f"ms/report; errors {errors}"
    )


async def run_latency(
    client: httpx.AsyncClient, headers: dict[str, str], args: Any, sink: Arrivals, sink_port: int
) -> None:
    smtp = {
        "host": "127.0.0.1",
        "port": sink_port,
        "security": "none",
        "sender_email": "sales@example.com",
        "sender_name": "Sales",
        "limits": {"max_connections": 4, "max_messages_per_connection": 1000},
    }
    reply = await client.put("/api/v1/smtp-settings", headers=headers, json=smtp)
    assert reply.status_code == 200, reply.text
    action: dict[str, Any] = {
        "to": ["team@acme.example"],
        "subject": "New lead: {{ lead.company }} ({{ lead.zip }} {{ lead.city }})",
        "body": "{{ salutation }},\n{{ lead.first_name }} {{ lead.last_name }} wants "
        "{{ answers.interest }}.\nCaptured by {{ reporter.name }}.",
    }
    if args.pdf:
        action["attach_pdf"] = True
    mapping = {
        "version": 1,
        "rules": [{"name": "All", "event": "*", "on": "exported", "actions": [{"email": action}]}],
    }
    reply = await client.put("/api/v1/notification-mapping", headers=headers, json=mapping)
    assert reply.status_code == 200, reply.text
    event = await client.post(
        "/api/v1/events",
        headers=headers,
        json={"name": "Fair", "languages": ["de"], "questions": QUESTIONS, "status": "live"},
    )
    assert event.status_code == 201, event.text
    event_id = event.json()["id"]
    ids: list[str] = []
    sem = asyncio.Semaphore(32)

    async def make(i: int) -> None:
        async with sem:
            reply = await client.post(
                "/api/v1/reports", headers=headers, json=report_body(event_id, i)
            )
            ids.append(reply.json()["id"])

    await asyncio.gather(*(make(i) for i in range(args.count + 10)))
    warm, measured = ids[:10], ids[10:]
    for report_id in warm:
        await client.post(f"/api/v1/reports/{report_id}/export", headers=headers)
    await asyncio.sleep(1.0)
    sent_at: dict[str, float] = {}
    request_ms: list[float] = []
    errors = 0

    async def export(report_id: str) -> None:
        nonlocal errors
        sent_at[report_id] = time.monotonic()
        reply = await client.post(f"/api/v1/reports/{report_id}/export", headers=headers)
        request_ms.append((time.monotonic() - sent_at[report_id]) * 1000)
        if reply.status_code != 200 or reply.json()["notifications"][0]["kind"] != "email":
            errors += 1

    tasks = []
    start = time.monotonic()
    for n, report_id in enumerate(measured):
        delay = start + n / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(export(report_id)))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with sink.lock:
            if all(r in sink.at for r in measured):
                break
        await asyncio.sleep(0.05)
    with sink.lock:
        lat = [(sink.at[r] - sent_at[r]) * 1000 for r in measured if r in sink.at]
    missing = len(measured) - len(lat)
    print(
        f"latency {args.db}{' +pdf' if args.pdf else ''}: {len(measured)} exports at "
        f"{args.rate}/s: export→accepted p50 {pct(lat, 50):.0f} ms p95 {pct(lat, 95):.0f} ms "
        f"p99 {pct(lat, 99):.0f} ms; request p50 {pct(request_ms, 50):.0f} ms "
        f"p99 {pct(request_ms, 99):.0f} ms; missing {missing}, errors {errors}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("mode", choices=["capture", "latency"])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--pdf", action="store_true")
    parser.add_argument("--no-worker", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vmload-"))
    url, pg_name = await make_database(args.db, tmp)
    env = {
        **os.environ,
        "VISITMAIL_DATABASE_URL": url,
        "VISITMAIL_VAR_DIR": str(tmp / "var"),
        "VISITMAIL_MASTER_KEYS": "k1:" + base64.urlsafe_b64encode(b"\x02" * 32).decode(),
        "VISITMAIL_SMTP_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    subprocess.run([VISITMAIL, "migrate"], env=env, check=True, capture_output=True)
    made = subprocess.run(
        [
            VISITMAIL,
            "org",
            "create",
            "Load",
            "--admin-email",
            "admin@load.example",
            "--admin-name",
            "Load Admin",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = re.search(r"api token:\s+(\S+)", made.stdout)
    assert token is not None, made.stdout
    headers = {"Authorization": f"Bearer {token.group(1)}"}

    sink = Arrivals()
    sink_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    port = free_port()
    command = [VISITMAIL, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if args.no_worker:
        command.append("--no-worker")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
        ) as client:
            await wait_up(client, proc)
            if args.mode == "capture":
                await run_capture(client, headers, args, proc.pid)
            else:
                await run_latency(client, headers, args, sink, sink_port)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        controller.stop()
        if pg_name is not None:
            await drop_database(pg_name)


if __name__ == "__main__":
    asyncio.run(main())
