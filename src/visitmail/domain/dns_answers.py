"""DNS answers as the sender-domain check sees them: plain values, no I/O.

A :class:`Lookup` is what one query returned: records found, the name does not exist
(NXDOMAIN), the name exists without records of that type (NODATA), or the answer could not
be had (timeout, SERVFAIL, refused: ``ERROR``). The check treats ``ERROR`` as "cannot tell",
never as "missing", so a flaky resolver does not produce a false verdict.

:class:`DnsSnapshot` holds every answer the check gathered, keyed by lower-case name
without the trailing dot. A name that is absent was not asked (a bound was reached).

Names and selectors are validated here, once, for the API, the page and the CLI alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from visitmail.domain.errors import InvalidInput

MAX_DOMAIN_LENGTH = 253
MAX_SELECTORS = 10
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_SELECTOR_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")


class LookupStatus(StrEnum):
    FOUND = "found"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NODATA = "nodata"  # the name exists, no record of this type
    ERROR = "error"  # timeout, SERVFAIL, refused: unknown

    @property
    def void(self) -> bool:
        """An answer without records (RFC 7208 §4.6.4 "void lookup")."""
        return self in (LookupStatus.NXDOMAIN, LookupStatus.NODATA)


@dataclass(frozen=True, slots=True)
class Lookup:
    status: LookupStatus
    values: tuple[str, ...] = ()
    canonical_name: str | None = None  # set when a CNAME was followed to get the values
    error: str | None = None  # why an ERROR happened, for the report

    @classmethod
    def found(cls, *values: str, canonical_name: str | None = None) -> Lookup:
        return cls(LookupStatus.FOUND, tuple(values), canonical_name)


NOT_ASKED = Lookup(LookupStatus.ERROR, error="not looked up (too many lookups)")


@dataclass(slots=True)
class DnsSnapshot:
    """Every answer gathered for one check; ``get_*`` answer :data:`NOT_ASKED` for names
    that were not looked up."""

    txt: dict[str, Lookup] = field(default_factory=dict)
    cname: dict[str, Lookup] = field(default_factory=dict)
    addresses: dict[str, Lookup] = field(default_factory=dict)  # A and AAAA together
    mx: dict[str, Lookup] = field(default_factory=dict)  # exchange names, best first

    def get_txt(self, name: str) -> Lookup:
        return self.txt.get(name.lower().rstrip("."), NOT_ASKED)

    def get_cname(self, name: str) -> Lookup:
        return self.cname.get(name.lower().rstrip("."), NOT_ASKED)

    def get_addresses(self, name: str) -> Lookup:
        return self.addresses.get(name.lower().rstrip("."), NOT_ASKED)

    def get_mx(self, name: str) -> Lookup:
        return self.mx.get(name.lower().rstrip("."), NOT_ASKED)


def normalize_domain(value: str, *, field: str = "domain") -> str:
    """A DNS name to check: lower case, no trailing dot, IDNA (punycode) form, at least two
    labels, at most 253 characters; IP addresses are refused. Raises :class:`InvalidInput`
    naming ``field``."""
    cleaned = value.strip().rstrip(".")
    if not cleaned:
        raise InvalidInput("is required", field=field)
    if len(cleaned) > MAX_DOMAIN_LENGTH * 2:  # bound the work before IDNA
        raise InvalidInput(f"must be at most {MAX_DOMAIN_LENGTH} characters", field=field)
    try:
        ascii_name = cleaned.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput("is not a valid domain name", field=field) from None
    if len(ascii_name) > MAX_DOMAIN_LENGTH:
        raise InvalidInput(f"must be at most {MAX_DOMAIN_LENGTH} characters", field=field)
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput("is not a valid domain name (like example.com)", field=field)
    if labels[-1].isdigit():
        raise InvalidInput("must be a domain name, not an IP address", field=field)
    return ascii_name


def normalize_selectors(
    values: list[str] | tuple[str, ...], *, field: str = "selector"
) -> tuple[str, ...]:
    """DKIM selectors (``s1``, ``selector1``, ``2024a.eu``): labels of letters, digits and
    hyphens, at most :data:`MAX_SELECTORS`, duplicates dropped, order kept."""
    if len(values) > MAX_SELECTORS:
        raise InvalidInput(f"at most {MAX_SELECTORS} selectors", field=field)
    out: list[str] = []
    for raw in values:
        selector = raw.strip().lower().rstrip(".")
        labels = selector.split(".")
        if (
            not selector
            or len(selector) > 63 * 2
            or not all(_SELECTOR_LABEL.match(label) for label in labels)
        ):
            raise InvalidInput(
                "is not a DKIM selector (letters, digits and hyphens, like selector1)",
                field=field,
            )
        if selector not in out:
            out.append(selector)
    return tuple(out)
