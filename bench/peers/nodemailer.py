"""``nodemailer``: the peer visitmail is compared with.

Runs ``bench/nodemailer/send.js`` in Node.js: Nodemailer's SMTP transport with
``pool: true``, ``maxConnections`` = K and unlimited messages per connection, all N
``sendMail`` calls in flight at once (``Promise.all``). The script times itself, from the
first ``sendMail`` to the last accepted message, so Node's start-up and reading the messages
file are not in the number.

Two variants: ``nodemailer`` opens its sockets with TCP_NODELAY (through Nodemailer's public
``getSocket`` hook), the same socket option asyncio gives the Python peers; it is the
baseline of the ratios, Nodemailer at its best. ``nodemailer-default`` is Nodemailer as
shipped, with Nagle's algorithm on: its final ``.`` waits for the server's delayed ACK
(~40 ms on Linux), so on loopback it manages only ~25 messages/s per connection. Comparing
with that would flatter every other peer by an order of magnitude.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from bench.peers.base import PeerResult, PeerUnavailable, RunContext
from bench.workload import Workload

PROJECT_DIR = Path(__file__).resolve().parent.parent / "nodemailer"
SCRIPT = PROJECT_DIR / "send.js"
MIN_NODE_MAJOR = 18
NPM_CI_TIMEOUT = 600.0


class NodemailerRunError(RuntimeError):
    """The Node.js script failed; the message holds its exit code and stderr's tail."""


def _tail(text: bytes, lines: int = 5) -> str:
    return " | ".join(text.decode(errors="replace").strip().splitlines()[-lines:])


async def _run(argv: list[str], cwd: Path, limit_seconds: float | None) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit_seconds)
    except BaseException:  # a timeout or the runner's cancellation: leave no process behind
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout, stderr


class NodemailerPeer:
    """Nodemailer's pooled SMTP transport in a Node.js subprocess; ``nodelay`` chooses the
    variant (see the module's docstring)."""

    needs_database = False

    def __init__(self, *, nodelay: bool = True) -> None:
        self.nodelay = nodelay
        self.name = "nodemailer" if nodelay else "nodemailer-default"
        self._node: str | None = None

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        """Find Node.js (>= 18) and install the pinned Nodemailer with ``npm ci`` if
        ``node_modules`` is missing."""
        node = shutil.which("node")
        if node is None:
            raise PeerUnavailable("Node.js is not installed (no `node` on PATH)")
        code, out, err = await _run([node, "--version"], PROJECT_DIR, 30)
        node_version = out.decode().strip()
        try:
            major = int(node_version.lstrip("v").split(".")[0])
        except ValueError:
            raise PeerUnavailable(f"cannot read Node.js's version: {_tail(out + err)}") from None
        if code != 0 or major < MIN_NODE_MAJOR:
            raise PeerUnavailable(f"Node.js {node_version} is too old (need >= {MIN_NODE_MAJOR})")
        installed = PROJECT_DIR / "node_modules" / "nodemailer" / "package.json"
        if not installed.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise PeerUnavailable("npm is not installed; cannot install Nodemailer")
            code, out, err = await _run(
                [npm, "ci", "--no-audit", "--no-fund"], PROJECT_DIR, NPM_CI_TIMEOUT
            )
            if code != 0 or not installed.exists():
                raise PeerUnavailable(f"`npm ci` failed in {PROJECT_DIR}: {_tail(err or out)}")
        package = json.loads(installed.read_text(encoding="utf-8"))
        self._node = node
        return {"node": node_version, "nodemailer": str(package["version"])}

    async def run(self, ctx: RunContext) -> PeerResult:
        if self._node is None:
            raise RuntimeError("prepare() must run first")
        argv = [self._node, str(SCRIPT), "--host", ctx.sink_host, "--port", str(ctx.sink_port)]
        argv += ["--connections", str(ctx.connections)]
        argv += ["--messages", str(ctx.workload.json_file())]
        argv += ["--nodelay", "1" if self.nodelay else "0"]
        code, out, err = await _run(argv, PROJECT_DIR, None)
        if code != 0:
            raise NodemailerRunError(f"send.js exited with {code}: {_tail(err)}")
        try:
            report = json.loads(out.decode().strip().splitlines()[-1])
        except (IndexError, ValueError) as e:
            raise NodemailerRunError(f"send.js printed no JSON result: {_tail(out)}") from e
        details = {"nodemailer": str(report.get("nodemailer"))}
        if report.get("error"):
            details["first_error"] = str(report["error"])
        return PeerResult(
            sent=int(report["sent"]), seconds=float(report["seconds"]), details=details
        )
