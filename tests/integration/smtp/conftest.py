"""Fixtures for the SMTP adapter's integration tests: trustme certificates, a factory of
real aiosmtpd servers (closed after each test), real proxies (one set per worker), and a
network policy that allows loopback and the documentation / blackhole addresses used here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.proxies import ProxyProcess, start_danted, start_tinyproxy
from tests.support.smtp_servers import Certificates, SmtpServer, start_smtp_server
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.smtp_settings import (
    Security,
    SmtpSettings,
    Timeouts,
    TlsOptions,
    validate,
)

BLACKHOLE = "10.255.255.1"
TEST_POLICY = NetworkPolicy(
    tuple(
        ipaddress.ip_network(n)
        for n in ("127.0.0.0/8", "::1/128", f"{BLACKHOLE}/32", "192.0.2.0/24")
    )
)
USER = "alice@example.com"
PASSWORD = "Tr0ub4dor&3-very-secret"
SENDER = "alice@example.com"

StartServer = Callable[..., Awaitable[SmtpServer]]


@pytest.fixture(scope="session")
def certs() -> Certificates:
    return Certificates.create()


@pytest.fixture
def policy() -> NetworkPolicy:
    return TEST_POLICY


@pytest.fixture
def tester() -> SmtpConnectionTester:
    return SmtpConnectionTester(TEST_POLICY, autodetect_timeout=2.0)


@pytest.fixture
def patient_tester() -> SmtpConnectionTester:
    """Auto-detect bounded only by the settings' overall timeout: for tests where no
    candidate hangs (each either works or is refused at once), so the one that works is
    never cut off by a bound a loaded machine can exceed."""
    return SmtpConnectionTester(TEST_POLICY, autodetect_timeout=600)


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(security=..., cert=..., ...)``: see ``start_smtp_server``."""
    servers: list[SmtpServer] = []

    async def start(**kwargs: Any) -> SmtpServer:
        server = await start_smtp_server(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def settings_for(
    server: SmtpServer | None = None,
    *,
    security: Security | None = None,
    ca_pem: str | None = None,
    pin: str | None = None,
    host: str | None = None,
    port: int | None = None,
    overall: float = 8.0,
    **fields: Any,
) -> SmtpSettings:
    """Valid settings pointing at ``server`` (or host/port), short timeouts."""
    chosen = security or (Security(server.security) if server else Security.NONE)
    settings = SmtpSettings(
        host=host or (server.host if server else "127.0.0.1"),
        port=port or (server.port if server else 25),
        security=chosen,
        sender_email=fields.pop("sender_email", SENDER),
        timeouts=Timeouts(connect=min(5.0, overall), command=min(5.0, overall), overall=overall),
        tls=TlsOptions(ca_pem=ca_pem, pinned_sha256=pin),
    )
    return validate(replace(settings, **fields))


@pytest.fixture(scope="session")
def http_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = start_tinyproxy(tmp_path_factory.mktemp("tinyproxy"))
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def http_proxy_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = start_tinyproxy(
        tmp_path_factory.mktemp("tinyproxy-auth"), credentials=("proxyuser", "Pr0xy-Secret-42")
    )
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def socks5_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = start_danted(Path(tmp_path_factory.mktemp("danted")))
    yield proxy
    proxy.stop()
