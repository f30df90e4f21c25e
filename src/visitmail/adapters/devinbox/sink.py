"""A local SMTP server that accepts every message and keeps it as an ``.eml`` file, so a
newcomer sees mail flow without any outside server. Loopback only; never for production.
"""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{32}\.eml$")


@dataclass(frozen=True, slots=True)
class StoredMail:
    name: str
    received_at: datetime
    mail_from: str
    rcpt_to: list[str]
    subject: str
    size: int


class Mailbox:
    """``.eml`` files in one directory, newest first. Names are validated before any read."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def store(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> str:
        now = datetime.now(UTC)
        name = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex}.eml"
        envelope = (
            f"X-Dev-Inbox-Mail-From: {mail_from}\r\nX-Dev-Inbox-Rcpt-To: {', '.join(rcpt_to)}\r\n"
        )
        (self.directory / name).write_bytes(envelope.encode() + raw)
        return name

    def list(self, limit: int = 200) -> list[StoredMail]:
        files = sorted((p for p in self.directory.iterdir() if _NAME.match(p.name)), reverse=True)[
            :limit
        ]
        return [self._summary(p) for p in files]

    def _summary(self, path: Path) -> StoredMail:
        message = self.parse(path.name)
        stamp = datetime.strptime(path.name[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return StoredMail(
            name=path.name,
            received_at=stamp,
            mail_from=str(message.get("X-Dev-Inbox-Mail-From", "")),
            rcpt_to=[a.strip() for a in str(message.get("X-Dev-Inbox-Rcpt-To", "")).split(",")],
            subject=str(message.get("Subject", "(no subject)")),
            size=path.stat().st_size,
        )

    def parse(self, name: str) -> EmailMessage:
        """The stored message; ``KeyError`` for a name that is not one of ours."""
        if not _NAME.match(name) or not (self.directory / name).is_file():
            raise KeyError(name)
        raw = (self.directory / name).read_bytes()
        parsed: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)
        return parsed


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        content: Any = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else str(content).encode()
        self.mailbox.store(raw, str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos])
        return "250 2.0.0 stored in the visitmail dev inbox"


class DevInbox:
    """Start/stop the sink on ``host:port`` in a background thread."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.mailbox = Mailbox(directory)
        self.host = host
        self.port = port
        self._controller = Controller(
            _Handler(self.mailbox), hostname=host, port=port, decode_data=False
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
