"""The bounce mailbox: where an organization's bounces and complaints arrive, read over IMAP.

Usually it is the sending mailbox itself (the address follow-ups come from receives the
DSNs), so by default it signs in like the mail server does: the same username and password,
or the same OAuth2 sign-in (with the IMAP scope, see ``domain.oauth``). It may instead have
a username and password of its own (a dedicated ``bounces@`` mailbox).

It is read, never changed: messages are fetched with ``BODY.PEEK`` (nothing is marked
read), nothing is moved or deleted, and a cursor (``UIDVALIDITY`` + the last UID looked at)
makes each poll read only what arrived since. The first poll (or one after the server
rebuilt the folder: a new ``UIDVALIDITY``) looks back :data:`FIRST_LOOK_DAYS` days only.
The connection goes through the same network guard and proxy as SMTP, with the mail
server's TLS trust (its private CA, if one is set; never its pin, which names the SMTP
server's certificate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from visitmail.domain.errors import InvalidInput, VisitmailError
from visitmail.domain.header_text import header_safe
from visitmail.domain.smtp_settings import Security

FIRST_LOOK_DAYS = 3
MAX_PER_POLL = 200  # messages looked at per poll: a full inbox is read over several polls
POLL_SECONDS = 120
MAX_FOLDER = 200
MAX_HOST = 253
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[?[0-9A-Fa-f:.]+\]?$")


@dataclass(frozen=True, slots=True)
class BounceMailbox:
    """What an admin sets. ``username`` ``None`` means: sign in as the mail server does."""

    host: str
    port: int = 993
    security: Security = Security.TLS
    username: str | None = None
    folder: str = "INBOX"
    enabled: bool = True

    def __post_init__(self) -> None:
        host = self.host.strip().lower()
        if not host or len(host) > MAX_HOST or not _HOST.match(host):
            raise InvalidInput("must be a host name such as outlook.office365.com", field="host")
        object.__setattr__(self, "host", host)
        if not 1 <= self.port <= 65535:
            raise InvalidInput("must be a port between 1 and 65535", field="port")
        folder = self.folder.strip()
        if not folder or len(folder) > MAX_FOLDER:
            raise InvalidInput(f"must be 1 to {MAX_FOLDER} characters", field="folder")
        header_safe(folder, field="folder", allow_tab=False)
        if '"' in folder or "\\" in folder:
            raise InvalidInput("must not contain quotes or backslashes", field="folder")
        object.__setattr__(self, "folder", folder)
        if self.username is not None:
            username = self.username.strip()
            if not username or len(username) > 320:
                raise InvalidInput("must be 1 to 320 characters", field="username")
            header_safe(username, field="username", allow_tab=False)
            object.__setattr__(self, "username", username)

    @property
    def own_login(self) -> bool:
        return self.username is not None


class MailboxStep(StrEnum):
    CONNECT = "connect"
    TLS = "tls"
    LOGIN = "login"
    FOLDER = "folder"
    READ = "read"


class MailboxFailure(VisitmailError):
    """The mailbox could not be read: ``step`` failed; ``fix`` says what to do."""

    code = "mailbox_failed"

    def __init__(self, message: str, *, step: MailboxStep, fix: str) -> None:
        super().__init__(message, field="bounce_mailbox")
        self.step = step
        self.fix = fix


@dataclass(frozen=True, slots=True)
class MailboxCursor:
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True, slots=True)
class MailboxState:
    """How the last poll went, for the settings page and ``/metrics``."""

    cursor: MailboxCursor | None
    last_polled_at: datetime | None
    last_error: str | None
    reports_found: int


# Presets by the mail server's host: where its mailbox is read.
IMAP_HOSTS = {
    "smtp.office365.com": "outlook.office365.com",
    "smtp-mail.outlook.com": "outlook.office365.com",
    "smtp.gmail.com": "imap.gmail.com",
    "smtp.mail.yahoo.com": "imap.mail.yahoo.com",
    "smtp.ionos.de": "imap.ionos.de",
    "smtp.strato.de": "imap.strato.de",
}


def suggested_host(smtp_host: str) -> str:
    """The IMAP host that usually goes with ``smtp_host`` (``smtp.x`` → ``imap.x``)."""
    host = smtp_host.strip().lower()
    if host in IMAP_HOSTS:
        return IMAP_HOSTS[host]
    if host.startswith(("smtp.", "mail.")):
        return "imap." + host.split(".", 1)[1]
    return host
