"""The SSRF guard (issue 10, item 10): IPv6 forms that lead to an internal IPv4 address are
judged by that address; public ones still pass; the operator's networks still open doors."""

from __future__ import annotations

import ipaddress

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.domain.network_policy import REFUSED, NetworkPolicy, embedded_ipv4

DEFAULT = NetworkPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",  # cloud metadata
        "::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::a00:1",  # NAT64 local-use prefix
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
        "2001:0:a00:1:8000:63bf:80ff:fefe",  # Teredo: server 10.0.0.1
        "fec0::1",  # deprecated site-local
        "fe80::1",
        "fd00::1",
        "ff02::1",
    ],
)
def test_internal_destinations_are_refused_whatever_their_spelling(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not DEFAULT.permits(ip)
    with pytest.raises(InvalidInput) as caught:
        DEFAULT.check(ip, field="host")
    assert caught.value.message == REFUSED  # the same words whatever is behind it
    assert caught.value.field == "host"


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_destinations_pass(address: str) -> None:
    assert DEFAULT.permits(ipaddress.ip_address(address))


def test_what_each_form_embeds() -> None:
    v4 = ipaddress.IPv4Address
    assert embedded_ipv4(ipaddress.IPv6Address("::7f00:1")) == [v4("127.0.0.1")]
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::a9fe:a9fe")) == [v4("169.254.169.254")]
    assert embedded_ipv4(ipaddress.IPv6Address("2002:7f00:1::")) == [v4("127.0.0.1")]
    teredo = embedded_ipv4(ipaddress.IPv6Address("2001:0:a00:1:8000:63bf:80ff:fefe"))
    assert v4("10.0.0.1") in teredo
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) == []


def test_an_allowed_network_covers_its_embedded_forms() -> None:
    policy = NetworkPolicy((ipaddress.ip_network("10.0.0.0/8"),))
    assert policy.permits(ipaddress.ip_address("10.0.0.1"))
    assert policy.permits(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert policy.permits(ipaddress.ip_address("64:ff9b::a00:1"))
    assert not policy.permits(ipaddress.ip_address("64:ff9b::7f00:1"))  # loopback is not in it


def test_dev_inbox_opens_its_own_port_on_loopback_and_nothing_else() -> None:
    """Issue 10, item 11: not every port of 127.0.0.0/8 (a local port scanner)."""
    policy = NetworkPolicy.of((), dev_inbox_port=2525)
    assert policy.permits(ipaddress.ip_address("127.0.0.1"), 2525)
    assert policy.permits(ipaddress.ip_address("::1"), 2525)
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"), 22)
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"), 5432)
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"))  # port unknown: no exception
    assert not policy.permits(ipaddress.ip_address("10.0.0.1"), 2525)
    assert not NetworkPolicy.of(()).permits(ipaddress.ip_address("127.0.0.1"), 2525)
