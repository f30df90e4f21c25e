"""Provider presets: host, port and security of well-known relays, with what the admin must
know to log in, and the provider's sending limits where they are documented and stable.

Limits are only filled where the number is published and does not depend on the plan or
account; otherwise they are ``None`` and ``limits_note`` says where to look. A preset fills
the form; the admin still owns every value, and the connection test is the judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from visitmail.domain.errors import InvalidInput
from visitmail.domain.smtp_settings import Security

DEFAULT_SES_REGION = "eu-central-1"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@dataclass(frozen=True, slots=True)
class PresetLimits:
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    recipients_per_day: int | None = None  # a message to 3 recipients counts 3
    max_connections: int | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    port: int
    security: Security


@dataclass(frozen=True, slots=True)
class SmtpPreset:
    id: str
    name: str
    host: str  # may contain "{region}"; see :func:`preset_host`
    port: int
    security: Security
    username_hint: str
    credential_hint: str
    note: str
    alternatives: tuple[Endpoint, ...] = ()
    limits: PresetLimits = field(default_factory=PresetLimits)
    limits_note: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # (name, default)
    # The login name when the provider fixes it (SendGrid's literal ``apikey``): choosing
    # the preset fills the username with it. ``None``: the admin's own account name.
    username: str | None = None


PLAN_DEPENDENT = "depends on the plan or account; see the provider's dashboard"

PRESETS: tuple[SmtpPreset, ...] = (
    SmtpPreset(
        id="sendgrid",
        name="SendGrid (Twilio)",
        host="smtp.sendgrid.net",
        port=587,
        security=Security.STARTTLS,
        alternatives=(Endpoint(465, Security.TLS),),
        username_hint="apikey (literally)",
        username="apikey",
        credential_hint="an API key with the 'Mail Send' permission",
        note="The sender address or its domain must be verified in SendGrid "
        "(Sender Authentication).",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="brevo",
        name="Brevo (Sendinblue)",
        host="smtp-relay.brevo.com",
        port=587,
        security=Security.STARTTLS,
        alternatives=(Endpoint(465, Security.TLS),),
        username_hint="the SMTP login shown under SMTP & API in Brevo",
        credential_hint="an SMTP key (not the account password, not an API key)",
        note="The sender must be a verified sender or on an authenticated domain.",
        limits_note="free plan: 300 emails per day; paid plans: see the provider's dashboard",
    ),
    SmtpPreset(
        id="mailchimp-transactional",
        name="Mailchimp Transactional (Mandrill)",
        host="smtp.mandrillapp.com",
        port=587,
        security=Security.STARTTLS,
        alternatives=(Endpoint(465, Security.TLS),),
        username_hint="any name (e.g. your Mailchimp account name)",
        credential_hint="a Mandrill API key",
        note="The sending domain must be verified and authenticated (DKIM, SPF) in Mandrill.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="microsoft-365",
        name="Microsoft 365 / Exchange Online",
        host="smtp.office365.com",
        port=587,
        security=Security.STARTTLS,
        username_hint="the mailbox's full address",
        credential_hint="the mailbox password (or an app password with MFA)",
        note="SMTP AUTH must be enabled for the mailbox (it is off by default in new tenants); "
        "the sender must be the mailbox or one it may send as. Microsoft switches Basic "
        "authentication for SMTP AUTH off at the end of December 2026: use OAuth2.",
        limits=PresetLimits(per_minute=30, recipients_per_day=10_000, max_connections=3),
        limits_note="Exchange Online, per mailbox: 3 concurrent connections, 30 messages per "
        "minute, 10,000 recipients per day",
    ),
    SmtpPreset(
        id="google-workspace",
        name="Google Workspace",
        host="smtp.gmail.com",
        port=465,
        security=Security.TLS,
        alternatives=(Endpoint(587, Security.STARTTLS),),
        username_hint="the account's full address",
        credential_hint="an app password (needs 2-Step Verification)",
        note="The sender must be the account or an alias verified in Gmail's settings. For "
        "volume, Google's SMTP relay service (smtp-relay.gmail.com) is the better fit.",
        limits=PresetLimits(per_day=2_000, recipients_per_day=10_000),
        limits_note="Google Workspace, per user: 2,000 messages per day and 10,000 "
        "recipients per day (fewer during a trial)",
    ),
    SmtpPreset(
        id="gmail",
        name="Gmail (personal account)",
        host="smtp.gmail.com",
        port=465,
        security=Security.TLS,
        alternatives=(Endpoint(587, Security.STARTTLS),),
        username_hint="the Gmail address",
        credential_hint="an app password (needs 2-Step Verification)",
        note="Meant for personal use; the sender must be the account or a verified alias.",
        limits=PresetLimits(recipients_per_day=500),
        limits_note="Gmail: about 500 recipients per day",
    ),
    SmtpPreset(
        id="amazon-ses",
        name="Amazon SES",
        host="email-smtp.{region}.amazonaws.com",
        port=587,
        security=Security.STARTTLS,
        alternatives=(Endpoint(465, Security.TLS),),
        username_hint="the SMTP user name from the SES console (not an IAM access key id)",
        credential_hint="the SMTP password generated with it",
        note="The sender address or domain must be verified in that region. New accounts are "
        "in the sandbox and may only send to verified recipients.",
        limits_note="sandbox: 200 messages per 24 hours, 1 per second; production: the quota "
        "shown in the SES console",
        parameters=(("region", DEFAULT_SES_REGION),),
    ),
    SmtpPreset(
        id="mailgun",
        name="Mailgun (US)",
        host="smtp.mailgun.org",
        port=587,
        security=Security.STARTTLS,
        alternatives=(Endpoint(465, Security.TLS),),
        username_hint="an SMTP user of the sending domain (e.g. postmaster@mg.example.com)",
        credential_hint="that SMTP user's password",
        note="Domains in Mailgun's EU region use the 'Mailgun (EU)' preset.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="mailgun-eu",
        name="Mailgun (EU)",
        host="smtp.eu.mailgun.org",
        port=587,
        security=Security.STARTTLS,
        alternatives=(Endpoint(465, Security.TLS),),
        username_hint="an SMTP user of the sending domain (e.g. postmaster@mg.example.com)",
        credential_hint="that SMTP user's password",
        note="For domains created in Mailgun's EU region.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="postmark",
        name="Postmark",
        host="smtp.postmarkapp.com",
        port=587,
        security=Security.STARTTLS,
        username_hint="the Server API token",
        credential_hint="the same Server API token",
        note="The sender signature or domain must be confirmed in Postmark.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="sparkpost",
        name="SparkPost (US)",
        host="smtp.sparkpostmail.com",
        port=587,
        security=Security.STARTTLS,
        username_hint="SMTP_Injection (literally)",
        username="SMTP_Injection",
        credential_hint="an API key with the 'Send via SMTP' permission",
        note="The sending domain must be verified. EU accounts use the 'SparkPost (EU)' preset.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="sparkpost-eu",
        name="SparkPost (EU)",
        host="smtp.eu.sparkpostmail.com",
        port=587,
        security=Security.STARTTLS,
        username_hint="SMTP_Injection (literally)",
        username="SMTP_Injection",
        credential_hint="an API key with the 'Send via SMTP' permission",
        note="For accounts hosted in SparkPost's EU region.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="zoho",
        name="Zoho Mail",
        host="smtp.zoho.eu",
        port=465,
        security=Security.TLS,
        alternatives=(Endpoint(587, Security.STARTTLS),),
        username_hint="the mailbox's full address",
        credential_hint="the password, or an app-specific password with 2FA",
        note="This is the EU data centre; accounts in the US data centre use smtp.zoho.com. "
        "The sender must be the mailbox or one of its aliases.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="ionos",
        name="IONOS (1&1)",
        host="smtp.ionos.de",
        port=587,
        security=Security.STARTTLS,
        alternatives=(Endpoint(465, Security.TLS),),
        username_hint="the mailbox's full address",
        credential_hint="the mailbox password",
        note="The sender must be the mailbox or an alias of it.",
        limits_note=PLAN_DEPENDENT,
    ),
    SmtpPreset(
        id="strato",
        name="STRATO",
        host="smtp.strato.de",
        port=465,
        security=Security.TLS,
        alternatives=(Endpoint(587, Security.STARTTLS),),
        username_hint="the mailbox's full address",
        credential_hint="the mailbox password",
        note="The sender must be the mailbox or an alias of it.",
        limits_note=PLAN_DEPENDENT,
    ),
)

_BY_ID = {p.id: p for p in PRESETS}


def find_preset(preset_id: str) -> SmtpPreset | None:
    return _BY_ID.get(preset_id)


def preset_ids() -> list[str]:
    return [p.id for p in PRESETS]


def preset_host(preset: SmtpPreset, *, region: str | None = None) -> str:
    """The host, with ``{region}`` filled (Amazon SES); raises InvalidInput for a bad region."""
    if "{region}" not in preset.host:
        return preset.host
    chosen = (region or dict(preset.parameters).get("region") or DEFAULT_SES_REGION).strip()
    if not _REGION.match(chosen):
        raise InvalidInput("is not an AWS region name like eu-central-1", field="region")
    return preset.host.replace("{region}", chosen)
