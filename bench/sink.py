"""The SMTP sink every peer sends to: a separate process on 127.0.0.1, an ephemeral port,
that accepts every message and counts it.

The sink is Postfix's ``smtp-sink`` (Debian package ``postfix``): a small C server, fast
enough that it never is the bottleneck, so a run measures the sender. If it is not
installed, a subprocess running aiosmtpd (``bench.aiosmtpd_sink``) stands in; the report
names which sink ran, because the two are not equally fast.

Counting costs the peers nothing: the sink writes its counters to a file (``smtp-sink -c``
prints ``sess=.. quit=.. mesg=N`` after every message) that is read only after a peer has
finished. With ``record_message_ids`` the sink also keeps every message (``smtp-sink -D``,
one dump file), so the runner can check that each Message-ID arrived exactly once.

Usage::

    sink = await start_sink()
    ...  # send to sink.host / sink.port
    received = await sink.wait_for_count(n, timeout=5)
    await sink.stop()
    ids = sink.message_ids()
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SinkKind = Literal["auto", "smtp-sink", "aiosmtpd"]

HOST = "127.0.0.1"
SMTP_SINK_CANDIDATES = ("/usr/sbin/smtp-sink", "/usr/bin/smtp-sink")
_COUNT = re.compile(rb"mesg=(\d+)")
_PORT = re.compile(rb"port=(\d+)")
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
_START_ATTEMPTS = 5
_TAIL_BYTES = 4096  # the last counter line is in here
_START_TIMEOUT = 10.0
_REPO_ROOT = Path(__file__).resolve().parent.parent  # so `-m bench.aiosmtpd_sink` imports


class SinkUnavailable(RuntimeError):
    """No sink could be started; the message says why."""


def find_smtp_sink() -> str | None:
    """The path of Postfix's smtp-sink, or None if it is not installed."""
    for candidate in SMTP_SINK_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("smtp-sink")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Sink:
    """A running sink process. ``kind`` is ``smtp-sink`` or ``aiosmtpd``."""

    kind: str
    host: str
    port: int
    process: asyncio.subprocess.Process
    workdir: Path
    counter_path: Path
    dump_path: Path | None
    _stopped: bool = field(default=False, repr=False)

    def received(self) -> int:
        """Messages accepted so far (the last counter the sink wrote). Reads only the
        file's tail: the counter file grows by a line per message, and this is polled
        while a peer under measurement shares the CPU."""
        with self.counter_path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - _TAIL_BYTES))
            data = f.read()
        counts = _COUNT.findall(data)
        return int(counts[-1]) if counts else 0

    async def wait_for_count(self, expected: int, within: float, settle: float = 0.05) -> int:
        """Wait until the sink has accepted ``expected`` messages or ``within`` seconds pass, then
        ``settle`` more seconds (so a surplus, i.e. duplicates, shows too). Return the count."""
        deadline = time.monotonic() + within
        # The counter is a file another process writes: polling it is the only way to wait.
        while self.received() < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(settle)
        return self.received()

    async def stop(self) -> None:
        """Terminate the sink and wait for it; idempotent. The counter and dump files stay
        readable until ``cleanup``."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def message_ids(self) -> list[str]:
        """Every Message-ID the sink received, in arrival order, duplicates kept. Needs
        ``record_message_ids=True``; read it after ``stop`` so every dump is complete.

        The bench's own messages put ``Message-ID`` only in the header, so a line-start
        match over the dump is exact for them."""
        if self.dump_path is None:
            raise RuntimeError("this sink was started without record_message_ids")
        if not self.dump_path.exists():
            return []
        return [
            m.decode("ascii", "replace") for m in _MESSAGE_ID.findall(self.dump_path.read_bytes())
        ]

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def close(self) -> None:
        """``stop`` and ``cleanup``."""
        await self.stop()
        self.cleanup()


def _make_workdir() -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="visitmail-bench-sink-"))
    if os.geteuid() == 0:
        # smtp-sink drops to `nobody` before it opens its dump file.
        nobody = pwd.getpwnam("nobody")
        os.chown(workdir, nobody.pw_uid, nobody.pw_gid)
    return workdir


async def _wait_listening(process: asyncio.subprocess.Process, port: int) -> bool:
    """True once ``port`` accepts connections; False if the process exits first."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            return False
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False


async def _start_smtp_sink(binary: str, record_message_ids: bool) -> Sink:
    last_error = ""
    for _ in range(_START_ATTEMPTS):
        workdir = _make_workdir()
        counter_path = workdir / "counters"
        dump_path = workdir / "dump" if record_message_ids else None
        port = _free_port()
        argv = [binary, "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # required by smtp-sink when started as root
        if dump_path is not None:
            argv += ["-D", str(dump_path)]
        argv += [f"{HOST}:{port}", "1000"]
        with counter_path.open("wb") as counter, (workdir / "stderr").open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=counter, stderr=err
            )
        if await _wait_listening(process, port):
            return Sink("smtp-sink", HOST, port, process, workdir, counter_path, dump_path)
        if process.returncode is None:
            process.kill()
        await process.wait()
        last_error = (workdir / "stderr").read_text(errors="replace").strip()
        shutil.rmtree(workdir, ignore_errors=True)
        if "in use" not in last_error:  # a port race is retried; anything else is fatal
            break
    raise SinkUnavailable(f"smtp-sink did not start: {last_error or 'no output'}")


async def _start_aiosmtpd_sink(record_message_ids: bool) -> Sink:
    workdir = _make_workdir()
    counter_path = workdir / "counters"
    dump_path = workdir / "message-ids" if record_message_ids else None
    argv = [sys.executable, "-m", "bench.aiosmtpd_sink", "--host", HOST, "--port", "0"]
    argv += ["--counter-file", str(counter_path)]
    if dump_path is not None:
        argv += ["--ids-file", str(dump_path)]
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
        )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), _START_TIMEOUT)
    except TimeoutError:
        line = b""
    match = _PORT.search(line)
    if match is None:
        if process.returncode is None:
            process.kill()
        await process.wait()
        stderr = (workdir / "stderr").read_text(errors="replace").strip()
        shutil.rmtree(workdir, ignore_errors=True)
        raise SinkUnavailable(f"aiosmtpd sink did not start: {stderr or 'no output'}")
    return Sink("aiosmtpd", HOST, int(match.group(1)), process, workdir, counter_path, dump_path)


async def start_sink(kind: SinkKind = "auto", *, record_message_ids: bool = False) -> Sink:
    """Start a fresh sink. ``auto`` means smtp-sink, or aiosmtpd only if smtp-sink is not
    installed. Raises ``SinkUnavailable``."""
    if kind in ("auto", "smtp-sink"):
        binary = find_smtp_sink()
        if binary is not None:
            return await _start_smtp_sink(binary, record_message_ids)
        if kind == "smtp-sink":
            raise SinkUnavailable("smtp-sink is not installed (Debian package postfix)")
    return await _start_aiosmtpd_sink(record_message_ids)
