"""Which addresses SMTP hosts and proxies may resolve to (the SSRF guard).

Public unicast addresses are allowed; loopback, private, link-local (cloud metadata),
multicast, reserved and unspecified addresses are refused unless the operator allows a
network that contains them. The refusal message is the same whatever is behind the
address, so the guard cannot be used to map an internal network.

IPv6 addresses that carry an IPv4 address inside them reach that IPv4 address, so they are
judged by it (every embedded address must be permitted): IPv4-mapped ``::ffff:0:0/96``,
IPv4-compatible ``::/96``, NAT64 ``64:ff9b::/96`` (RFC 6052), 6to4 ``2002::/16``
(RFC 3056) and Teredo ``2001::/32`` (server and client, RFC 4380). The NAT64 local-use
prefix ``64:ff9b:1::/48`` (where the IPv4 address may sit anywhere) and the deprecated
site-local ``fec0::/10`` are refused outright, unless the operator allows them by name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from visitmail.domain.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")

REFUSED = (
    "resolves to an address visitmail may not connect to (private, loopback, link-local or "
    "reserved); ask the operator to allow that network in VISITMAIL_SMTP_ALLOWED_NETWORKS"
)


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """``allowed``: the operator's networks (any port). ``loopback_port``: the one port on
    loopback that ``serve --dev-inbox`` opens (its own SMTP sink) — only that port, so the
    connection test cannot be used to scan the machine's other local services."""

    allowed: Sequence[IPNetwork] = ()
    loopback_port: int | None = None

    @classmethod
    def of(
        cls, allowed: Sequence[IPNetwork], *, dev_inbox_port: int | None = None
    ) -> NetworkPolicy:
        """The operator's allowed networks, plus the dev inbox's port on loopback."""
        return cls(tuple(allowed), dev_inbox_port)

    def permits(self, address: IPAddress, port: int | None = None) -> bool:
        """May a connection go to ``address`` (on ``port``, when the caller knows it)?"""
        if any(address in net for net in self.allowed):
            return True
        if (
            self.loopback_port is not None
            and port == self.loopback_port
            and any(address in net for net in LOOPBACK)
        ):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address in _NAT64_LOCAL or address in _SITE_LOCAL:
                return False
            inner = embedded_ipv4(address)
            if inner:
                return all(self.permits(v4) for v4 in inner)
        return address.is_global and not address.is_multicast

    def check(self, address: IPAddress, *, field: str, port: int | None = None) -> None:
        if not self.permits(address, port):
            raise InvalidInput(REFUSED, field=field)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (see the module docstring); empty for
    a native IPv6 address."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _IPV4_COMPATIBLE or address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []
