"""A stored SMTP reply shown once: no ``250 2.0.0 2.0.0 stored``."""

from __future__ import annotations

import pytest

from visitmail.domain.smtp_replies import reply_line, reply_text_shown


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "shown"),
    [
        (250, "2.0.0", "2.0.0 stored", "250 2.0.0 stored"),
        (250, "2.0.0", "stored", "250 2.0.0 stored"),
        (
            550,
            "5.1.1",
            "5.1.1 <a@example.com>: User unknown",
            "550 5.1.1 <a@example.com>: User unknown",
        ),
        (250, None, "OK", "250 OK"),
        (421, "4.7.0", "4.7.0", "421 4.7.0"),
        # Only a leading repeat of the whole status is dropped, never a longer number.
        (550, "5.1.1", "5.1.10 no such domain", "550 5.1.1 5.1.10 no such domain"),
        (None, None, None, ""),
    ],
)
def test_reply_line_says_each_part_once(
    code: int | None, enhanced: str | None, text: str | None, shown: str
) -> None:
    assert reply_line(code, enhanced, text) == shown


def test_text_shown_drops_the_leading_status() -> None:
    assert reply_text_shown("2.0.0", "2.0.0 stored") == "stored"
    assert reply_text_shown(None, "2.0.0 stored") == "2.0.0 stored"
