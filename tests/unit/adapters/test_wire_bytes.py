"""The body's wire form: the fast path for well-formed messages gives exactly what the
general rules (CRLF everywhere, dot-stuffing, the final dot) give."""

from __future__ import annotations

import random
import re

from visitmail.adapters.smtp.session import wire_bytes


def reference(mime: bytes) -> bytes:
    data = re.sub(rb"\r(?!\n)", b"\r\n", re.sub(rb"(?<!\r)\n", b"\r\n", mime))
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def test_matches_the_general_rules_on_random_bodies() -> None:
    rng = random.Random(2920)
    alphabet = [b"a", b"b", b".", b"\r", b"\n", b"\r\n", b" ", b"\r\n."]
    for _ in range(20_000):
        body = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        assert wire_bytes(body) == reference(body), body


def test_typical_message_and_edge_cases() -> None:
    assert wire_bytes(b"") == b"\r\n.\r\n"
    assert wire_bytes(b"Subject: x\r\n\r\nhi\r\n") == b"Subject: x\r\n\r\nhi\r\n.\r\n"
    assert wire_bytes(b"a\r\n.b\r\n") == b"a\r\n..b\r\n.\r\n"
    assert wire_bytes(b".\r\n") == b"..\r\n.\r\n"
    assert wire_bytes(b"a\nb") == b"a\r\nb\r\n.\r\n"
