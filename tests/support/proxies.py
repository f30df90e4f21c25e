"""Real proxies for tests, as subprocesses on loopback: tinyproxy (HTTP CONNECT, optionally
with Basic auth) and Dante's danted (SOCKS5). Both are Debian packages listed in
scripts/system-packages.txt.

Neither can listen on port 0 and report the port, so a free port is picked first and the
start is retried if another process took it in between. Config and logs live in a private
temporary directory; ``ProxyProcess.log()`` helps when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.support.processes import free_port

ProxyKindName = Literal["http", "socks5"]
HOST = "127.0.0.1"


class ProxyUnavailable(RuntimeError):
    """The proxy binary is missing or would not start."""


@dataclass
class ProxyProcess:
    kind: ProxyKindName
    host: str
    port: int
    username: str | None
    password: str | None
    process: subprocess.Popen[bytes]
    directory: Path

    def log(self) -> str:
        path = self.directory / "proxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            # danted forks helper processes: stop the whole session we started.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise ProxyUnavailable(
            f"{name} is not installed: run `apt-get install -y {package}` "
            "(listed in scripts/system-packages.txt)"
        )
    return path


def _wait_listening(process: subprocess.Popen[bytes], port: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _start(
    kind: ProxyKindName,
    directory: Path,
    command: list[str],
    config: str,
    port: int,
    credentials: tuple[str, str] | None,
) -> ProxyProcess | None:
    (directory / "proxy.conf").write_text(config)
    with (directory / "proxy.log").open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=directory
        )
    proxy = ProxyProcess(
        kind=kind,
        host=HOST,
        port=port,
        username=credentials[0] if credentials else None,
        password=credentials[1] if credentials else None,
        process=process,
        directory=directory,
    )
    if _wait_listening(process, port):
        return proxy
    proxy.stop()
    return None


def start_tinyproxy(directory: Path, *, credentials: tuple[str, str] | None = None) -> ProxyProcess:
    """tinyproxy as an HTTP CONNECT proxy on 127.0.0.1 (any destination port allowed)."""
    binary = _binary("tinyproxy", "tinyproxy")
    for _ in range(3):
        port = free_port()
        lines = [
            f"Port {port}",
            f"Listen {HOST}",
            "Timeout 15",
            "MaxClients 20",
            "Allow 127.0.0.1",
            "LogLevel Info",
            # No ConnectPort line: CONNECT to any port (the SMTP servers use ephemeral ports).
        ]
        if credentials:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        config = "\n".join(lines) + "\n"
        command = [binary, "-d", "-c", str(directory / "proxy.conf")]
        proxy = _start("http", directory, command, config, port, credentials)
        if proxy is not None:
            return proxy
    raise ProxyUnavailable(f"tinyproxy did not start; see {directory / 'proxy.log'}")


def start_danted(directory: Path) -> ProxyProcess:
    """Dante (danted) as a SOCKS5 proxy on 127.0.0.1 without authentication. It resolves
    host names itself, so it serves the remote-DNS case too."""
    binary = _binary("danted", "dante-server")
    for _ in range(3):
        port = free_port()
        lines = [
            "logoutput: stderr",
            f"internal: {HOST} port = {port}",
            f"external: {HOST}",
            "clientmethod: none",
            "socksmethod: none",
        ]
        if os.geteuid() == 0:  # danted insists on dropping privileges when started as root
            lines += ["user.privileged: root", "user.unprivileged: nobody"]
        # Rules come after the server settings (danted refuses them in any other order).
        lines += [
            "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
            # Log each connection, so tests can see what went through the proxy.
            "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 log: connect }",
        ]
        config = "\n".join(lines) + "\n"
        command = [
            binary,
            "-f",
            str(directory / "proxy.conf"),
            "-p",
            str(directory / "danted.pid"),
            "-N",
            "1",
        ]
        proxy = _start("socks5", directory, command, config, port, None)
        if proxy is not None:
            return proxy
    raise ProxyUnavailable(f"danted did not start; see {directory / 'proxy.log'}")
