"""SPF (RFC 7208) as far as the sender-domain check needs it: parse a record, walk it through
its includes over answers already gathered (:class:`DnsSnapshot`), count the DNS lookups,
and build the one record to publish. No I/O.

What is decided:

- a domain has exactly one ``v=spf1`` TXT record; two or more is a permanent error (§4.5);
- ``include``, ``a``, ``mx``, ``ptr``, ``exists`` and ``redirect`` each cost one DNS lookup,
  counted through every include and redirect; more than 10 is a permanent error (§4.6.4),
  and so is more than 2 *void* lookups (a name with no records); an ``mx`` with more than
  10 exchanges too;
- an include whose target publishes no SPF record is a permanent error (§5.2);
- which include targets and which address ranges (``ip4``, ``ip6``, and the addresses
  behind ``a`` and ``mx`` where they were looked up) a pass covers.

What is *not* decided, and said so (``undecidable``): ``ptr`` and ``exists`` and macros
(``%{i}``) depend on the connecting address; a lookup that failed (timeout) hides what is
behind it. Qualifier order is simplified: only ``+`` (pass) terms authorize, and an earlier
``-ip4`` overlapping a later ``+ip4`` is not modelled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from visitmail.domain.dns_answers import DnsSnapshot, LookupStatus

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
_WALK_BOUND = 30  # stop walking (not counting) far past the limit: the verdict is clear
LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_QUALIFIERS = "+-~?"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SpfTerm:
    """One term: a mechanism (``-all``, ``include:x``) or a modifier (``redirect=x``)."""

    text: str
    qualifier: str  # "+", "-", "~", "?" (modifiers: "")
    name: str  # lower case: "include", "ip4", "redirect", ...
    value: str | None

    @property
    def is_modifier(self) -> bool:
        return self.qualifier == ""


@dataclass(frozen=True, slots=True)
class SpfRecord:
    text: str
    terms: tuple[SpfTerm, ...]
    problems: tuple[str, ...] = ()

    @property
    def all_term(self) -> SpfTerm | None:
        return next((t for t in self.terms if t.name == "all"), None)

    @property
    def redirect(self) -> str | None:
        term = next((t for t in self.terms if t.name == "redirect"), None)
        return term.value if term else None


def is_spf(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def spf_records(values: Sequence[str]) -> list[str]:
    """The ``v=spf1`` records among a name's TXT strings (other TXT records are ignored)."""
    return [v.strip() for v in values if is_spf(v)]


def parse_spf(text: str) -> SpfRecord:
    """Split a ``v=spf1`` record into terms; unknown mechanisms are listed as problems."""
    terms: list[SpfTerm] = []
    problems: list[str] = []
    for token in text.split()[1:]:
        if "=" in token and ":" not in token.split("=", 1)[0]:
            key, argument = token.split("=", 1)
            terms.append(SpfTerm(token, "", key.lower(), argument))
            continue
        qualifier = "+"
        body = token
        if body[:1] in _QUALIFIERS:
            qualifier, body = body[0], body[1:]
        sep = min((i for i in (body.find(":"), body.find("/")) if i >= 0), default=-1)
        name = (body if sep < 0 else body[:sep]).lower()
        value = None if sep < 0 else body[sep + 1 :] if body[sep] == ":" else body[sep:]
        if name not in _MECHANISMS:
            problems.append(f"unknown SPF term '{token}' (permerror)")
        terms.append(SpfTerm(token, qualifier, name, value))
    return SpfRecord(text=text, terms=tuple(terms), problems=tuple(problems))


def _split_cidr(value: str | None, default_domain: str) -> tuple[str, int | None, int | None]:
    """``a:host/24//64`` → ("host", 24, 64); ``a`` → (domain, None, None)."""
    raw = value or ""
    v6: int | None = None
    v4: int | None = None
    if "//" in raw:
        raw, six = raw.split("//", 1)
        v6 = int(six) if six.isdigit() else None
    if "/" in raw:
        raw, four = raw.split("/", 1)
        v4 = int(four) if four.isdigit() else None
    return (raw or default_domain).lower().rstrip("."), v4, v6


def lookup_targets(record: SpfRecord, domain: str) -> list[tuple[str, str]]:
    """What to look up next to walk ``record`` of ``domain``: ``("txt", name)`` for
    includes and a redirect, ``("addresses", name)`` for ``a``, ``("mx", name)`` for ``mx``.
    Terms with macros are skipped (they depend on the sender)."""
    wanted: list[tuple[str, str]] = []
    for term in record.terms:
        if term.value is not None and "%" in term.value:
            continue
        if term.name in ("include", "redirect") and term.value:
            wanted.append(("txt", term.value.lower().rstrip(".")))
        elif term.name == "a":
            wanted.append(("addresses", _split_cidr(term.value, domain)[0]))
        elif term.name == "mx":
            wanted.append(("mx", _split_cidr(term.value, domain)[0]))
    return wanted


@dataclass(slots=True)
class SpfFacts:
    """What the walk found, starting at the sender domain."""

    records: list[str] = field(default_factory=list)  # the v=spf1 records at the domain
    lookups: int = 0
    void_lookups: int = 0
    includes: set[str] = field(default_factory=set)  # every include/redirect target reached
    networks: list[IPNetwork] = field(default_factory=list)  # ranges a pass covers
    all_qualifier: str | None = None  # of the record that ends evaluation (redirects followed)
    problems: list[str] = field(default_factory=list)  # permanent errors
    undecidable: list[str] = field(default_factory=list)  # why coverage cannot be told
    unreadable: bool = False  # the domain's own TXT lookup failed
    unread_includes: list[str] = field(default_factory=list)  # includes that could not be read

    @property
    def permerror(self) -> bool:
        return bool(self.problems) or self.lookups > MAX_LOOKUPS

    def covers(self, addresses: Sequence[str]) -> bool | None:
        """``True`` if a pass covers one of ``addresses``; ``None`` when it cannot be told
        (ptr, exists, macros, a failed lookup, no address given); else ``False``."""
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if any(address.version == n.version and address in n for n in self.networks):
                return True
        return None if self.undecidable or not addresses else False


def _network(text: str, prefix: int | None, version: int) -> IPNetwork | None:
    try:
        if version == 4:
            return ipaddress.IPv4Network(f"{text}/{prefix if prefix is not None else 32}", False)
        return ipaddress.IPv6Network(f"{text}/{prefix if prefix is not None else 128}", False)
    except ValueError:
        return None


class _Walker:
    def __init__(self, snapshot: DnsSnapshot, facts: SpfFacts) -> None:
        self.snapshot = snapshot
        self.facts = facts

    def add_addresses(self, name: str, v4: int | None, v6: int | None, *, count_void: bool) -> None:
        lookup = self.snapshot.get_addresses(name)
        if lookup.status is LookupStatus.ERROR:
            self.facts.undecidable.append(f"the addresses of {name} could not be looked up")
            return
        if lookup.status.void:
            if count_void:
                self.facts.void_lookups += 1
            return
        for value in lookup.values:
            version = 6 if ":" in value else 4
            net = _network(value, v6 if version == 6 else v4, version)
            if net is not None:
                self.facts.networks.append(net)

    def walk(self, name: str, stack: tuple[str, ...], *, top: bool, ends: bool) -> None:
        """Walk the record of ``name``. ``top``: the sender domain itself (its missing
        record is not a permerror but "no SPF"); ``ends``: this record's ``all`` ends
        the evaluation (the domain's own, or a redirect's)."""
        facts = self.facts
        lookup = self.snapshot.get_txt(name)
        if lookup.status is LookupStatus.ERROR:
            if top:
                facts.unreadable = True
            else:
                facts.unread_includes.append(name)
            facts.undecidable.append(f"the SPF record of {name} could not be read")
            return
        records = spf_records(lookup.values)
        if top:
            facts.records = records
        if not records:
            if not top:
                facts.problems.append(f"{name} (included) publishes no SPF record (permerror)")
                if lookup.status.void:
                    facts.void_lookups += 1
            return
        if len(records) > 1:
            facts.problems.append(
                f"{name} publishes {len(records)} SPF records; receivers treat that as a "
                "permanent error (permerror) and SPF fails for every message"
            )
            return
        record = parse_spf(records[0])
        facts.problems.extend(record.problems)
        for term in record.terms:
            if facts.lookups > _WALK_BOUND:
                return
            if term.name in LOOKUP_MECHANISMS:
                facts.lookups += 1
            if term.value is not None and "%" in term.value:
                facts.undecidable.append(f"'{term.text}' uses a macro (depends on the sender)")
                continue
            self.term(name, term, stack, ends=ends)
        redirect = record.redirect
        if redirect and record.all_term is None:
            facts.lookups += 1
            target = redirect.lower().rstrip(".")
            facts.includes.add(target)
            if target in stack:
                facts.problems.append(f"redirect loop through {target} (permerror)")
                return
            self.walk(target, (*stack, target), top=False, ends=ends)

    def term(self, name: str, term: SpfTerm, stack: tuple[str, ...], *, ends: bool) -> None:
        facts = self.facts
        passes = term.qualifier == "+"
        if term.name == "all":
            if ends:
                facts.all_qualifier = term.qualifier
        elif term.name == "include" and term.value:
            target = term.value.lower().rstrip(".")
            facts.includes.add(target)
            if target in stack:
                facts.problems.append(f"include loop through {target} (permerror)")
                return
            if passes:
                self.walk(target, (*stack, target), top=False, ends=False)
            else:  # still costs lookups: count them, keep its ranges out
                saved = list(facts.networks)
                self.walk(target, (*stack, target), top=False, ends=False)
                facts.networks[:] = saved
        elif term.name in ("ip4", "ip6") and passes:
            text, prefix = (term.value or ""), None
            if "/" in text:
                text, raw = text.split("/", 1)
                prefix = int(raw) if raw.isdigit() else -1
            net = _network(text, prefix, 4 if term.name == "ip4" else 6)
            if net is None or prefix == -1:
                facts.problems.append(f"'{term.text}' is not a valid address range (permerror)")
            else:
                facts.networks.append(net)
        elif term.name == "a":
            target, v4, v6 = _split_cidr(term.value, name)
            if passes:
                self.add_addresses(target, v4, v6, count_void=True)
        elif term.name == "mx":
            target, v4, v6 = _split_cidr(term.value, name)
            lookup = self.snapshot.get_mx(target)
            if lookup.status is LookupStatus.ERROR:
                facts.undecidable.append(f"the MX of {target} could not be looked up")
            elif lookup.status.void:
                facts.void_lookups += 1
            else:
                if len(lookup.values) > MAX_MX_NAMES:
                    facts.problems.append(
                        f"'{term.text}' has more than {MAX_MX_NAMES} mail exchangers (permerror)"
                    )
                if passes:
                    for exchange in lookup.values[:MAX_MX_NAMES]:
                        self.add_addresses(exchange, v4, v6, count_void=False)
        elif term.name in ("ptr", "exists") and passes:
            facts.undecidable.append(f"'{term.text}' depends on the sending address")


def evaluate_spf(domain: str, snapshot: DnsSnapshot) -> SpfFacts:
    """Walk the SPF record of ``domain`` over ``snapshot``; see the module docstring."""
    facts = SpfFacts()
    _Walker(snapshot, facts).walk(domain, (domain,), top=True, ends=True)
    if facts.void_lookups > MAX_VOID_LOOKUPS:
        facts.problems.append(
            f"{facts.void_lookups} lookups find no records (at most {MAX_VOID_LOOKUPS} are "
            "allowed: permerror); remove includes or names that no longer exist"
        )
    return facts


def merged_spf(existing: Sequence[str], add: Sequence[str], *, default_all: str = "-all") -> str:
    """The single record to publish: the terms of every existing ``v=spf1`` record (merged,
    duplicates dropped) with ``add`` inserted before ``all``/``redirect``; a new record
    ends with ``default_all``."""
    body: list[str] = []
    tail: list[str] = []  # all, redirect=, exp=: they stay last
    for record in existing:
        for token in record.split()[1:]:
            lowered = token.lower()
            is_tail = lowered.lstrip(_QUALIFIERS) == "all" or lowered.startswith(
                ("redirect=", "exp=")
            )
            seen = [t.lower() for t in (*body, *tail)]
            second_all = lowered.lstrip(_QUALIFIERS) == "all" and any(
                t.lstrip(_QUALIFIERS) == "all" for t in seen
            )
            if lowered not in seen and not second_all:  # the first record's all wins
                (tail if is_tail else body).append(token)
    if any(t.lower().lstrip(_QUALIFIERS) == "all" for t in tail):
        tail = [t for t in tail if not t.lower().startswith("redirect=")]
    for token in add:
        if token.lower() not in (t.lower() for t in body):
            body.append(token)
    if not existing:
        tail = [default_all]
    return " ".join(["v=spf1", *body, *tail])
