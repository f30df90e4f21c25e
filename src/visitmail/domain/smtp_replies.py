"""SMTP reply classification: the one place that decides temporary or permanent.

Basic codes decide (RFC 5321 §4.2.1): 2xx accepted, 4xx transient, 5xx permanent. The
enhanced status (RFC 3463) and the text refine a transient reply into *throttling*, which
lowers the server's rate instead of only deferring one message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class ReplyClass(StrEnum):
    ACCEPTED = "accepted"
    TEMPORARY = "temporary"  # retry this recipient later
    THROTTLED = "throttled"  # temporary, and the server asks us to slow down
    PERMANENT = "permanent"  # this recipient is rejected for good


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_THROTTLE_WORDS = re.compile(
    r"rate|quota|too many|throttl|slow down|try again later|limit exceeded|exceeded", re.I
)
# Enhanced codes that mean "you are sending too much/too fast" (RFC 3463 / IANA registry).
_THROTTLE_ENHANCED = {"4.7.0", "4.7.28", "4.4.2", "4.4.5", "4.3.2", "4.7.1"}
_THROTTLE_CODES = {421, 450, 451, 452, 454}


@dataclass(frozen=True, slots=True)
class SmtpReply:
    code: int
    text: str

    @property
    def enhanced_status(self) -> str | None:
        match = _ENHANCED.match(self.text)
        return ".".join(match.groups()) if match else None


def classify(reply: SmtpReply) -> ReplyClass:
    """Accepted, temporary, throttled or permanent; unknown codes count as temporary
    (a wrong "permanent" loses mail, a wrong "temporary" only costs a retry)."""
    if 200 <= reply.code < 300:
        return ReplyClass.ACCEPTED
    if 500 <= reply.code < 600:
        return ReplyClass.PERMANENT
    if 400 <= reply.code < 500:
        enhanced = reply.enhanced_status
        throttle_hint = bool(_THROTTLE_WORDS.search(reply.text)) or (
            enhanced in _THROTTLE_ENHANCED and reply.code in _THROTTLE_CODES
        )
        if reply.code in _THROTTLE_CODES and throttle_hint:
            return ReplyClass.THROTTLED
        return ReplyClass.TEMPORARY
    return ReplyClass.TEMPORARY
