"""The ``visitmail`` command as an operator runs it: real subprocesses, both databases."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import smtplib
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.databases import create_postgres_database, drop_postgres_database, sqlite_url
from tests.support.processes import VISITMAIL, cli_env, free_port, run_cli
from visitmail.config import Settings
from visitmail.runtime import build_runtime


@pytest.fixture
async def fresh_url(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
        return
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


def test_migrate_then_org_create_prints_id_password_and_working_token(
    fresh_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, fresh_url)
    migrated = run_cli(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "database is at revision" in migrated.stdout

    created = run_cli(
        ["org", "create", "Fair Team", "--admin-email", "Boss@Example.com"], env, tmp_path
    )
    assert created.returncode == 0, created.stderr
    org_id = re.search(r"organization id:\s+([0-9a-f-]{36})", created.stdout)
    password = re.search(r"initial password:\s+(\S+)", created.stdout)
    token = re.search(r"api token:\s+(vm_\S+)", created.stdout)
    assert org_id and password and token
    assert "boss@example.com" in created.stdout

    key_file = tmp_path / "var" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "master key file" in migrated.stderr  # said so on first start

    again = run_cli(["org", "create", "Other", "--admin-email", "boss@example.com"], env, tmp_path)
    assert again.returncode == 1
    assert "admin_email" in again.stderr and "already exists" in again.stderr


def test_bad_configuration_is_refused_with_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path, None, VISITMAIL_PORT="not-a-port")
    reply = run_cli(["migrate"], env, tmp_path)
    assert reply.returncode == 2
    lines = [line for line in reply.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("configuration error: VISITMAIL_PORT")


def test_broken_key_file_is_refused_without_printing_key_material(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "master.key").write_text("k1:c2VjcmV0LXRvby1zaG9ydA==\n")
    reply = run_cli(["migrate"], cli_env(tmp_path), tmp_path)
    assert reply.returncode == 2
    assert "not a 32-byte key" in reply.stderr
    assert "c2VjcmV0" not in reply.stderr


def test_unknown_database_driver_is_refused(tmp_path: Path) -> None:
    reply = run_cli(["migrate"], cli_env(tmp_path, "mysql://x@y/z"), tmp_path)
    assert reply.returncode == 2
    assert "VISITMAIL_DATABASE_URL" in reply.stderr


def test_serve_with_dev_inbox_creates_demo_login_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path, sqlite_url(tmp_path))
    proc = subprocess.Popen(
        [*VISITMAIL, "serve", "--dev-inbox", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts slowly; a quiet one in ~2 s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("visitmail serve did not answer /healthz")
        login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert login.status_code == 200 and "Log in" in login.text
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    assert "log in at" in output
    assert "admin@example.com" in output
    assert re.search(r"password:\s+\S{5}-\S{5}-\S{5}-\S{5}", output)


def test_serve_keeps_what_it_creates_private_whatever_the_umask(tmp_path: Path) -> None:
    """A fresh var dir made by ``serve --dev-inbox`` on the default SQLite database: the
    directories are 0700 and the database (with -wal and -shm), the master key and the
    received mail 0600, though the umask would let everyone read and write them."""
    port, inbox_port = free_port(), free_port()
    env = cli_env(tmp_path, VISITMAIL_DEV_INBOX_PORT=str(inbox_port))
    proc = subprocess.Popen(
        [*VISITMAIL, "serve", "--dev-inbox", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        umask=0,
    )
    var = tmp_path / "var"
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts slowly; a quiet one in ~2 s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("visitmail serve did not answer /healthz")
        with smtplib.SMTP("127.0.0.1", inbox_port, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["lead@example.org"], b"Subject: x\r\n\r\nlead data\r\n")
        modes = {
            p.relative_to(var).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in [var, *var.rglob("*")]
        }
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    assert "dev inbox" in output
    (mail,) = [name for name in modes if name.startswith("dev-inbox/")]
    expected = {
        ".": 0o700,
        "visitmail.db": 0o600,
        "visitmail.db-wal": 0o600,
        "visitmail.db-shm": 0o600,
        "master.key": 0o600,
        "dev-inbox": 0o700,
        mail: 0o600,
    }
    assert {name: oct(mode) for name, mode in modes.items()} == {
        name: oct(mode) for name, mode in expected.items()
    }


async def admin_name(url: str, tmp_path: Path, email: str) -> str:
    """The display name stored for the user ``email``, read through the repositories."""
    runtime = build_runtime(
        Settings(database_url=url, var_dir=tmp_path / "var"), create_key=False, fast_hashing=True
    )
    try:
        async with runtime.uow(read_only=True) as uow:
            found = await uow.users.find_for_login(email)
    finally:
        await runtime.close()
    assert found is not None
    return found[0].display_name


async def test_org_create_takes_the_admins_name(fresh_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, fresh_url)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    argv = ["org", "create", "Fair Team", "--admin-email", "bea@example.com"]
    created = run_cli([*argv, "--admin-name", " Bea Boss "], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert re.search(r"admin name:\s+Bea Boss$", created.stdout, re.M)
    assert re.search(r"api token:\s+vm_\S+", created.stdout)
    assert "warning" not in created.stderr
    assert await admin_name(fresh_url, tmp_path, "bea@example.com") == "Bea Boss"

    for bad in ("", "Bea\u2028Boss"):
        refused = run_cli(
            ["org", "create", "Other", "--admin-email", "x@example.com", "--admin-name", bad],
            env,
            tmp_path,
        )
        assert refused.returncode == 1, bad
        assert "error (admin_name): " in refused.stderr, refused.stderr
        assert "organization id" not in refused.stdout


async def test_org_create_without_a_name_warns_and_keeps_the_contract(
    fresh_url: str, tmp_path: Path
) -> None:
    """No terminal (a script, stdin not a TTY): created as before, with a warning."""
    env = cli_env(tmp_path, fresh_url)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    created = run_cli(
        ["org", "create", "Fair Team", "--admin-email", "ops@example.com"], env, tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert re.search(r"organization id:\s+[0-9a-f-]{36}", created.stdout)
    assert "warning: no --admin-name given" in created.stderr
    assert "organization's name" in created.stderr
    assert await admin_name(fresh_url, tmp_path, "ops@example.com") == "ops"  # the placeholder


def on_a_terminal(
    args: list[str], env: dict[str, str], cwd: Path, typed: str
) -> subprocess.CompletedProcess[str]:
    """Run ``visitmail args`` with a pseudo-terminal as stdin, ``typed`` typed into it."""
    leader, follower = pty.openpty()
    try:
        with subprocess.Popen(
            [*VISITMAIL, *args],
            env=env,
            cwd=cwd,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            os.write(leader, typed.encode())
            stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


async def test_org_create_asks_for_the_name_on_a_terminal(fresh_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, fresh_url)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    argv = ["org", "create", "Fair Team", "--admin-email", "tty@example.com"]
    # a refused name is asked again; the second answer is taken
    done = await asyncio.to_thread(on_a_terminal, argv, env, tmp_path, "Tina\x85\nTina Terminal\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("The admin's name") == 2
    assert "control characters" in done.stdout
    assert re.search(r"admin name:\s+Tina Terminal$", done.stdout, re.M)
    assert "warning" not in done.stderr
    assert await admin_name(fresh_url, tmp_path, "tty@example.com") == "Tina Terminal"
