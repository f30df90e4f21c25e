"""Wiring for the SMTP-settings API: the secret box and the connection tester.

``get_domain_check`` gives the sender-domain check (SPF, DKIM, DMARC) its DNS resolver:
the operator's nameservers (``VISITMAIL_DNS_NAMESERVERS``) or ``app.state.dns_resolver``.
``get_diagnoser`` returns ``app.state.diagnoser`` when one is set (tests set a fake) and
otherwise builds the real tester from the operator settings. With ``--dev-inbox`` loopback
is allowed, so the local sink can be tested, and :func:`note_for_dev_inbox` lets the
dev inbox show the test's message to the organization that sent it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request

from visitmail.adapters.crypto.keyring import KeyRing
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.config import Settings
from visitmail.domain.diagnosis import DiagnosisReport
from visitmail.domain.identity import Principal
from visitmail.runtime import Runtime
from visitmail.services import dev_inbox
from visitmail.services.dkim import DkimSigning
from visitmail.services.sender_domain import DnsResolver
from visitmail.services.smtp_config import DomainCheck
from visitmail.services.smtp_ports import SmtpDiagnoser
from visitmail.web.deps import RuntimeDep


def build_diagnoser(settings: Settings, *, allow_loopback: bool = False) -> SmtpDiagnoser:
    """The real connection tester, honouring the operator's network and plaintext rules."""
    from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
    from visitmail.domain.network_policy import NetworkPolicy

    policy = NetworkPolicy.of(
        settings.smtp_allowed_networks,
        dev_inbox_port=settings.dev_inbox_port if allow_loopback else None,
    )
    return SmtpConnectionTester(policy, settings.allow_plaintext_auth)


def build_dns_resolver(settings: Settings) -> DnsResolver:
    """The resolver of the sender-domain check: the operator's nameservers, bounded."""
    from visitmail.adapters.dns.resolver import DnspythonResolver

    lifetime = settings.dns_timeout_seconds
    return DnspythonResolver(
        settings.dns_nameservers, timeout=min(2.0, lifetime), lifetime=lifetime
    )


def build_domain_check(settings: Settings, selectors: Sequence[str] = ()) -> DomainCheck:
    """The domain check with the public-suffix rule for the organizational domain."""
    from visitmail.adapters.dns.public_suffix import organizational_domain

    return DomainCheck(build_dns_resolver(settings), organizational_domain, tuple(selectors))


def get_domain_check(request: Request) -> DomainCheck:
    """``app.state.dns_resolver`` when one is set (tests), else the operator's."""
    runtime: Runtime = request.app.state.runtime
    check = build_domain_check(runtime.settings)
    fake: DnsResolver | None = getattr(request.app.state, "dns_resolver", None)
    return dataclasses.replace(check, resolver=fake) if fake is not None else check


def get_diagnoser(request: Request) -> SmtpDiagnoser:
    fake: SmtpDiagnoser | None = getattr(request.app.state, "diagnoser", None)
    if fake is not None:
        return fake
    runtime: Runtime = request.app.state.runtime
    dev_inbox = getattr(request.app.state, "dev_inbox", None) is not None
    return build_diagnoser(runtime.settings, allow_loopback=dev_inbox)


def note_for_dev_inbox(request: Request, principal: Principal, report: DiagnosisReport) -> None:
    """With ``--dev-inbox``: the test message the principal's connection test sent (if
    any) is theirs to see in the dev inbox. Without it: nothing."""
    mailbox: dev_inbox.DevMailbox | None = getattr(request.app.state, "dev_inbox", None)
    if mailbox is not None:
        dev_inbox.note_test_message(mailbox, principal, report)


def get_secret_box(runtime: RuntimeDep) -> SecretBox:
    return SecretBox(runtime.keyring)


def dkim_signing(keyring: KeyRing) -> DkimSigning:
    """DKIM signing for the send paths: the secret box over ``keyring`` and dkimpy."""
    from visitmail.adapters.dkim.keys import DkimpyKeys

    return DkimSigning(SecretBox(keyring), DkimpyKeys())


DiagnoserDep = Annotated[SmtpDiagnoser, Depends(get_diagnoser)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
DomainCheckDep = Annotated[DomainCheck, Depends(get_domain_check)]
