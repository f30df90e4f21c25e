"""What the sender-domain check knows about each provider (keyed by preset id): the SPF
include that authorizes it, the DKIM selectors it signs with and the record that publishes
them, and whether its envelope sender (Return-Path) is the organization's own domain.

Facts are from each provider's published setup guide. Where a value depends on the
account (SendGrid's CNAME target, a Microsoft 365 tenant name) the record to publish says
so with a ``<placeholder>`` instead of guessing. A provider without a known include is
judged by the SMTP host's addresses (see ``sender_domain``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from visitmail.domain.smtp_presets import find_preset


@dataclass(frozen=True, slots=True)
class DkimRecordHint:
    """How a selector is published: ``CNAME`` to ``target`` or ``TXT`` with ``value``;
    ``{selector}`` and ``{domain_dashed}`` are filled in."""

    type: str  # "CNAME" | "TXT"
    value: str
    where: str  # where the admin gets the real value


@dataclass(frozen=True, slots=True)
class SendingProvider:
    id: str
    name: str
    spf_includes: tuple[str, ...] = ()  # any one authorizes; the first is the one to add
    dkim_selectors: tuple[str, ...] = ()
    dkim_selectors_certain: bool = False  # the provider always uses exactly these
    dkim_all_required: bool = False  # every selector must exist (key rotation: Microsoft)
    dkim_record: DkimRecordHint | None = None
    # Return-Path on the organization's domain: SPF can align with From. Relays put
    # their own bounce domain there unless a custom return path is set up at the relay.
    envelope_on_sender_domain: bool = False
    note: str | None = None


_GENERIC_TXT = DkimRecordHint(
    "TXT", "v=DKIM1; k=rsa; p=<public key>", "the public key from your mail server or provider"
)

PROVIDERS: tuple[SendingProvider, ...] = (
    SendingProvider(
        id="microsoft-365",
        name="Microsoft 365",
        spf_includes=("spf.protection.outlook.com",),
        dkim_selectors=("selector1", "selector2"),
        dkim_selectors_certain=True,
        dkim_all_required=True,
        dkim_record=DkimRecordHint(
            "CNAME",
            "{selector}-{domain_dashed}._domainkey.<tenant>.onmicrosoft.com",
            "Microsoft Defender portal → Email authentication settings → DKIM (it shows both "
            "CNAME targets; <tenant> is your initial onmicrosoft.com name), then enable signing",
        ),
        envelope_on_sender_domain=True,
    ),
    SendingProvider(
        id="google-workspace",
        name="Google Workspace",
        spf_includes=("_spf.google.com",),
        dkim_selectors=("google",),
        dkim_selectors_certain=True,
        dkim_record=DkimRecordHint(
            "TXT",
            "v=DKIM1; k=rsa; p=<public key>",
            "Google Admin console → Apps → Google Workspace → Gmail → Authenticate email "
            "(generate the record, publish it, then click Start authentication)",
        ),
        envelope_on_sender_domain=True,
    ),
    SendingProvider(
        id="gmail",
        name="Gmail",
        spf_includes=("_spf.google.com",),
        dkim_selectors=("google",),
        envelope_on_sender_domain=True,
        note="A personal Gmail account signs as gmail.com; sending as your own domain "
        "through it does not align DKIM.",
    ),
    SendingProvider(
        id="sendgrid",
        name="SendGrid",
        spf_includes=("sendgrid.net",),
        dkim_selectors=("s1", "s2"),
        dkim_all_required=True,
        dkim_record=DkimRecordHint(
            "CNAME",
            "{selector}.domainkey.u<account id>.wl.sendgrid.net",
            "SendGrid → Settings → Sender Authentication → Authenticate Your Domain",
        ),
        note="SendGrid's Return-Path is its own subdomain (em….your-domain via CNAME), so "
        "SPF is checked there; the include on the From domain helps only without it.",
    ),
    SendingProvider(
        id="brevo",
        name="Brevo",
        spf_includes=("spf.brevo.com", "spf.sendinblue.com", "sendinblue.com"),
        dkim_selectors=("brevo1", "brevo2", "mail"),
        dkim_record=DkimRecordHint(
            "CNAME", "b1.<your domain with dashes>.dkim.brevo.com", "Brevo → Senders & IP → Domains"
        ),
    ),
    SendingProvider(
        id="mailchimp-transactional",
        name="Mailchimp Transactional (Mandrill)",
        spf_includes=("spf.mandrillapp.com",),
        dkim_selectors=("mte1", "mte2", "mandrill", "k1"),
        dkim_record=DkimRecordHint(
            "CNAME", "dkim1.mandrillapp.com", "Mandrill → Settings → Domains → Sending domains"
        ),
    ),
    SendingProvider(
        id="amazon-ses",
        name="Amazon SES",
        spf_includes=("amazonses.com",),
        dkim_record=DkimRecordHint(
            "CNAME",
            "<token>.dkim.amazonses.com",
            "SES console → Verified identities → your domain → DKIM (three CNAME records, "
            "each named <token>._domainkey)",
        ),
        note="Easy DKIM uses three random selectors per domain: enter them as selectors to "
        "check them.",
    ),
    SendingProvider(
        id="mailgun",
        name="Mailgun",
        spf_includes=("mailgun.org",),
        dkim_selectors=("mx", "k1", "smtp", "pic"),
        dkim_record=_GENERIC_TXT,
    ),
    SendingProvider(
        id="mailgun-eu",
        name="Mailgun (EU)",
        spf_includes=("eu.mailgun.org", "mailgun.org"),
        dkim_selectors=("mx", "k1", "smtp", "pic"),
        dkim_record=_GENERIC_TXT,
    ),
    SendingProvider(
        id="postmark",
        name="Postmark",
        spf_includes=("spf.mtasv.net",),
        dkim_record=DkimRecordHint(
            "TXT", "k=rsa; p=<public key>", "Postmark → Sender Signatures → your domain → DNS"
        ),
        note="Postmark's DKIM selector looks like 20240101000000pm: enter it as a selector "
        "to check it.",
    ),
    SendingProvider(
        id="sparkpost",
        name="SparkPost",
        spf_includes=("sparkpostmail.com",),
        dkim_record=_GENERIC_TXT,
    ),
    SendingProvider(
        id="sparkpost-eu",
        name="SparkPost (EU)",
        spf_includes=("eu.sparkpostmail.com", "sparkpostmail.com"),
        dkim_record=_GENERIC_TXT,
    ),
)

_BY_ID = {p.id: p for p in PROVIDERS}
_SES_HOST = re.compile(r"^email-smtp\.[a-z0-9-]+\.amazonaws\.com$")
_HOSTS = {
    "smtp.office365.com": "microsoft-365",
    "smtp-mail.outlook.com": "microsoft-365",
    "smtp.gmail.com": "google-workspace",
    "smtp-relay.gmail.com": "google-workspace",
    "smtp.sendgrid.net": "sendgrid",
    "smtp-relay.brevo.com": "brevo",
    "smtp-relay.sendinblue.com": "brevo",
    "smtp.mandrillapp.com": "mailchimp-transactional",
    "smtp.mailgun.org": "mailgun",
    "smtp.eu.mailgun.org": "mailgun-eu",
    "smtp.postmarkapp.com": "postmark",
    "smtp.sparkpostmail.com": "sparkpost",
    "smtp.eu.sparkpostmail.com": "sparkpost-eu",
}


def provider_for(
    preset: str | None, host: str | None, sender_domain: str
) -> SendingProvider | None:
    """The provider the mail goes through: the chosen preset, else recognized by the SMTP
    host (an admin who typed ``smtp.office365.com`` without the preset). ``smtp.gmail.com``
    for a gmail.com sender is the personal Gmail profile."""
    chosen = preset
    if chosen is None and host:
        name = host.lower().rstrip(".")
        chosen = "amazon-ses" if _SES_HOST.match(name) else _HOSTS.get(name)
    if chosen == "google-workspace" and sender_domain in ("gmail.com", "googlemail.com"):
        chosen = "gmail"
    return _BY_ID.get(chosen) if chosen else None


def provider_name(provider: SendingProvider | None, preset: str | None) -> str | None:
    if provider is not None:
        return provider.name
    found = find_preset(preset) if preset else None
    return found.name if found else None
