"""A local SMTP server that accepts every message and keeps it as an ``.eml`` file, so a
newcomer sees mail flow without any outside server. Loopback only; never for production.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from visitmail.adapters.private_files import DIR_MODE, FILE_MODE, make_private_dir
from visitmail.services.clock import Clock, utcnow
from visitmail.services.dev_inbox import ReceivedMail, summarize

# Microseconds in the name keep "newest first" exact for mail of the same second (names
# of older versions, without them, still count as ours).
_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}(?:\.[0-9]{6})?-[0-9a-f]{32}\.eml$")
NOTED_LIMIT = 5000  # connection-test Message-IDs kept in memory


class Mailbox:
    """``.eml`` files in one directory (mode 0700, files 0600), newest first. Names are
    validated before any read; a file appears under its name only once complete."""

    def __init__(
        self, directory: Path, *, clock: Clock = utcnow, noted_limit: int = NOTED_LIMIT
    ) -> None:
        self.directory = directory
        self._clock = clock
        self._noted_limit = noted_limit
        make_private_dir(directory)
        # Ours alone, so also tightened if an older version made it readable to all.
        directory.chmod(DIR_MODE)
        # Stored files never change, so each is parsed once (the listing reads them all).
        self._summaries: dict[str, ReceivedMail] = {}
        self._noted: OrderedDict[str, UUID] = OrderedDict()

    def store(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> str:
        name = f"{self._clock():%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex}.eml"
        envelope = (
            f"X-Dev-Inbox-Mail-From: {mail_from}\r\nX-Dev-Inbox-Rcpt-To: {', '.join(rcpt_to)}\r\n"
        )
        # Written under a name the listing ignores, then renamed: never read half-written.
        partial = self.directory / f".{name}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            file.write(envelope.encode() + raw)
        os.replace(partial, self.directory / name)
        return name

    def received(self) -> list[ReceivedMail]:
        names = sorted(
            (p.name for p in self.directory.iterdir() if _NAME.match(p.name)), reverse=True
        )
        known = {n: self._summaries.get(n) or self._summary(n) for n in names}
        self._summaries = {n: s for n, s in known.items() if s is not None}
        return list(self._summaries.values())

    def summary(self, name: str) -> ReceivedMail:
        cached = self._summaries.get(name)
        if cached is not None:
            return cached
        found = self._summary(name)
        if found is None:
            raise KeyError(name)
        self._summaries[name] = found
        return found

    def _summary(self, name: str) -> ReceivedMail | None:
        try:
            mail_from, rcpt_to, raw = self._read(name)
        except KeyError:
            return None
        stamp = datetime.strptime(name[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return summarize(name, stamp, mail_from, rcpt_to, raw)

    def _read(self, name: str) -> tuple[str, list[str], bytes]:
        """The envelope the sink noted and the message as received; ``KeyError`` for a
        name that is not one of ours (or was deleted meanwhile)."""
        path = self._path(name)
        if path is None:
            raise KeyError(name)
        try:
            stored = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(name) from None
        # The sink's two envelope lines come first; SMTP addresses hold no line breaks.
        first, second, raw = [*stored.split(b"\r\n", 2), b"", b""][:3]
        mail_from = _envelope_value(first, b"X-Dev-Inbox-Mail-From:")
        rcpt = _envelope_value(second, b"X-Dev-Inbox-Rcpt-To:")
        return mail_from, [a.strip() for a in rcpt.split(",") if a.strip()], raw

    def _path(self, name: str) -> Path | None:
        path = self.directory / name
        return path if _NAME.match(name) and path.is_file() else None

    def note(self, message_id: str, organization_id: UUID) -> None:
        self._noted[message_id] = organization_id
        self._noted.move_to_end(message_id)
        while len(self._noted) > self._noted_limit:
            self._noted.popitem(last=False)

    def noted(self, organization_id: UUID) -> set[str]:
        return {m for m, org in self._noted.items() if org == organization_id}

    def parse(self, name: str) -> EmailMessage:
        """The stored message; ``KeyError`` for a name that is not one of ours."""
        parsed: EmailMessage = email.message_from_bytes(self.raw(name), policy=email.policy.default)
        return parsed

    def raw(self, name: str) -> bytes:
        return self._read(name)[2]

    def delete(self, name: str) -> None:
        path = self._path(name)
        if path is not None:
            path.unlink(missing_ok=True)
        self._summaries.pop(name, None)


def _envelope_value(line: bytes, prefix: bytes) -> str:
    if not line.startswith(prefix):
        return ""
    return line[len(prefix) :].decode("utf-8", errors="replace").strip()


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
