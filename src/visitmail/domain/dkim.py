"""DKIM keys of an organization: the rules for a selector and a signing domain, the DNS
record an admin publishes, and which headers are signed. Pure: no I/O, no crypto library.

Decided here, once (the same rules run when a key is made and when mail is signed):

* **Algorithms**: ``rsa`` (2048-bit, ``rsa-sha256``: every receiver verifies it) and
  ``ed25519`` (``ed25519-sha256``, RFC 8463: small and cheap to sign, but not every
  receiver verifies it yet, so it is an addition to RSA rather than a replacement).
* **Selector**: one DNS label, lower case, ``[a-z0-9-]``, 1 to :data:`MAX_SELECTOR`
  characters, not starting or ending with ``-``. The default is ``vm<yyyymm>`` of the day
  the key is made, so a rotation next month gets a new name and both records can stand in
  DNS while the admin switches.
* **Signing domain** (``d=``): a host name of 2 to 127 ASCII labels (an IDN is taken in
  its ``xn--`` form), at most :data:`MAX_DOMAIN` characters, that **equals the From
  domain or is a parent of it**. DMARC passes on DKIM only when ``d=`` is aligned with
  the From domain (relaxed alignment: same organizational domain); a parent of the From
  domain is aligned, anything else is not, and a signature that cannot align is of no use
  for DMARC. Whether a parent is a public suffix (``co.uk``) cannot be decided without the
  public suffix list: a key for such a domain would simply never be published by its
  owner, so it is not refused here.
* **The DNS record**: ``<selector>._domainkey.<domain>`` TXT ``v=DKIM1; k=<rsa|ed25519>;
  p=<base64>``; a TXT character-string holds at most 255 octets, so the value is cut into
  strings of at most 255 (an RSA-2048 record is about 410 characters: two strings).
* **Signed headers**: :data:`SIGNED_HEADERS`, with ``From`` listed twice (oversigning: a
  second From added in transit breaks the signature instead of being shown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from visitmail.domain.errors import InvalidInput

MAX_SELECTOR = 63
MAX_DOMAIN = 253
TXT_STRING_BYTES = 255
#: The most keys one organization keeps (old ones are deleted once no longer published).
MAX_KEYS = 10

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

#: Headers signed when present (RFC 6376 5.4; absent ones are signed as empty, so adding
#: one later breaks the signature). ``from`` twice: oversigned.
SIGNED_HEADERS: tuple[str, ...] = (
    "from",
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


class DkimAlgorithm(StrEnum):
    """The key type; its value is the record's ``k=`` tag."""

    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def signature_algorithm(self) -> str:
        """The signature's ``a=`` tag."""
        return "rsa-sha256" if self is DkimAlgorithm.RSA else "ed25519-sha256"


def check_algorithm(value: str, *, field: str = "algorithm") -> DkimAlgorithm:
    try:
        return DkimAlgorithm(value)
    except ValueError:
        raise InvalidInput("must be 'rsa' (2048 bit) or 'ed25519'", field=field) from None


def default_selector(now: datetime) -> str:
    """``vm<yyyymm>`` of ``now``."""
    return f"vm{now:%Y%m}"


def check_selector(value: str, *, field: str = "selector") -> str:
    """The selector in lower case, or :class:`InvalidInput` naming ``field``."""
    if not isinstance(value, str) or not value or len(value) > MAX_SELECTOR:
        raise InvalidInput(f"must be 1 to {MAX_SELECTOR} characters", field=field)
    selector = value.lower()
    if not _LABEL.match(selector):
        raise InvalidInput(
            "must be one DNS label: letters, digits and '-' (not first or last), no dots",
            field=field,
        )
    return selector


def check_domain_name(value: str, *, field: str = "domain") -> str:
    """A host name in lower-case ASCII (an IDN in its ``xn--`` form), at least two
    labels; or :class:`InvalidInput` naming ``field``."""
    if not isinstance(value, str) or not value or len(value) > MAX_DOMAIN:
        raise InvalidInput(f"must be 1 to {MAX_DOMAIN} characters", field=field)
    name = value.strip().rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidInput("is not a valid domain name", field=field) from None
    labels = name.split(".")
    if len(name) > MAX_DOMAIN or len(labels) < 2 or not all(_LABEL.match(p) for p in labels):
        raise InvalidInput(
            "must be a domain name like example.com (letters, digits, '-' and dots)",
            field=field,
        )
    return name


def domain_of(address: str) -> str:
    """The domain of an email address, lower case (as compared for alignment)."""
    domain = address.rpartition("@")[2].lower()
    if domain and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return domain
    return domain


def aligned(signing_domain: str, from_domain: str) -> bool:
    """True if ``signing_domain`` equals ``from_domain`` or is a parent of it."""
    return from_domain == signing_domain or from_domain.endswith("." + signing_domain)


def check_signing_domain(value: str, from_domain: str, *, field: str = "domain") -> str:
    """The signing domain, checked as a name and for alignment with the From domain;
    :class:`InvalidInput` naming ``field`` says why when it is not aligned."""
    domain = check_domain_name(value, field=field)
    if not aligned(domain, from_domain):
        raise InvalidInput(
            f"must be the sender's domain ({from_domain}) or a parent of it: DMARC counts a "
            "DKIM signature only when its domain is aligned with the From address",
            field=field,
        )
    return domain


def record_name(selector: str, domain: str) -> str:
    """Where the public key is published: ``<selector>._domainkey.<domain>``."""
    return f"{selector}._domainkey.{domain}"


def record_value(algorithm: DkimAlgorithm, public_key_b64: str) -> str:
    """The TXT value: ``v=DKIM1; k=<rsa|ed25519>; p=<base64>``."""
    return f"v=DKIM1; k={algorithm.value}; p={public_key_b64}"


def txt_strings(value: str) -> list[str]:
    """``value`` cut into TXT character-strings of at most 255 octets (ASCII only)."""
    data = value.encode("ascii")
    return [
        data[i : i + TXT_STRING_BYTES].decode("ascii")
        for i in range(0, len(data), TXT_STRING_BYTES)
    ] or [""]


def zone_line(name: str, strings: list[str]) -> str:
    """The record as a zone-file line: ``name. IN TXT ( "…" "…" )``."""
    quoted = " ".join(f'"{s}"' for s in strings)
    return f"{name}. IN TXT ( {quoted} )" if len(strings) > 1 else f"{name}. IN TXT {quoted}"


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A stored key, without its private half (that is only ever a sealed token)."""

    id: UUID
    selector: str
    domain: str
    algorithm: DkimAlgorithm
    public_key: str  # base64 of the DER SubjectPublicKeyInfo (rsa) or the raw 32 bytes
    created_at: datetime

    @property
    def record_name(self) -> str:
        return record_name(self.selector, self.domain)

    @property
    def record_value(self) -> str:
        return record_value(self.algorithm, self.public_key)

    def sealed_field(self) -> str:
        """The secret box's field for this key's private half (binds token to key)."""
        return f"dkim.private_key:{self.id}"


@dataclass(frozen=True, slots=True)
class DkimState:
    """Whether signing is on, and with which key."""

    enabled: bool
    active_key_id: UUID | None


@dataclass(frozen=True, slots=True)
class PublishedSelector:
    """What the domain check looks up: the key mail is signed with now."""

    selector: str
    domain: str
    algorithm: DkimAlgorithm
    record_name: str
    record_value: str
    enabled: bool
