"""The messages every peer sends: N pre-built, byte-identical across peers.

Each message is about 5 KB of plain text (a visit-report notification), one sender, one
recipient, and a distinct Message-ID. The bytes are rendered once, before any clock starts,
so a peer's time measures sending, not building MIME.
"""

from __future__ import annotations

import base64
import json
import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

DEFAULT_BODY_BYTES = 5000
SENDER = "bench-sender@bench.visitmail.invalid"
MESSAGE_ID_DOMAIN = "bench.visitmail.invalid"

_WORDS = (
    "lead",
    "visit",
    "booth",
    "fair",
    "report",
    "contact",
    "follow",
    "up",
    "brochure",
    "demo",
    "pricing",
    "quote",
    "meeting",
    "customer",
    "interest",
    "product",
    "sample",
    "trade",
    "event",
    "hall",
    "stand",
    "colleague",
    "export",
    "notes",
    "call",
    "email",
    "offer",
    "contract",
    "delivery",
    "service",
    "support",
    "region",
    "partner",
    "catalogue",
)


@dataclass(frozen=True)
class BenchMessage:
    """One message: its SMTP envelope and its complete RFC 5322 bytes (CRLF line ends)."""

    sender: str
    recipient: str
    message_id: str
    raw: bytes


def _body(body_bytes: int, seed: int) -> str:
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < body_bytes:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return textwrap.fill(" ".join(words), width=76)[:body_bytes] + "\n"


def build_messages(
    n: int, *, body_bytes: int = DEFAULT_BODY_BYTES, seed: int = 0
) -> list[BenchMessage]:
    """Build ``n`` messages, deterministically: the same ``n`` and ``seed`` give the same
    bytes, so a peer that builds its own workload (the visitmail peer) sends what the others
    send. Message-IDs are ``<bench-000000@bench.visitmail.invalid>`` upwards."""
    if n < 0:
        raise ValueError("n must be >= 0")
    body = _body(body_bytes, seed)
    messages: list[BenchMessage] = []
    for i in range(n):
        message_id = f"<bench-{i:06d}@{MESSAGE_ID_DOMAIN}>"
        recipient = f"colleague-{i % 97:02d}@bench.visitmail.invalid"
        msg = EmailMessage()
        msg["From"] = f"Visit reports <{SENDER}>"
        msg["To"] = recipient
        msg["Subject"] = f"Visit report #{i}: new lead at the trade fair"
        msg["Date"] = "Tue, 25 Nov 2025 10:00:00 +0000"
        msg["Message-ID"] = message_id
        msg.set_content(f"Report {i}\n\n{body}", cte="7bit")
        messages.append(BenchMessage(SENDER, recipient, message_id, msg.as_bytes(policy=SMTP)))
    return messages


@dataclass
class Workload:
    """The N messages of one benchmark, plus the JSON file that out-of-process peers read
    (written once, on first use, in ``directory``)."""

    messages: Sequence[BenchMessage]
    directory: Path
    _json_path: Path | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.messages)

    @property
    def mean_message_bytes(self) -> int:
        if not self.messages:
            return 0
        return sum(len(m.raw) for m in self.messages) // len(self.messages)

    @property
    def message_ids(self) -> frozenset[str]:
        return frozenset(m.message_id for m in self.messages)

    def json_file(self) -> Path:
        """``[{sender, recipient, message_id, raw_b64}, ...]``; see bench/nodemailer/send.js."""
        if self._json_path is None:
            path = self.directory / "messages.json"
            records = [
                {
                    "sender": m.sender,
                    "recipient": m.recipient,
                    "message_id": m.message_id,
                    "raw_b64": base64.b64encode(m.raw).decode("ascii"),
                }
                for m in self.messages
            ]
            path.write_text(json.dumps(records), encoding="utf-8")
            self._json_path = path
        return self._json_path
