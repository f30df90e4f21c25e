"""A private, real Dovecot IMAP server for tests: IMAPS (implicit TLS) and IMAP with
STARTTLS, trustme certificates, password logins from a passwd-file, and Maildir mailboxes,
all on 127.0.0.1 and free ports, in one temporary directory.

Dovecot comes from Debian (``dovecot-imapd``, listed in scripts/system-packages.txt). It is
started in the foreground (``dovecot -F -c DIR/dovecot.conf``) and stopped by terminating
that process. Its master must start as root (it binds, then runs the login processes as
``dovenull`` and the mail processes as the mailbox owner); mail belongs to the ``postfix``
user so that a private Postfix (:mod:`tests.support.postfix_server`) can deliver into the
same Maildirs. The directory lives under /tmp with mode 0755 for the same reason.

Usage::

    with running_dovecot(ca=trustme.CA(), users={"sales@acme.example": "secret"}) as imap:
        imap.deliver("sales@acme.example", raw_bytes)   # as a local delivery agent would
        ...  # IMAPS to imap.host / imap.tls_port, or STARTTLS to imap.port

:class:`DovecotUnavailable` when this machine cannot run it (not root, package missing);
:class:`DovecotFailed` with the log for any other failure to start.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from tests.support.processes import free_port

HOST = "127.0.0.1"
MAIL_OWNER = "postfix"

_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = visitmail-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
ssl_min_protocol = TLSv1.2
{dh}
disable_plaintext_auth = yes
auth_mechanisms = plain login{oauth_mechanisms}
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{d}/mail/%d/%n
mail_uid = {uid}
mail_gid = {gid}
{oauth_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class DovecotUnavailable(RuntimeError):
    """This machine cannot run a private Dovecot (not root, or the package is missing)."""


class DovecotFailed(RuntimeError):
    """Dovecot is installed but the instance did not start; the message carries the log."""


@dataclass
class DovecotServer:
    host: str
    port: int  # IMAP, STARTTLS required before login
    tls_port: int  # IMAPS
    directory: Path
    ca_pem: str
    users: Mapping[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def maildir(self, user: str) -> Path:
        local, _, domain = user.partition("@")
        return self.directory / "mail" / domain / local

    def deliver(self, user: str, raw: bytes) -> Path:
        """Put ``raw`` into the user's INBOX as a delivery agent does (``tmp`` → ``new``)."""
        box = self.maildir(user)
        owner = pwd.getpwnam(MAIL_OWNER)
        for sub in ("tmp", "new", "cur"):
            path = box / sub
            path.mkdir(parents=True, exist_ok=True)
            for part in (box.parent, box, path):
                os.chown(part, owner.pw_uid, owner.pw_gid)
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.test"
        staged = box / "tmp" / name
        staged.write_bytes(raw)
        os.chown(staged, owner.pw_uid, owner.pw_gid)
        final = box / "new" / name
        staged.rename(final)
        return final

    def stored(self, user: str) -> int:
        """How many messages the user's INBOX holds (``new`` and ``cur``)."""
        box = self.maildir(user)
        return sum(
            len(list((box / sub).glob("*"))) for sub in ("new", "cur") if (box / sub).exists()
        )

    def empty(self, user: str) -> None:
        """Remove every message of the user's INBOX, as another mail client expunging them
        would: each test starts with an empty mailbox. Dovecot's index stays (removing it
        under a server that may still hold it open makes Dovecot report an internal error),
        so UIDs go on counting up within the same UIDVALIDITY."""
        box = self.maildir(user)
        for sub in ("new", "cur", "tmp"):
            for path in (box / sub).glob("*"):
                path.unlink()

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _check_machine() -> str:
    if os.geteuid() != 0:
        raise DovecotUnavailable("a private Dovecot needs root: its master binds the ports")
    binary = shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if binary is None:
        raise DovecotUnavailable("dovecot is missing: run `apt-get install -y dovecot-imapd`")
    for user in ("dovecot", "dovenull", MAIL_OWNER):
        try:
            pwd.getpwnam(user)
        except KeyError as e:
            raise DovecotUnavailable(f"there is no `{user}` user") from e
    return binary


def _listening(port: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


_OAUTH_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf.ext
}}
"""
_OAUTH_CONF = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def start_dovecot(
    *, ca: trustme.CA, users: Mapping[str, str], introspection_url: str | None = None
) -> DovecotServer:
    """Start a private Dovecot as described in the module docstring; the caller must call
    ``stop()`` (or use :func:`running_dovecot`). With ``introspection_url`` it also takes
    XOAUTH2 / OAUTHBEARER sign-ins and checks each token there (RFC 7662), as Microsoft's
    and Google's IMAP servers check theirs."""
    binary = _check_machine()
    owner = pwd.getpwnam(MAIL_OWNER)
    directory = Path(tempfile.mkdtemp(prefix="visitmail-dovecot-"))
    directory.chmod(0o755)
    server = DovecotServer(
        host=HOST,
        port=free_port(),
        tls_port=free_port(),
        directory=directory,
        ca_pem=ca.cert_pem.bytes().decode(),
        users=dict(users),
    )
    try:
        cert = ca.issue_cert(HOST, "localhost", "imap.example.org")
        cert.private_key_pem.write_to_path(str(directory / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
        (directory / "key.pem").chmod(0o600)
        (directory / "mail").mkdir()
        os.chown(directory / "mail", owner.pw_uid, owner.pw_gid)
        (directory / "users").write_text(
            "".join(f"{user}:{{PLAIN}}{password}\n" for user, password in users.items())
        )
        (directory / "users").chmod(0o644)
        dh = "/usr/share/dovecot/dh.pem"
        (directory / "dovecot.conf").write_text(
            _CONF.format(
                d=directory,
                port=server.port,
                tls_port=server.tls_port,
                uid=owner.pw_uid,
                gid=owner.pw_gid,
                dh=f"ssl_dh = <{dh}" if Path(dh).exists() else "",
                oauth_mechanisms=" xoauth2 oauthbearer" if introspection_url else "",
                oauth_passdb=_OAUTH_PASSDB.format(d=directory) if introspection_url else "",
            )
        )
        if introspection_url:
            (directory / "oauth2.conf.ext").write_text(_OAUTH_CONF.format(url=introspection_url))
        server.process = subprocess.Popen(
            [binary, "-F", "-c", str(directory / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "stderr.log", "wb"),  # noqa: SIM115 (lives with the process)
        )
        if not (_listening(server.port) and _listening(server.tls_port)):
            stderr = (directory / "stderr.log").read_text(errors="replace")
            raise DovecotFailed(f"Dovecot did not start:\n{stderr}\n{server.log()}")
        for user in users:
            # Owned by the mail user, as a delivery agent would leave them: Dovecot (running
            # as that user) must be able to create its index in an empty mailbox.
            box = server.maildir(user)
            for path in (box.parent, box, box / "new", box / "cur", box / "tmp"):
                path.mkdir(parents=True, exist_ok=True)
                os.chown(path, owner.pw_uid, owner.pw_gid)
        return server
    except BaseException:
        server.stop()
        raise


@contextmanager
def running_dovecot(
    *, ca: trustme.CA, users: Mapping[str, str], introspection_url: str | None = None
) -> Iterator[DovecotServer]:
    """``start_dovecot`` that always stops the instance and removes its directory; the
    calling test is skipped (with the reason) on a machine that cannot run Dovecot."""
    try:
        server = start_dovecot(ca=ca, users=users, introspection_url=introspection_url)
    except DovecotUnavailable as e:
        pytest.skip(f"no real Dovecot on this machine: {e}")
    try:
        yield server
    finally:
        server.stop()
