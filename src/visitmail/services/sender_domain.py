"""Use case: check the sender domain (SPF, DKIM, DMARC) of an organization's mail.

Gathers the DNS answers through the :class:`DnsResolver` port and hands them to the pure
judgement in ``domain.sender_domain``. Bounded: at most :data:`MAX_QUERIES` queries per
check and :data:`CHECK_TIMEOUT` seconds overall (the resolver bounds each query); what was
not answered in time is judged ``unknown``, never "missing". A DNS failure never raises:
the check is informative and must not fail the connection test it is part of.

Raises :class:`InvalidInput` for a bad ``domain`` or ``selector``, :class:`PermissionDenied`
for non-admins and :class:`NotFound` (``not_configured``) when no domain is given and no
settings are saved.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from typing import Protocol
from uuid import UUID

from visitmail.domain.dns_answers import (
    DnsSnapshot,
    Lookup,
    LookupStatus,
    normalize_domain,
    normalize_selectors,
)
from visitmail.domain.errors import NotFound
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.domain.sender_domain import DomainFacts, DomainReport, assess, dkim_name
from visitmail.domain.sending_providers import provider_for, provider_name
from visitmail.domain.smtp_settings import SmtpSettings
from visitmail.domain.spf import lookup_targets, parse_spf, spf_records
from visitmail.services.dkim import published_selector
from visitmail.services.dkim_ports import DkimReader
from visitmail.services.identity import require_role
from visitmail.services.ports import UnitOfWork

MAX_QUERIES = 60
MAX_SPF_DEPTH = 10
CHECK_TIMEOUT = 15.0
TIMED_OUT = Lookup(LookupStatus.ERROR, error="the check ran out of time")


class DnsResolver(Protocol):
    """Looks names up; never raises for DNS trouble (answers ``LookupStatus.ERROR``).
    Names are given without the trailing dot."""

    async def txt(self, name: str) -> Lookup: ...

    async def cname(self, name: str) -> Lookup: ...

    async def addresses(self, name: str) -> Lookup:
        """A and AAAA together."""
        ...

    async def mx(self, name: str) -> Lookup:
        """Exchange names, best preference first."""
        ...


OrganizationalDomain = Callable[[str], str]


def last_two_labels(domain: str) -> str:
    """Fallback organizational domain: the last two labels (wrong for ``example.co.uk``;
    the web and CLI pass a public-suffix-list rule instead)."""
    return ".".join(domain.split(".")[-2:])


class _Gatherer:
    """Runs lookups into a snapshot, each name once, at most ``MAX_QUERIES``."""

    def __init__(self, resolver: DnsResolver) -> None:
        self.resolver = resolver
        self.snapshot = DnsSnapshot()
        self.queries = 0

    async def _one(self, kind: str, name: str) -> None:
        table: dict[str, Lookup] = getattr(self.snapshot, kind)
        if name in table or self.queries >= MAX_QUERIES:
            return
        self.queries += 1
        table[name] = TIMED_OUT  # reserved: an unfinished lookup reads as "no answer"
        table[name] = await getattr(self.resolver, kind)(name)

    async def many(self, wanted: Sequence[tuple[str, str]]) -> None:
        await asyncio.gather(*(self._one(kind, name) for kind, name in dict.fromkeys(wanted)))

    async def spf_tree(self, domain: str) -> None:
        """The SPF record and, level by level, what its includes and redirects need."""
        level = [domain]
        for _depth in range(MAX_SPF_DEPTH):
            wanted: list[tuple[str, str]] = []
            for name in level:
                lookup = self.snapshot.get_txt(name)
                records = spf_records(lookup.values)
                if len(records) != 1:
                    continue
                for kind, target in lookup_targets(parse_spf(records[0]), name):
                    wanted.append((kind, target))
            wanted = [(k, n) for k, n in wanted if n not in getattr(self.snapshot, k)]
            if not wanted:
                return
            await self.many(wanted)
            exchangers = [  # the addresses behind each mx
                ("addresses", ex)
                for k, n in wanted
                if k == "mx"
                for ex in self.snapshot.get_mx(n).values[:10]
            ]
            await self.many(exchangers)
            level = [n for k, n in wanted if k == "txt"]


async def check_domain(
    resolver: DnsResolver,
    domain: str,
    *,
    settings: SmtpSettings | None = None,
    selectors: Sequence[str] = (),
    organizational_domain: OrganizationalDomain = last_two_labels,
    budget_seconds: float = CHECK_TIMEOUT,
) -> DomainReport:
    """Check ``domain`` for mail sent with ``settings`` (provider from the preset or the
    host; ``None``: no provider known). ``selectors``: DKIM selectors to look up besides
    the provider's own (a key visitmail signs with, one the admin names). What is not
    answered within ``budget_seconds`` is judged ``unknown``."""
    clean = normalize_domain(domain)
    chosen = normalize_selectors(list(selectors))
    provider = provider_for(
        settings.preset if settings else None, settings.host if settings else None, clean
    )
    gather = _Gatherer(resolver)
    org = organizational_domain(clean)
    host = settings.host if settings is not None else None
    dkim_selectors = [*chosen, *(provider.dkim_selectors if provider else ())]
    try:
        async with asyncio.timeout(min(budget_seconds, CHECK_TIMEOUT)):
            first: list[tuple[str, str]] = [("txt", clean), ("txt", f"_dmarc.{clean}")]
            if org != clean:
                first.append(("txt", f"_dmarc.{org}"))
            for selector in dict.fromkeys(dkim_selectors):
                first += [
                    ("txt", dkim_name(selector, clean)),
                    ("cname", dkim_name(selector, clean)),
                ]
            if host and not _is_ip(host):
                first.append(("addresses", host))
            await gather.many(first)
            await gather.spf_tree(clean)
    except TimeoutError:
        pass  # what is missing is judged "unknown"
    facts = DomainFacts(
        domain=clean,
        organizational_domain=org,
        provider=provider,
        provider_name=provider_name(provider, settings.preset if settings else None),
        smtp_host=host,
        smtp_host_addresses=_host_addresses(host, gather.snapshot),
        selectors=chosen,
        per_day=settings.limits.per_day if settings else None,
    )
    return assess(facts, gather.snapshot)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_addresses(host: str | None, snapshot: DnsSnapshot) -> Lookup | None:
    """The SMTP host's addresses: an address literal is its own answer."""
    if not host:
        return None
    return Lookup.found(host) if _is_ip(host) else snapshot.get_addresses(host)


def sender_domain(settings: SmtpSettings) -> str:
    return settings.sender_email.rsplit("@", 1)[1]


class DomainCheckUnitOfWork(UnitOfWork, DkimReader, Protocol):
    """The stored SMTP settings and the organization's DKIM keys."""


async def own_selectors(reader: DkimReader, organization_id: UUID, domain: str) -> tuple[str, ...]:
    """The selector of the organization's active DKIM signing key (visitmail signs, so
    its record must be in DNS) when it signs for ``domain`` or a parent of it; else
    nothing."""
    published = await published_selector(reader, organization_id)
    if published is None:
        return ()
    signed = published.domain.lower().rstrip(".")
    checked = domain.lower().rstrip(".")
    if checked == signed or checked.endswith("." + signed):
        return (published.selector,)
    return ()


async def check_for_organization(
    uow: DomainCheckUnitOfWork,
    resolver: DnsResolver,
    principal: Principal,
    *,
    domain: str | None = None,
    selectors: Sequence[str] = (),
    organizational_domain: OrganizationalDomain = last_two_labels,
) -> DomainReport:
    """The check for the admin's organization: the stored sender's domain, or ``domain``
    (judged for the stored provider if settings exist). Ends the read transaction before
    any DNS query."""
    require_role(principal, Role.ADMIN)
    if domain is not None:
        normalize_domain(domain)  # refuse bad input before touching anything
    normalize_selectors(list(selectors))
    stored = await uow.smtp_settings.get(principal.organization_id)
    settings = stored.settings if stored else None
    if domain is None:
        if settings is None:
            raise NotFound(
                "no SMTP settings have been saved yet: save them or give a domain",
                code="not_configured",
            )
        domain = sender_domain(settings)
    own = await own_selectors(uow, principal.organization_id, domain)
    selectors = [*selectors, *(s for s in own if s not in selectors)]
    await uow.commit()
    return await check_domain(
        resolver,
        domain,
        settings=settings,
        selectors=selectors,
        organizational_domain=organizational_domain,
    )
