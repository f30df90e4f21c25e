"""What a server's reply *means* and what the admin should change: the one reply explainer.

Contract:

- :func:`advise` takes a reply (code, text, and the enhanced status if it was stored apart)
  and returns a :class:`ReplyAdvice` (a stable ``topic``, the ``provider`` it is specific
  to, a one-sentence ``summary`` and a concrete ``fix``) or ``None`` when no rule knows
  the reply. It is the only place that maps provider replies to explanations: the
  connection test (``adapters/smtp/errors.py``) and the outbox (attempt and recipient
  views) both call it, so the admin reads the same fix in both.
- It is table-driven: :data:`RULES` in order, the first whose every given criterion
  matches wins: reply ``codes``, ``enhanced`` statuses (RFC 3463), a text ``pattern``
  (searched anywhere: providers put the words after the enhanced code, and the outbox
  stores a server failure's text behind its stage) and, where a table cannot say it, a
  ``test`` predicate (the sender family reuses
  :func:`visitmail.domain.smtp_replies.names_the_sender`, so "is this about the sender"
  is decided once).
- It never decides temporary or permanent: that is
  :func:`visitmail.domain.smtp_replies.classify` (and the retry policy), by code. A fix may
  say "temporary", but the outbox retries or rejects by the code alone.
- Texts are fixed sentences; a reply's text is never copied into a summary or fix, except
  the scope a Google XOAUTH2 challenge names (bounded, and only if it looks like a URL).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from visitmail.domain.smtp_replies import SmtpReply, names_the_sender

MICROSOFT = "Microsoft 365"
GOOGLE = "Google"

# A reply quoted inside a longer text ("auth: 535 5.7.139 Authentication unsuccessful ..."):
# the code, then the enhanced status right behind it (both, so a port number is no code).
_QUOTED_REPLY = re.compile(r"(?:^|[\s:(])([2-5]\d\d)[ -]+([245]\.\d{1,3}\.\d{1,3})\b")
_MAX_SCOPE = 200


class ReplyTopic(StrEnum):
    """What a reply is about; stable names for the API (``advice.topic``)."""

    SMTP_AUTH_DISABLED = "smtp_auth_disabled"
    BASIC_AUTH_BLOCKED = "basic_auth_blocked"
    SIGN_IN_BLOCKED = "sign_in_blocked"
    APP_NOT_PERMITTED = "app_not_permitted"
    CREDENTIALS_REJECTED = "credentials_rejected"
    APP_PASSWORD_REQUIRED = "app_password_required"  # noqa: S105 - a topic name
    AUTH_REQUIRED = "auth_required"
    ENCRYPTION_REQUIRED = "encryption_required"
    TOKEN_REFUSED = "token_refused"  # noqa: S105 - a topic name
    TOO_MANY_LOGINS = "too_many_logins"
    SENDER_NOT_ALLOWED = "sender_not_allowed"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SERVER_BUSY = "server_busy"
    SENDING_LIMIT = "sending_limit"
    OLD_TLS = "old_tls"
    IP_REFUSED = "ip_refused"


@dataclass(frozen=True, slots=True)
class ReplyAdvice:
    topic: ReplyTopic
    provider: str | None  # "Microsoft 365", "Google", or None for any server
    summary: str  # what the reply means, in one sentence
    fix: str  # what to change


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table. Every criterion given must match; ``None`` matches anything."""

    topic: ReplyTopic
    provider: str | None
    summary: str
    fix: str
    codes: frozenset[int] | None = None
    enhanced: frozenset[str] | None = None
    pattern: re.Pattern[str] | None = None
    test: Callable[[SmtpReply], bool] | None = None
    # Replaces summary / fix from the reply itself (the XOAUTH2 challenge's JSON).
    describe: Callable[[SmtpReply], tuple[str, str]] | None = None

    def matches(self, reply: SmtpReply, enhanced: str | None) -> bool:
        if self.codes is not None and reply.code not in self.codes:
            return False
        if self.enhanced is not None and enhanced not in self.enhanced:
            return False
        if self.pattern is not None and not self.pattern.search(reply.text):
            return False
        return self.test is None or self.test(reply)

    def advice(self, reply: SmtpReply) -> ReplyAdvice:
        summary, fix = self.describe(reply) if self.describe else (self.summary, self.fix)
        return ReplyAdvice(self.topic, self.provider, summary, fix)


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


# --- Google's XOAUTH2 challenge -----------------------------------------------------------
#
# A refused XOAUTH2 token gets ``334 <base64 JSON>`` (RFC 7628 error response), e.g.
# {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}; the client sends
# an empty line and the server then ends with 535 5.7.8.


def xoauth2_challenge(text: str) -> dict[str, str] | None:
    """The JSON of an XOAUTH2 error challenge (``334 eyJ...``), or ``None`` if ``text`` is
    not one. Values are kept only if they are short strings."""
    token = text.strip().split(None, 1)[0] if text.strip() else ""
    if not token.startswith("eyJ") or len(token) > 2000:
        return None
    try:
        decoded = json.loads(base64.b64decode(token + "=" * (-len(token) % 4), validate=True))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(decoded, dict):
        return None
    return {
        str(k)[:50]: v[:_MAX_SCOPE]
        for k, v in decoded.items()
        if isinstance(v, str) and len(v) <= _MAX_SCOPE
    }


def _is_challenge(reply: SmtpReply) -> bool:
    return xoauth2_challenge(reply.text) is not None


def _describe_challenge(reply: SmtpReply) -> tuple[str, str]:
    challenge = xoauth2_challenge(reply.text) or {}
    status = challenge.get("status", "")
    scope = challenge.get("scope", "")
    if not re.fullmatch(r"https://[\w./-]+", scope):
        scope = "https://mail.google.com/"
    if status == "401":
        summary = (
            "The server refused the OAuth2 access token (status 401): it expired, was "
            "revoked, or was issued for another account."
        )
    else:
        summary = (
            f"The server refused the OAuth2 access token (status {status or 'unknown'}): "
            f"it does not carry the scope {scope} or was issued for another user."
        )
    fix = (
        f"Reconnect the account (sign in again) and grant the scope {scope}; the "
        "username must be the mailbox the token was issued for. With a service account, "
        f"authorize its client id for {scope} under domain-wide delegation."
    )
    return summary, fix


# --- the table ------------------------------------------------------------------------------

_ENABLE_SMTP_AUTH = (
    "Enable Authenticated SMTP: for the mailbox in the Microsoft 365 admin center (Users → "
    "Active users → the user → Mail → Manage email apps → Authenticated SMTP), or for the "
    "whole tenant with `Set-TransportConfig -SmtpClientAuthenticationDisabled $false` "
    "(Exchange Online PowerShell). Security defaults block SMTP AUTH with a password even "
    "then: turn them off or use OAuth2 (Microsoft 365 sign-in)."
)
_USE_OAUTH = (
    "Switch the authentication method to OAuth2 (Connect Microsoft 365): Microsoft refuses "
    "passwords for this mailbox, and switches Basic authentication for SMTP AUTH off for "
    "every tenant at the end of December 2026."
)
_SEND_AS = (
    "Use the mailbox's own address as the sender, or grant the account Send As on the "
    "sender (Exchange admin center → Recipients → the sender's mailbox → Delegation → Send "
    "as, or `Add-RecipientPermission <sender> -AccessRights SendAs -Trustee <account>`); "
    "the change can take up to an hour to apply."
)
#: The fix for a refused sender when nothing more specific is known (also used by the
#: SMTP adapter for a permanent MAIL FROM refusal no rule recognizes).
SENDER_FIX = (
    "Use a sender address this account may send as (usually the account's own address), "
    "or grant the account permission to send as this address (Microsoft 365: Send As; "
    "relays: add and verify the sender address or its domain)."
)
_GOOGLE_SIGN_IN = (
    "Google does not accept the account's normal password for SMTP: use an app password "
    "(Google Account → Security → 2-Step Verification → App passwords) or OAuth2 (Connect "
    "Google). If OAuth2 is already used, reconnect the account. The username must be the "
    "full address."
)

RULES: tuple[Rule, ...] = (
    # Microsoft 365 / Exchange Online ----------------------------------------------------
    Rule(
        ReplyTopic.SMTP_AUTH_DISABLED,
        MICROSOFT,
        "SMTP AUTH (Authenticated SMTP) is switched off for this mailbox or the whole "
        "Microsoft 365 tenant.",
        _ENABLE_SMTP_AUTH,
        pattern=_re(r"SmtpClientAuthentication is disabled"),
    ),
    Rule(
        ReplyTopic.BASIC_AUTH_BLOCKED,
        MICROSOFT,
        "Microsoft 365 refuses a password login for this mailbox (security defaults or "
        "Basic authentication switched off).",
        _USE_OAUTH,
        pattern=_re(r"security defaults|basic authentication is disabled"),
    ),
    Rule(
        ReplyTopic.SIGN_IN_BLOCKED,
        MICROSOFT,
        "Microsoft 365 blocked this sign-in: a Conditional Access policy or MFA requirement "
        "does not allow it.",
        "Ask the tenant's administrator to allow the sign-in (Entra ID → Sign-in logs show "
        "which policy blocked it), or use OAuth2 (Connect Microsoft 365).",
        enhanced=frozenset({"5.7.139"}),
        pattern=_re(r"did not meet the criteria"),
    ),
    Rule(
        ReplyTopic.CREDENTIALS_REJECTED,
        MICROSOFT,
        "Microsoft 365 did not accept the username and password.",
        "Check the username (the mailbox's full address) and re-enter the password; with "
        "MFA an app password is needed, or use OAuth2 (Connect Microsoft 365).",
        enhanced=frozenset({"5.7.139"}),
    ),
    Rule(
        ReplyTopic.APP_NOT_PERMITTED,
        MICROSOFT,
        "Microsoft 365 refused the login (5.7.3): with OAuth2 app-only (client credentials) "
        "the app's service principal is not registered in Exchange Online or has no "
        "permission on the mailbox; with a password, the credentials were wrong.",
        "App-only OAuth2: in Exchange Online PowerShell run `New-ServicePrincipal -AppId "
        "<client id> -ObjectId <enterprise application object id>`, then `Add-MailboxPermission "
        "-Identity <mailbox> -User <service principal id> -AccessRights FullAccess`, and "
        "make sure the app has the SMTP.SendAsApp permission with admin consent. With a "
        "password: check the username (full address) and password.",
        codes=frozenset({535}),
        enhanced=frozenset({"5.7.3"}),
    ),
    Rule(
        ReplyTopic.BASIC_AUTH_BLOCKED,
        MICROSOFT,
        "Microsoft 365 no longer accepts Basic authentication (a password) for SMTP client "
        "submission.",
        _USE_OAUTH,
        enhanced=frozenset({"5.7.30"}),
    ),
    Rule(
        ReplyTopic.SENDER_NOT_ALLOWED,
        MICROSOFT,
        "The account may not send as this sender: Microsoft 365 refused the message because "
        "the mailbox has no Send As permission on the sender address.",
        _SEND_AS,
        pattern=_re(r"SendAsDenied|permissions? to send as"),
    ),
    Rule(
        ReplyTopic.TOO_MANY_CONNECTIONS,
        MICROSOFT,
        "Too many connections at once for this mailbox (Microsoft 365 allows 3 concurrent "
        "connections per mailbox); temporary, the message is retried.",
        "Lower the maximum connections (limits.max_connections) to 3 or less, and count "
        "other programs that send through the same mailbox.",
        pattern=_re(r"sender thread limit exceeded|concurrent connection limit"),
    ),
    Rule(
        ReplyTopic.SERVER_BUSY,
        MICROSOFT,
        "Microsoft 365 is throttling this client (server busy); temporary, the message is "
        "retried later.",
        "Nothing to change if it is rare; if it persists, lower the messages per minute "
        "(Microsoft allows 30 per minute per mailbox) and the maximum connections.",
        enhanced=frozenset({"4.7.500"}),
    ),
    Rule(
        ReplyTopic.OLD_TLS,
        MICROSOFT,
        "Microsoft 365 refuses TLS 1.0 and 1.1 for SMTP AUTH.",
        "Use TLS 1.2 or newer (visitmail always does: if this shows, a proxy or middlebox "
        "in between downgrades the connection).",
        enhanced=frozenset({"4.7.66", "5.7.66"}),
    ),
    Rule(
        ReplyTopic.IP_REFUSED,
        MICROSOFT,
        "Microsoft 365 does not accept traffic from this sending IP address (5.7.708: the "
        "address has a poor reputation or is on a block list).",
        "Send from a different IP address or through the organization's own relay; the "
        "tenant's administrator can ask Microsoft to delist the address "
        "(https://sender.office.com).",
        enhanced=frozenset({"5.7.708", "5.7.606", "5.7.511"}),
    ),
    # Google ---------------------------------------------------------------------------------
    Rule(
        ReplyTopic.TOKEN_REFUSED,
        GOOGLE,
        "The server refused the OAuth2 access token.",
        "Reconnect the account.",
        codes=frozenset({334}),
        test=_is_challenge,
        describe=_describe_challenge,
    ),
    Rule(
        ReplyTopic.APP_PASSWORD_REQUIRED,
        GOOGLE,
        "Google wants an app password for this account (2-Step Verification is on).",
        "Create an app password (Google Account → Security → 2-Step Verification → App "
        "passwords) and enter it as the password, or use OAuth2 (Connect Google).",
        enhanced=frozenset({"5.7.9"}),
    ),
    Rule(
        ReplyTopic.APP_PASSWORD_REQUIRED,
        None,
        "The server wants an app password (or OAuth) for this account.",
        "The provider wants an app password (or OAuth) for this account: create an app "
        "password in the account's security settings and use it here.",
        pattern=_re(r"application-specific|app(lication)? password"),
    ),
    Rule(
        ReplyTopic.APP_PASSWORD_REQUIRED,
        None,
        "The server wants an app password (or OAuth) for this account.",
        "The provider wants an app password (or OAuth) for this account: create an app "
        "password in the account's security settings and use it here.",
        codes=frozenset({534}),
    ),
    Rule(
        ReplyTopic.ENCRYPTION_REQUIRED,
        None,
        "The server accepts a login only over an encrypted connection.",
        "The server requires encryption for AUTH: choose `starttls` or `tls`.",
        codes=frozenset({538}),
    ),
    Rule(
        ReplyTopic.CREDENTIALS_REJECTED,
        GOOGLE,
        "Google did not accept the username and password (or the OAuth2 token).",
        _GOOGLE_SIGN_IN,
        pattern=_re(r"Username and Password not accepted|BadCredentials"),
    ),
    Rule(
        ReplyTopic.TOO_MANY_LOGINS,
        GOOGLE,
        "Too many login attempts in a short time; Google blocks logins for a while (temporary).",
        "Wait before the next attempt and check the password: repeated wrong passwords "
        "cause this. Fewer connections (limits.max_connections) mean fewer logins.",
        pattern=_re(r"too many login attempts"),
    ),
    Rule(
        ReplyTopic.AUTH_REQUIRED,
        None,
        "The server only accepts mail from logged-in clients, and this session is not logged in.",
        "Set the username and password (or OAuth2); for Google, the username is the full address.",
        codes=frozenset({530}),
    ),
    Rule(
        ReplyTopic.SENDING_LIMIT,
        GOOGLE,
        "The account reached Google's daily sending limit (2,000 messages per user per day "
        "for Google Workspace, about 500 for Gmail).",
        "Sending works again within 24 hours; resend the refused messages then. Set "
        "limits.per_day / limits.recipients_per_day below Google's limits so visitmail "
        "waits instead, or use Google's SMTP relay service for volume.",
        pattern=_re(r"daily (user )?sending (quota|limit)|daily smtp relay limit"),
    ),
    Rule(
        ReplyTopic.SERVER_BUSY,
        GOOGLE,
        "Google is rate-limiting this client and closed the connection (temporary); the "
        "message is retried later.",
        "Nothing to change if it is rare; if it persists, lower the messages per minute and "
        "the maximum connections.",
        codes=frozenset({421}),
        enhanced=frozenset({"4.7.0"}),
        pattern=_re(r"try again later"),
    ),
    # Any server: the sender family, decided once by names_the_sender --------------------
    Rule(
        ReplyTopic.SENDER_NOT_ALLOWED,
        None,
        "The server refused the sender address: this account is not allowed to send as "
        "this sender.",
        SENDER_FIX,
        test=names_the_sender,
    ),
)


def advise(code: int, text: str, enhanced: str | None = None) -> ReplyAdvice | None:
    """The explanation of the reply ``code text``, or ``None`` if no rule knows it.

    ``enhanced``: the RFC 3463 status if it was stored apart from the text (the outbox
    does); otherwise it is read from the start of ``text``."""
    if 200 <= code < 300:
        return None  # accepted: nothing to explain
    reply = SmtpReply(code, text)
    status = enhanced or reply.enhanced_status
    for rule in RULES:
        if rule.matches(reply, status):
            return rule.advice(reply)
    return None


def advise_stored(code: int | None, enhanced: str | None, text: str | None) -> ReplyAdvice | None:
    """:func:`advise` for what the outbox stored: a recipient's reply, or a server failure
    whose text quotes the reply behind its stage (``auth: 535 5.7.139 ...``); the code
    and enhanced status are read from the text when they were not stored."""
    if not text:
        return None
    if code is None or enhanced is None:
        found = _QUOTED_REPLY.search(text)
        if found is not None:
            code = code if code is not None else int(found.group(1))
            enhanced = enhanced or found.group(2)
    if code is None:
        return None
    return advise(code, text, enhanced)
