"""Which addresses SMTP hosts and proxies may resolve to (the SSRF guard).

Public unicast addresses are allowed; loopback, private, link-local (cloud metadata),
multicast, reserved and unspecified addresses are refused unless the operator allows a
network that contains them. The refusal message is the same whatever is behind the
address, so the guard cannot be used to map an internal network.
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

REFUSED = (
    "resolves to an address visitmail may not connect to (private, loopback, link-local or "
    "reserved); ask the operator to allow that network in VISITMAIL_SMTP_ALLOWED_NETWORKS"
)


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    allowed: Sequence[IPNetwork] = ()

    @classmethod
    def of(cls, allowed: Sequence[IPNetwork], *, allow_loopback: bool = False) -> NetworkPolicy:
        """The operator's allowed networks, plus loopback for ``serve --dev-inbox``."""
        networks = list(allowed)
        if allow_loopback:
            networks.extend(n for n in LOOPBACK if n not in networks)
        return cls(tuple(networks))

    def permits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allowed):
            return True
        return address.is_global and not address.is_multicast

    def check(self, address: IPAddress, *, field: str) -> None:
        if not self.permits(address):
            raise InvalidInput(REFUSED, field=field)
