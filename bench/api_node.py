"""Running the Node.js peers of the API scenarios (``bench/nodemailer/bulk.js`` and
``steady.js``): find Node.js >= 18, install the pinned Nodemailer with ``npm ci`` when
``node_modules`` is missing, hand a script its job as a JSON file and read the one JSON line
it prints."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.peers.base import PeerUnavailable
from bench.peers.nodemailer import MIN_NODE_MAJOR, NPM_CI_TIMEOUT, PROJECT_DIR


class NodeScriptFailed(RuntimeError):
    """A Node.js script exited non-zero or printed no JSON; the message has stderr's tail."""


def _tail(data: bytes, lines: int = 5) -> str:
    return " | ".join(data.decode(errors="replace").strip().splitlines()[-lines:])


async def _run(argv: list[str], limit: float | None) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=PROJECT_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), limit)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out, err


async def ensure_node() -> str:
    """The path of ``node`` with Nodemailer installed; :class:`PeerUnavailable` if not
    possible here."""
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("Node.js is not installed (no `node` on PATH)")
    _, out, _ = await _run([node, "--version"], 30)
    try:
        major = int(out.decode().strip().lstrip("v").split(".")[0])
    except ValueError:
        raise PeerUnavailable(f"cannot read Node.js's version: {_tail(out)}") from None
    if major < MIN_NODE_MAJOR:
        raise PeerUnavailable(f"Node.js {out.decode().strip()} is too old")
    if not (PROJECT_DIR / "node_modules" / "nodemailer" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise PeerUnavailable("npm is not installed; cannot install Nodemailer")
        code, out, err = await _run([npm, "ci", "--no-audit", "--no-fund"], NPM_CI_TIMEOUT)
        if code != 0:
            raise PeerUnavailable(f"`npm ci` failed in {PROJECT_DIR}: {_tail(err or out)}")
    return node


async def run_script(
    node: str, script: str, job: dict[str, Any], limit: float | None = None
) -> dict[str, Any]:
    """Run ``bench/nodemailer/<script>`` with ``job`` as its JSON job file; its result."""
    with tempfile.TemporaryDirectory(prefix="visitmail-bench-node-") as directory:
        job_file = Path(directory) / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        code, out, err = await _run([node, str(PROJECT_DIR / script), str(job_file)], limit)
    if code != 0:
        raise NodeScriptFailed(f"{script} exited with {code}: {_tail(err)}")
    try:
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, ValueError) as e:
        raise NodeScriptFailed(f"{script} printed no JSON result: {_tail(out)}") from e
    return result
