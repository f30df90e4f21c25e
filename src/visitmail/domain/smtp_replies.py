"""SMTP reply classification: the one place that decides temporary or permanent.

Basic codes decide (RFC 5321 §4.2.1): 2xx accepted, 4xx transient, 5xx permanent. The
enhanced status (RFC 3463) and the text refine a transient reply into *throttling*, which
lowers the server's rate instead of only deferring one message. What a reply *means* and
its fix (Microsoft 365, Google, the sender family below) is ``domain.reply_advice``; it
never changes the decision made here.
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


# --- what a refusal is about ----------------------------------------------------------------
#
# A refusal that names the *sender* can come at any step: Postfix decides about the sender
# at RCPT TO by default (smtpd_delay_reject = yes: ``553 5.7.1 <boss@…>: Sender address
# rejected: not owned by user alice@…``), Microsoft 365 after the message
# (``554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException``) or with 5.7.60.
# Such a reply is the account's problem, never the recipient's: it must be explained as
# the sender problem and must never put the recipient on a suppression list.

_SENDER_ENHANCED = {"5.1.7", "5.1.8", "5.7.60", "4.1.7", "4.1.8"}
_SENDER_WORDS = re.compile(
    r"sender address rejected|not owned by (the )?user|sendas ?denied|send ?as permission"
    r"|permissions? to send as|sender (is |was )?(not (allowed|authori[sz]ed|permitted)"
    r"|denied|refused|rejected|unknown)|(un|not )authori[sz]ed sender|sender verify failed"
    r"|from address (is )?not (allowed|authori[sz]ed|permitted|verified)"
    r"|sender (domain|identity) (is )?not (verified|allowed)"
    r"|from address does not match|verified sender identity",
    re.I,
)
# Enhanced codes that are about the recipient's address itself (RFC 3463): bad mailbox,
# bad system, bad syntax, null MX (RFC 7505), mailbox disabled.
_ADDRESS_ENHANCED = {"5.1.1", "5.1.2", "5.1.3", "5.1.10", "5.2.1"}
# The same, for servers that send no enhanced code.
_ADDRESS_WORDS = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient|address)"
    r"|mailbox (unavailable|not found|does not exist|disabled)|recipient (unknown|not found)"
    r"|(address|recipient|mailbox|user) does not exist|invalid (recipient|mailbox)"
    r"|undeliverable address|unrouteable address|account (has been )?disabled",
    re.I,
)


def names_the_sender(reply: SmtpReply) -> bool:
    """True if the refusal is about the sender address (see above), at whatever step."""
    if reply.code < 400:
        return False
    return reply.enhanced_status in _SENDER_ENHANCED or bool(_SENDER_WORDS.search(reply.text))


def rejects_the_address(reply: SmtpReply) -> bool:
    """True only for a *permanent* refusal about the recipient's address itself (5.1.1,
    5.1.2, 5.1.3, 5.1.10, 5.2.1, or ``User unknown``-style text without an enhanced code):
    the only refusals that may put an address on the suppression list. Sender, policy,
    size, authentication and content refusals are False, as are replies that name the
    sender."""
    if classify(reply) is not ReplyClass.PERMANENT or names_the_sender(reply):
        return False
    enhanced = reply.enhanced_status
    if enhanced is not None:
        return enhanced in _ADDRESS_ENHANCED
    return bool(_ADDRESS_WORDS.search(reply.text))


def reply_text_shown(enhanced: str | None, text: str | None) -> str:
    """The reply's text as shown beside its codes: a leading copy of the enhanced status
    (servers repeat it: ``250 2.0.0 stored`` is stored as enhanced ``2.0.0`` and text
    ``2.0.0 stored``) is dropped, so no page says ``2.0.0 2.0.0``."""
    shown = (text or "").strip()
    if enhanced and shown.startswith(enhanced):
        rest = shown[len(enhanced) :]
        if not rest or rest[0].isspace():
            return rest.strip()
    return shown


def reply_line(code: int | None, enhanced: str | None, text: str | None) -> str:
    """A stored reply in one line, each part once: ``550 5.1.1 User unknown``. The one
    place reply text is formatted for people (pages, advice, health)."""
    parts = [str(code) if code else "", enhanced or "", reply_text_shown(enhanced, text)]
    return " ".join(p for p in parts if p)
