"""A private, real Postfix submission server for tests: STARTTLS with a trustme certificate,
Cyrus SASL (PLAIN, LOGIN) against a sasldb, and ``reject_sender_login_mismatch`` with
``smtpd_sender_login_maps``, on 127.0.0.1 and a free port. Accepted mail is discarded.

Postfix and Cyrus SASL come from Debian (``postfix``, ``sasl2-bin``, ``libsasl2-modules``,
listed in scripts/system-packages.txt). Everything lives in one temporary directory:

- ``etc/``: ``main.cf`` and ``master.cf`` (the instance's ``config_directory``), the server
  key and certificate chain, and ``etc/sasl/`` with ``smtpd.conf`` and the sasldb. Debian's
  Postfix looks for ``smtpd.conf`` in ``$config_directory/sasl`` (not in
  ``cyrus_sasl_config_path``), so the SASL directory lives there and
  ``cyrus_sasl_config_path`` names it too.
- ``spool/``: ``queue_directory``; ``data/``: ``data_directory``; ``maillog``: the log
  (``maillog_file`` through ``postlogd``, since there may be no syslog).

The instance is started with ``postfix -c DIR start`` and stopped with ``postfix -c DIR
stop``. Nothing under /etc/postfix or /var/spool/postfix is read or written except
Postfix's own read-only files there (``postfix-files``, ``dynamicmaps.cf``): as root,
``postfix -c`` accepts a config directory that is not listed in
``alternate_config_directories`` (that list only guards the set-gid programs), and no
``multi_instance_*`` setting is needed because this instance is never managed by
``postmulti``.

Postfix's master must start as root (it binds the port, then its daemons drop to the
``postfix`` user). The directory is created under /tmp with mode 0755 rather than under
pytest's per-user base directory (mode 0700), because the daemons, running as ``postfix``,
open the sasldb and the data directory by absolute path.

Usage::

    with running_postfix(ca=trustme.CA(), accounts=[PostfixAccount(...)]) as server:
        ...  # STARTTLS to server.host / server.port, trust server.ca_pem, AUTH as
        # account.login; server.log() shows what Postfix did.

``start_postfix`` raises :class:`PostfixUnavailable` when this machine cannot run Postfix
(not root, or a package missing), with the reason; any other failure to start raises
:class:`PostfixFailed` with the log, so a broken configuration is never mistaken for a
missing package.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.support.processes import free_port

HOST = "127.0.0.1"
REALM = "example.org"
SERVER_NAMES = ("127.0.0.1", "localhost", "mail.example.org")
_SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
# Postfix daemons that a submission-only instance needs; every one runs outside a chroot.
_MASTER_CF = """\
# service    type  private unpriv chroot wakeup maxproc command
{listen}     inet  n       -      n      -      -       smtpd
pickup       unix  n       -      n      60     1       pickup
cleanup      unix  n       -      n      -      0       cleanup
qmgr         unix  n       -      n      300    1       qmgr
tlsmgr       unix  -       -      n      1000?  1       tlsmgr
rewrite      unix  -       -      n      -      -       trivial-rewrite
bounce       unix  -       -      n      -      0       bounce
defer        unix  -       -      n      -      0       bounce
trace        unix  -       -      n      -      0       bounce
verify       unix  -       -      n      -      1       verify
flush        unix  n       -      n      1000?  0       flush
proxymap     unix  -       -      n      -      -       proxymap
anvil        unix  -       -      n      -      1       anvil
scache       unix  -       -      n      -      1       scache
showq        unix  n       -      n      -      -       showq
virtual      unix  -       n      n      -      -       virtual
error        unix  -       -      n      -      -       error
error        unix  -       -      n      -      -       error
retry        unix  -       -      n      -      -       error
discard      unix  -       -      n      -      -       discard
postlog      unix-dgram n  -      n      -      1       postlogd
"""


class PostfixUnavailable(RuntimeError):
    """This machine cannot run a private Postfix (not root, or a package is missing)."""


class PostfixFailed(RuntimeError):
    """Postfix is installed but the instance did not start; the message carries the log."""


@dataclass(frozen=True)
class PostfixAccount:
    """A SASL login (``user@realm``, e.g. ``alice@example.org``), its password, and the
    envelope senders it owns in ``smtpd_sender_login_maps``."""

    login: str
    password: str
    may_send_as: tuple[str, ...]


@dataclass(frozen=True)
class LocalMail:
    """Mail this Postfix delivers itself instead of discarding: ``domains`` are its own
    (virtual mailbox domains), ``mailboxes`` the addresses that exist there, stored as
    Maildirs under ``base`` (``base/<domain>/<local part>/``: where a private Dovecot,
    tests/support/dovecot_server.py, reads them). Mail to any other address of those
    domains is accepted at RCPT TO (``smtpd_reject_unlisted_recipient = no``) and then
    *bounced*: Postfix sends its DSN to the envelope sender, as a relay that says 250 first
    and fails later does."""

    base: Path
    domains: tuple[str, ...]
    mailboxes: tuple[str, ...]


@dataclass
class PostfixServer:
    host: str
    port: int
    directory: Path
    ca_pem: str

    @property
    def config_directory(self) -> Path:
        return self.directory / "etc"

    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, text: str, seconds: float = 10.0) -> str:
        """The log once it contains ``text`` (Postfix logs through a datagram socket, so a
        line can arrive a moment after the SMTP reply). Raises AssertionError with the log
        if it never does."""
        deadline = time.monotonic() + seconds
        while True:
            log = self.log()
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the Postfix log:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the instance (``postfix stop`` waits for the master, then kills it by
        force after 5 s) and remove its directory. Safe to call twice."""
        if (self.directory / "spool" / "pid" / "master.pid").exists():
            _postfix(self.config_directory, "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=_SBIN)
    if path is None:
        raise PostfixUnavailable(
            f"{name} is not installed: run `apt-get install -y {package}` "
            "(listed in scripts/system-packages.txt)"
        )
    return path


def _postfix(config_directory: Path, command: str, *, check: bool) -> str:
    done = subprocess.run(
        [_binary("postfix", "postfix"), "-c", str(config_directory), command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    if check and done.returncode != 0:
        raise PostfixFailed(f"postfix {command} exited {done.returncode}: {output}")
    return output


def _check_machine() -> None:
    if os.geteuid() != 0:
        raise PostfixUnavailable(
            "a private Postfix needs root: its master binds the port and starts its "
            "daemons as the postfix user"
        )
    _binary("postfix", "postfix")
    _binary("saslpasswd2", "sasl2-bin")
    plugins = [
        *Path("/usr/lib").glob("*/sasl2/libsasldb.so*"),
        *Path("/usr/lib").glob("sasl2/libsasldb.so*"),
    ]
    if not plugins:
        raise PostfixUnavailable(
            "the Cyrus SASL sasldb plugin is missing: run "
            "`apt-get install -y libsasl2-modules libsasl2-modules-db`"
        )
    try:
        pwd.getpwnam("postfix")
    except KeyError as e:
        raise PostfixUnavailable("there is no `postfix` user: reinstall the postfix package") from e


def _local_mail_cf(local: LocalMail) -> dict[str, object]:
    postfix = pwd.getpwnam("postfix")
    boxes = ", ".join(
        f"{address}={address.partition('@')[2]}/{address.partition('@')[0]}/"
        for address in local.mailboxes
    )
    return {
        "virtual_mailbox_domains": ", ".join(local.domains),
        "virtual_mailbox_base": local.base,
        "virtual_mailbox_maps": f"inline:{{ {boxes} }}",
        "virtual_transport": "virtual",
        "virtual_uid_maps": f"static:{postfix.pw_uid}",
        "virtual_gid_maps": f"static:{postfix.pw_gid}",
        "virtual_minimum_uid": 1,
        "smtpd_reject_unlisted_recipient": "no",
        # The DSN is for the envelope sender only, without the original's body.
        "bounce_notice_recipient": "postmaster",
        "notify_classes": "",
    }


def _main_cf(
    directory: Path, accounts: Sequence[PostfixAccount], local: LocalMail | None = None
) -> str:
    etc = directory / "etc"
    owners = ", ".join(
        f"{sender}={account.login}" for account in accounts for sender in account.may_send_as
    )
    settings = {
        "compatibility_level": "3.6",
        "config_directory": etc,
        "queue_directory": directory / "spool",
        "data_directory": directory / "data",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "maillog_file": directory / "maillog",
        "maillog_file_prefixes": directory,
        "myhostname": "mail.example.org",
        "mydomain": REALM,
        "myorigin": REALM,
        "mydestination": "",
        "alias_maps": "",
        "alias_database": "",
        "inet_interfaces": HOST,
        "inet_protocols": "ipv4",
        # Not loopback: every permission below comes from the SASL login, none from the IP.
        "mynetworks": "192.0.2.1/32",
        "smtpd_peername_lookup": "no",
        # Whatever is accepted goes nowhere.
        "default_transport": "discard:visitmail test",
        "relay_transport": "discard:visitmail test",
        "local_transport": "discard:visitmail test",
        "smtpd_tls_security_level": "may",
        "smtpd_tls_chain_files": etc / "server.pem",
        "smtpd_tls_auth_only": "yes",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "cyrus",
        "smtpd_sasl_path": "smtpd",
        "cyrus_sasl_config_path": etc / "sasl",
        "smtpd_sasl_security_options": "noanonymous",
        "smtpd_sender_login_maps": f"inline:{{ {owners} }}" if owners else "",
        # smtpd_delay_reject = yes (the default): the sender is judged at RCPT TO.
        "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
        "smtpd_recipient_restrictions": (
            "reject_sender_login_mismatch, permit_sasl_authenticated, reject"
        ),
    }
    if local is not None:
        settings.update(_local_mail_cf(local))
    return "".join(f"{name} = {value}\n" for name, value in settings.items())


def _write_instance(
    directory: Path,
    port: int,
    ca: trustme.CA,
    accounts: Sequence[PostfixAccount],
    local: LocalMail | None = None,
) -> None:
    postfix = pwd.getpwnam("postfix")
    etc, sasl = directory / "etc", directory / "etc" / "sasl"
    for path in (etc, sasl, directory / "spool", directory / "data"):
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chown(directory / "data", postfix.pw_uid, postfix.pw_gid)

    leaf = ca.issue_cert(*SERVER_NAMES)
    key_and_chain = etc / "server.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(key_and_chain))
    key_and_chain.chmod(0o600)  # read by smtpd and tlsmgr as root, before they drop privileges

    sasldb = sasl / "sasldb2"
    (sasl / "smtpd.conf").write_text(
        "pwcheck_method: auxprop\n"
        "auxprop_plugin: sasldb\n"
        f"sasldb_path: {sasldb}\n"
        "mech_list: PLAIN LOGIN\n"
    )
    saslpasswd2 = _binary("saslpasswd2", "sasl2-bin")
    for account in accounts:
        user, _, realm = account.login.partition("@")
        subprocess.run(
            [saslpasswd2, "-f", str(sasldb), "-c", "-p", "-u", realm or REALM, user],
            input=account.password.encode(),
            capture_output=True,
            timeout=30,
            check=True,
        )
    if sasldb.exists():  # read by smtpd as the postfix user; owned by root like all config
        os.chown(sasldb, 0, postfix.pw_gid)
        sasldb.chmod(0o640)

    (etc / "main.cf").write_text(_main_cf(directory, accounts, local))
    (etc / "master.cf").write_text(_MASTER_CF.format(listen=f"{HOST}:{port}"))


def _listening(port: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as s:
                s.settimeout(2.0)
                return s.recv(4).startswith(b"220")
        except OSError:
            time.sleep(0.05)
    return False


def start_postfix(
    *, ca: trustme.CA, accounts: Sequence[PostfixAccount], local: LocalMail | None = None
) -> PostfixServer:
    """Start a private Postfix as described in the module docstring; the caller must call
    ``stop()`` (or use :func:`running_postfix`). Retries with another port if the free port
    was taken in between."""
    _check_machine()
    ca_pem = ca.cert_pem.bytes().decode()
    failures: list[str] = []
    for _ in range(3):
        directory = Path(tempfile.mkdtemp(prefix="visitmail-postfix-"))
        directory.chmod(0o755)
        server = PostfixServer(host=HOST, port=free_port(), directory=directory, ca_pem=ca_pem)
        try:
            _write_instance(directory, server.port, ca, accounts, local)
            output = _postfix(server.config_directory, "start", check=False)
            if _listening(server.port):
                return server
            failures.append(f"port {server.port}: {output}\n{server.log()}")
        except BaseException:
            server.stop()
            raise
        server.stop()
    raise PostfixFailed("Postfix did not start:\n" + "\n---\n".join(failures))


@contextmanager
def running_postfix(
    *, ca: trustme.CA, accounts: Sequence[PostfixAccount]
) -> Iterator[PostfixServer]:
    """``start_postfix`` that always stops the instance and removes its directory."""
    server = start_postfix(ca=ca, accounts=accounts)
    try:
        yield server
    finally:
        server.stop()
