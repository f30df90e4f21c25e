"""A timestamping SMTP sink for the ``latency`` scenario: aiosmtpd in its own process (so the
bench's client and the sink do not share a GIL) that accepts every message and appends one
line per message to an arrivals file: the wall-clock time (``time.time()``) at which the
final ``.`` of DATA arrived, just before the sink answers 250, then whether the message has
a PDF part (``1``/``0``), then its Subject. With ``--pdf-file``, the first PDF attachment it
sees is saved there (the Nodemailer peer attaches the same bytes).

Wall-clock time, not ``time.monotonic()``, because the triggers are timestamped in other
processes too (Node.js has no access to Python's monotonic clock); a run lasts seconds, so a
clock step is unlikely, and would show as absurd latencies.

Run: ``python -m bench.api_sink --arrivals-file F [--pdf-file P]``: prints ``port=N`` once
it listens on 127.0.0.1, runs until SIGTERM. :func:`start_timed_sink` does all this.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import IO

from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.api_harness import HOST, stop_process
from bench.sink import SinkUnavailable

_REPO_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT = 30.0


class TimestampingHandler:
    def __init__(self, arrivals: IO[str], pdf_file: Path | None) -> None:
        self._arrivals = arrivals
        self._pdf_file = pdf_file

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        arrived = time.time()
        content = envelope.original_content or b""
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(content)
        subject = str(headers.get("Subject", "")).replace("\n", " ")
        has_pdf = b"application/pdf" in content
        self._arrivals.write(f"{arrived:.6f} {int(has_pdf)} {subject}\n")
        self._arrivals.flush()
        if has_pdf and self._pdf_file is not None and not self._pdf_file.exists():
            message = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            for part in message.iter_attachments():
                payload = part.get_payload(decode=True)
                if part.get_content_type() == "application/pdf" and isinstance(payload, bytes):
                    self._pdf_file.write_bytes(payload)
                    break
        return "250 2.0.0 Ok: queued"


async def serve(arrivals: IO[str], pdf_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    handler = TimestampingHandler(arrivals, pdf_file)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bench-timed-sink", data_size_limit=None),
        host=HOST,
        port=0,
        backlog=1000,
    )
    print(f"port={server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


@dataclass(frozen=True)
class Arrival:
    at: float  # time.time() when the message's DATA was complete
    has_pdf: bool
    subject: str


@dataclass
class TimedSink:
    host: str
    port: int
    process: asyncio.subprocess.Process
    workdir: Path

    @property
    def pdf_file(self) -> Path:
        return self.workdir / "first.pdf"

    def arrivals(self) -> list[Arrival]:
        """Every message so far, in arrival order."""
        path = self.workdir / "arrivals"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(encoding="utf-8").splitlines():
            at, pdf, subject = [*line.split(" ", 2), "", ""][:3]
            found.append(Arrival(float(at), pdf == "1", subject))
        return found

    def count(self) -> int:
        path = self.workdir / "arrivals"
        return path.read_bytes().count(b"\n") if path.exists() else 0

    async def close(self) -> None:
        await stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


async def start_timed_sink() -> TimedSink:
    """Start the sink process; :class:`~bench.sink.SinkUnavailable` if it does not come up."""
    workdir = Path(tempfile.mkdtemp(prefix="visitmail-bench-timed-sink-"))
    argv = [sys.executable, "-m", "bench.api_sink", "--arrivals-file", str(workdir / "arrivals")]
    argv += ["--pdf-file", str(workdir / "first.pdf")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with (workdir / "stderr").open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), _START_TIMEOUT)
    except TimeoutError:
        line = b""
    if not line.startswith(b"port="):
        await stop_process(process)
        stderr = (workdir / "stderr").read_text(errors="replace").strip()
        shutil.rmtree(workdir, ignore_errors=True)
        raise SinkUnavailable(f"the timed aiosmtpd sink did not start: {stderr or 'no output'}")
    return TimedSink(HOST, int(line.strip().split(b"=")[1]), process, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arrivals-file", required=True)
    parser.add_argument("--pdf-file")
    args = parser.parse_args()
    with open(args.arrivals_file, "a", encoding="utf-8") as arrivals:
        asyncio.run(serve(arrivals, Path(args.pdf_file) if args.pdf_file else None))


if __name__ == "__main__":
    main()
