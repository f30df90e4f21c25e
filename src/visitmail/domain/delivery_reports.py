"""Reports that arrive after a server said ``250``: bounces and complaints, read from the
bytes of one received message.

:func:`read_report` answers a :class:`DeliveryReport`, or ``None`` for mail that is not a
report it recognises (a person's reply, an out-of-office, a success notice, a newsletter):
the caller leaves such mail alone. Recognised:

* **DSNs** (RFC 3464): ``multipart/report; report-type=delivery-status`` with a
  ``message/delivery-status`` (or RFC 6533 ``message/global-delivery-status``) part. This is
  what Postfix, Exim, Microsoft 365 / Exchange Online and Google send; their own wording
  (``RESOLVER.ADR.RecipientNotFound``, ``550-5.1.1 The email account … does not exist``)
  is in ``Diagnostic-Code`` and kept as the diagnostic.
* **Complaints** (ARF, RFC 5965): ``multipart/report; report-type=feedback-report`` with a
  ``message/feedback-report`` part; ``Feedback-Type: not-spam`` is not a complaint.
* **Plain bounces** of servers without DSNs (qmail, old Exchange, relays' digests): sent by
  ``MAILER-DAEMON`` / ``postmaster`` or with a bounce subject ("Undeliverable:", "Mail
  delivery failed", …); the failed recipients come from ``X-Failed-Recipients`` or from the
  addresses the text names beside an SMTP reply, the status from that reply.

The original message is named by its ``Message-ID``: from the returned message
(``message/rfc822``) or its headers (``text/rfc822-headers``), else any ``Message-ID:``
line in the text. :attr:`DeliveryReport.message_ids` lists the candidates in that order; the
caller matches them against its outbox, so a forged report cannot name mail it did not send.

:func:`severity` decides hard or soft: the address itself is wrong (``5.1.x`` except the
sender's own ``5.1.7``/``5.1.8``, ``5.2.1`` disabled mailbox, or a permanent reply whose
text says the recipient does not exist) is **hard**; every other failure (a full mailbox,
a policy or spam block, a message too big, a temporary failure given up) is **soft**: the
address may well be right.

Bounded: at most :data:`MAX_REPORT_BYTES` are parsed (bigger mail is not a report),
:data:`MAX_RECIPIENTS` recipients per report, texts cut to :data:`MAX_TEXT` characters with
control characters removed. Nothing here raises on malformed mail: it is not a report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from enum import StrEnum

MAX_REPORT_BYTES = 10_000_000
MAX_RECIPIENTS = 100
MAX_TEXT = 1000
MAX_MESSAGE_IDS = 10


class ReportKind(StrEnum):
    BOUNCE = "bounce"  # at least one recipient failed for good
    DELAY = "delay"  # the remote side is still trying: nothing has failed yet
    COMPLAINT = "complaint"  # the recipient marked the mail as spam (ARF)


class Severity(StrEnum):
    HARD = "hard"  # the address is wrong: suppress it
    SOFT = "soft"  # the message failed, the address may be right: count it


class ReportFormat(StrEnum):
    DSN = "dsn"
    ARF = "arf"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """What the report says of one recipient. ``address`` is lower-cased; ``action`` is the
    DSN's (``failed``, ``delayed``) or ``complained``; ``status`` an enhanced status code
    (``5.1.1``) when one is known; ``diagnostic`` the remote server's words."""

    address: str
    action: str
    status: str | None
    diagnostic: str
    remote_mta: str | None = None

    @property
    def severity(self) -> Severity | None:
        """Hard or soft for a failure (:func:`severity`); ``None`` for a delay or complaint."""
        if self.action != "failed":
            return None
        return severity(self.status, self.diagnostic)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    kind: ReportKind
    format: ReportFormat
    message_ids: tuple[str, ...]  # the original message's, best candidate first
    recipients: tuple[RecipientOutcome, ...]
    reporter: str  # the reporting MTA (DSN), the feedback's User-Agent (ARF) or From
    subject: str
    feedback_type: str | None = None  # ARF only: abuse, fraud, virus, other


_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY = re.compile(r"\b([45]\d\d)[\s-]+(?:([245]\.\d{1,3}\.\d{1,3})\b)?")
_ADDRESS = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{3,250}>)", re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID = re.compile(r"<[^<>\s@]{1,200}@[^<>\s@]{1,200}>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}
_BOUNCE_SUBJECTS = re.compile(
    r"^\s*(undeliverable|undelivered mail|delivery status notification \(failure\)|"
    r"mail delivery failed|returned mail|failure notice|delivery failure|"
    r"nondeliverable|non-delivery|unzustellbar|message not delivered)",
    re.IGNORECASE,
)
# The wording of "no such recipient" in permanent replies whose status code says less
# (5.0.0, 5.5.0, Microsoft's 5.4.1 for a recipient its directory does not know).
_NO_SUCH_RECIPIENT = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
    r"recipient not found|unknown recipient|invalid recipient|mailbox not found|"
    r"mailbox unavailable|address rejected: user|recipientnotfound|not a valid mailbox",
    re.IGNORECASE,
)


def severity(status: str | None, diagnostic: str = "") -> Severity:
    """Hard when the address itself is wrong, else soft (see the module docstring)."""
    found = _STATUS.search(status or "") or _STATUS.search(diagnostic)
    if found is None:
        reply = _REPLY.search(diagnostic)
        permanent = reply is not None and reply.group(1).startswith("5")
        return (
            Severity.HARD if permanent and _NO_SUCH_RECIPIENT.search(diagnostic) else Severity.SOFT
        )
    klass, subject, detail = found.group(1), found.group(2), found.group(3)
    if klass != "5":
        return Severity.SOFT
    if subject == "1" and detail not in ("7", "8"):  # 5.1.7/5.1.8: the *sender's* address
        return Severity.HARD
    if (subject, detail) == ("2", "1"):  # mailbox disabled
        return Severity.HARD
    if (subject, detail) in (("0", "0"), ("5", "0"), ("4", "1")) and _NO_SUCH_RECIPIENT.search(
        diagnostic
    ):
        return Severity.HARD
    return Severity.SOFT


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """One line of at most ``limit`` characters: control characters and runs of white
    space become one space (a diagnostic is shown on pages and stored, never trusted)."""
    text = _CONTROL.sub(" ", str(value) if value is not None else "")
    text = " ".join(text.split())
    return text[:limit]


def read_report(raw: bytes) -> DeliveryReport | None:
    """The report in ``raw`` (one message as received), or ``None`` if it is not one."""
    if len(raw) > MAX_REPORT_BYTES:
        return None
    try:
        message = message_from_bytes(raw, policy=policy.compat32)
    except Exception:  # malformed mail is not a report, whatever broke in the parser
        return None
    try:
        return _read(message)
    except (LookupError, ValueError, TypeError, AttributeError, UnicodeError):
        return None


def _read(message: Message) -> DeliveryReport | None:
    if message.get_content_type() == "multipart/report":
        report_type = (message.get_param("report-type") or "").__str__().lower()
        if report_type == "feedback-report":
            return _arf(message)
        if report_type in ("delivery-status", "global-delivery-status"):
            return _dsn(message)
        return None
    # Some servers send a DSN without the multipart/report wrapper's parameter right.
    for part in _parts(message):
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            return _dsn(message)
    if _looks_bounced(message):
        return _plain(message)
    return None


def _parts(message: Message) -> Iterator[Message]:
    """Every part, depth first, without descending into a ``message/*`` part (a returned
    original's own parts are not the report's; a report part is read as a whole)."""
    stack = [message]
    seen = 0
    while stack and seen < 200:
        part = stack.pop()
        seen += 1
        yield part
        if part.is_multipart() and part.get_content_maintype() != "message":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):  # a message/* part, parsed into nested messages
        return "\n\n".join(p.as_string() for p in raw if isinstance(p, Message))
    return ""


def _field_groups(part: Message) -> list[Message]:
    """The blocks of a delivery-status or feedback-report part, each as header fields."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]  # the parser split the groups
    # Other message/* parts are parsed as one nested message (the first group as its
    # headers, the rest as its body): rebuild the text and split it here.
    text = _text_of(part)
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    parser = HeaderParser()
    return [parser.parsestr(block.strip() + "\n") for block in blocks if block.strip()]


def _typed_address(value: object) -> str | None:
    """``rfc822; Someone@Example.com`` → ``someone@example.com``."""
    text = clean_text(value, 400)
    if ";" in text:
        kind, _, text = text.partition(";")
        if kind.strip().lower() not in ("rfc822", "utf-8"):
            return None
    found = _ADDRESS.search(text)
    return found.group(1).lower() if found else None


def _original_ids(message: Message) -> tuple[str, ...]:
    """The Message-IDs of the returned original: its headers first, then any in the text."""
    ids: list[str] = []
    for part in _parts(message):
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(first, Message):
                ids.extend(_MESSAGE_ID.findall(str(first.get("Message-ID", ""))))
        elif kind in ("text/rfc822-headers", "text/global-headers"):
            headers = HeaderParser().parsestr(_text_of(part))
            ids.extend(_MESSAGE_ID.findall(str(headers.get("Message-ID", ""))))
    for part in _parts(message):
        if part.get_content_maintype() == "text":
            ids.extend(_MESSAGE_ID_LINE.findall(_text_of(part)))
    unique = list(dict.fromkeys(i.strip() for i in ids))
    return tuple(unique[:MAX_MESSAGE_IDS])


def _original_headers(message: Message) -> Message | None:
    for part in _parts(message):
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(first, Message):
                return first
        elif kind in ("text/rfc822-headers", "text/global-headers"):
            return HeaderParser().parsestr(_text_of(part))
    return None


def _dsn(message: Message) -> DeliveryReport | None:
    part = next(
        (
            p
            for p in _parts(message)
            if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
        ),
        None,
    )
    if part is None:
        return None
    groups = _field_groups(part)
    if not groups:
        return None
    per_message, per_recipient = groups[0], groups[1:]
    # Google names the original in the per-message group too.
    given = _MESSAGE_ID.findall(str(per_message.get("X-Original-Message-ID", "")))
    reporter = _typed_address(per_message.get("Reporting-MTA", "")) or clean_text(
        str(per_message.get("Reporting-MTA", "")).partition(";")[2], 200
    )
    outcomes: list[RecipientOutcome] = []
    for group in per_recipient[:MAX_RECIPIENTS]:
        action = clean_text(group.get("Action", ""), 20).lower()
        if action not in ("failed", "delayed"):
            continue  # delivered, relayed, expanded: good news
        address = _typed_address(group.get("Original-Recipient", "")) or _typed_address(
            group.get("Final-Recipient", "")
        )
        if address is None:
            continue
        status_text = clean_text(group.get("Status", ""), 40)
        status = _STATUS.search(status_text)
        diagnostic = str(group.get("Diagnostic-Code", ""))
        diagnostic = clean_text(diagnostic.partition(";")[2] if ";" in diagnostic else diagnostic)
        remote = clean_text(str(group.get("Remote-MTA", "")).partition(";")[2], 200) or None
        outcomes.append(
            RecipientOutcome(
                address, action, status.group(0) if status else None, diagnostic, remote
            )
        )
    if not outcomes:
        return None
    kind = ReportKind.BOUNCE if any(o.action == "failed" for o in outcomes) else ReportKind.DELAY
    return DeliveryReport(
        kind=kind,
        format=ReportFormat.DSN,
        message_ids=tuple(dict.fromkeys([*_original_ids(message), *given]))[:MAX_MESSAGE_IDS],
        recipients=tuple(outcomes),
        reporter=reporter or _from_address(message),
        subject=clean_text(message.get("Subject", ""), 300),
    )


def _arf(message: Message) -> DeliveryReport | None:
    part = next(
        (p for p in _parts(message) if p.get_content_type() == "message/feedback-report"), None
    )
    if part is None:
        return None
    groups = _field_groups(part)
    if not groups:
        return None
    fields = groups[0]
    feedback_type = clean_text(fields.get("Feedback-Type", ""), 40).lower()
    if not feedback_type or feedback_type == "not-spam":
        return None
    addresses = _addresses(fields.get_all("Original-Rcpt-To") or [])
    original = _original_headers(message)
    if not addresses and original is not None:
        # Many feedback loops redact Original-Rcpt-To; the returned headers still say To.
        addresses = _addresses(original.get_all("To") or [])
    outcomes = tuple(
        RecipientOutcome(a, "complained", None, f"feedback: {feedback_type}")
        for a in addresses[:MAX_RECIPIENTS]
    )
    return DeliveryReport(
        kind=ReportKind.COMPLAINT,
        format=ReportFormat.ARF,
        message_ids=_original_ids(message),
        recipients=outcomes,
        reporter=clean_text(fields.get("User-Agent", ""), 200) or _from_address(message),
        subject=clean_text(message.get("Subject", ""), 300),
        feedback_type=feedback_type,
    )


def _addresses(values: Iterable[object]) -> list[str]:
    found: list[str] = []
    for _name, address in getaddresses([clean_text(v, 2000) for v in values]):
        match = _ADDRESS.fullmatch(address.strip()) if address else None
        if match:
            found.append(match.group(1).lower())
    return list(dict.fromkeys(found))


def _from_address(message: Message) -> str:
    found = _addresses(message.get_all("From") or [])
    return found[0] if found else ""


def _looks_bounced(message: Message) -> bool:
    sender = _from_address(message)
    local = sender.partition("@")[0]
    return (
        local in _DAEMONS
        or bool(message.get("X-Failed-Recipients"))
        or bool(_BOUNCE_SUBJECTS.match(clean_text(message.get("Subject", ""), 300)))
    )


def _plain(message: Message) -> DeliveryReport | None:
    """A bounce without a DSN: recipients from ``X-Failed-Recipients`` or from the text's
    lines that pair an address with an SMTP reply."""
    text = "\n".join(_text_of(p) for p in _parts(message) if p.get_content_type() == "text/plain")[
        :200_000
    ]
    failed = _addresses(message.get_all("X-Failed-Recipients") or [])
    outcomes: list[RecipientOutcome] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        reply = _REPLY.search(line)
        if reply is None or not reply.group(1).startswith("5"):
            continue
        # The address is on the reply's line or on one of the three lines before it.
        window = " ".join(lines[max(0, index - 3) : index + 1])
        addresses = [a.lower() for a in _ADDRESS.findall(window)]
        address = next((a for a in reversed(addresses) if not failed or a in failed), None)
        if address is None and len(failed) == 1:
            address = failed[0]
        if address is None or any(o.address == address for o in outcomes):
            continue
        diagnostic = clean_text(line[reply.start() :])
        status = _STATUS.search(diagnostic)
        outcomes.append(
            RecipientOutcome(
                address,
                "failed",
                status.group(0) if status else f"{reply.group(1)[0]}.0.0",
                diagnostic,
            )
        )
        if len(outcomes) >= MAX_RECIPIENTS:
            break
    for address in failed:
        if not any(o.address == address for o in outcomes):
            outcomes.append(RecipientOutcome(address, "failed", None, ""))
    if not outcomes:
        return None
    return DeliveryReport(
        kind=ReportKind.BOUNCE,
        format=ReportFormat.TEXT,
        message_ids=_original_ids(message),
        recipients=tuple(outcomes[:MAX_RECIPIENTS]),
        reporter=_from_address(message),
        subject=clean_text(message.get("Subject", ""), 300),
    )


_LEADING_REPLY = re.compile(r"^\s*([245]\d\d)(?:[\s-]+([245]\.\d{1,3}\.\d{1,3}))?\b[\s:-]*")


def split_diagnostic(diagnostic: str) -> tuple[int | None, str | None, str]:
    """``550 5.1.1 <x>: User unknown`` → ``(550, "5.1.1", "<x>: User unknown")``: a
    diagnostic as the reply code, enhanced status and text a stored reply has, so it is
    shown like every other reply (each part once)."""
    found = _LEADING_REPLY.match(diagnostic)
    if found is None:
        return None, None, diagnostic
    return int(found.group(1)), found.group(2), diagnostic[found.end() :]


def might_be_report(headers: bytes) -> bool:
    """From a message's headers alone: could it be a report :func:`read_report` reads? (A
    ``multipart/report``, or a bounce by its sender, subject or ``X-Failed-Recipients``.)
    Lets a mailbox reader fetch only the bodies worth reading."""
    try:
        message = message_from_bytes(headers, policy=policy.compat32)
    except Exception:  # malformed headers: read the whole message and let it decide
        return True
    return message.get_content_type() == "multipart/report" or _looks_bounced(message)
