"""The connection test through real proxies: tinyproxy (HTTP CONNECT, with and without
Basic auth) and danted (SOCKS5, with the proxy resolving the SMTP host name)."""

from __future__ import annotations

import dataclasses
import json

from tests.integration.smtp.conftest import PASSWORD, USER, StartServer, settings_for
from tests.support.processes import free_port
from tests.support.proxies import ProxyProcess
from tests.support.smtp_servers import Certificates
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.diagnosis import DiagnosisReport, StepName, StepStatus
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.smtp_settings import ProxyKind, ProxySettings, Security, SmtpSecrets


def proxied(proxy: ProxyProcess, kind: ProxyKind, *, username: str | None = None) -> ProxySettings:
    return ProxySettings(kind=kind, host=proxy.host, port=proxy.port, username=username)


def failed(report: DiagnosisReport) -> tuple[StepName, str, str]:
    step = report.failed_step
    assert step is not None, [(s.name.value, s.status.value) for s in report.steps]
    return step.name, step.explanation or "", step.fix or ""


def connect_details(report: DiagnosisReport) -> dict[str, object]:
    return dict(next(s for s in report.steps if s.name is StepName.CONNECT).details)


async def test_http_connect_proxy_passes_every_step(
    start_server: StartServer,
    certs: Certificates,
    tester: SmtpConnectionTester,
    http_proxy: ProxyProcess,
) -> None:
    server = await start_server(
        security="starttls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(
        server,
        ca_pem=certs.trusted_ca_pem,
        username=USER,
        proxy=proxied(http_proxy, ProxyKind.HTTP),
    )

    report = await tester.diagnose(settings, SmtpSecrets(password=PASSWORD))

    assert report.ok, http_proxy.log()
    assert connect_details(report)["proxy"] == f"HTTP proxy 127.0.0.1:{http_proxy.port}"
    assert server.recorder.auth_logins == [USER]


async def test_http_proxy_with_basic_auth(
    start_server: StartServer,
    certs: Certificates,
    tester: SmtpConnectionTester,
    http_proxy_with_auth: ProxyProcess,
) -> None:
    proxy = http_proxy_with_auth
    server = await start_server(security="tls", cert=certs.trusted_leaf)
    settings = settings_for(
        server,
        ca_pem=certs.trusted_ca_pem,
        proxy=proxied(proxy, ProxyKind.HTTP, username=proxy.username),
    )

    ok = await tester.diagnose(settings, SmtpSecrets(proxy_password=proxy.password))
    assert ok.ok, proxy.log()

    wrong = "wrong-proxy-Passw0rd"
    report = await tester.diagnose(settings, SmtpSecrets(proxy_password=wrong))
    name, explanation, fix = failed(report)
    assert name is StepName.CONNECT
    assert f"HTTP proxy 127.0.0.1:{proxy.port}" in explanation
    assert "proxy username or password" in explanation
    assert "proxy" in fix
    text = json.dumps(dataclasses.asdict(report))
    assert wrong not in text
    assert str(proxy.password) not in text


async def test_socks5_proxy_passes_with_remote_dns(
    start_server: StartServer,
    certs: Certificates,
    socks5_proxy: ProxyProcess,
) -> None:
    server = await start_server(
        security="starttls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )

    async def not_resolvable_here(host: str, port: int) -> list[str]:
        if host == "localhost":
            raise OSError(-2, "Name or service not known")
        return ["127.0.0.1"]

    # "localhost" does not resolve on this side: only the SOCKS5 proxy can resolve it.
    tester = SmtpConnectionTester(
        NetworkPolicy(tuple(__import__("ipaddress").ip_network(n) for n in ("127.0.0.0/8",))),
        resolver=not_resolvable_here,
    )
    settings = settings_for(
        server,
        host="localhost",
        ca_pem=certs.trusted_ca_pem,
        username=USER,
        proxy=proxied(socks5_proxy, ProxyKind.SOCKS5),
    )

    report = await tester.diagnose(
        settings, SmtpSecrets(password=PASSWORD), send_to="bob@example.com"
    )

    assert report.ok, socks5_proxy.log()
    resolve = next(s for s in report.steps if s.name is StepName.RESOLVE)
    assert "the proxy will resolve it" in (resolve.explanation or "")
    assert connect_details(report)["proxy"] == f"SOCKS5 proxy 127.0.0.1:{socks5_proxy.port}"
    assert len(server.recorder.messages) == 1


async def test_socks5_proxy_with_implicit_tls(
    start_server: StartServer,
    certs: Certificates,
    tester: SmtpConnectionTester,
    socks5_proxy: ProxyProcess,
) -> None:
    server = await start_server(security="tls", cert=certs.trusted_leaf)
    settings = settings_for(
        server, ca_pem=certs.trusted_ca_pem, proxy=proxied(socks5_proxy, ProxyKind.SOCKS5)
    )
    report = await tester.diagnose(settings, SmtpSecrets())
    assert report.ok, socks5_proxy.log()


async def test_proxy_to_a_closed_port_fails_at_connect_naming_the_proxy(
    tester: SmtpConnectionTester, http_proxy: ProxyProcess, socks5_proxy: ProxyProcess
) -> None:
    closed = free_port()
    for proxy, kind, label in (
        (http_proxy, ProxyKind.HTTP, "HTTP"),
        (socks5_proxy, ProxyKind.SOCKS5, "SOCKS5"),
    ):
        settings = settings_for(port=closed, security=Security.STARTTLS, proxy=proxied(proxy, kind))
        report = await tester.diagnose(settings, SmtpSecrets())
        name, explanation, fix = failed(report)
        assert name is StepName.CONNECT, explanation
        assert f"{label} proxy 127.0.0.1:{proxy.port} could not connect to 127.0.0.1:{closed}" in (
            explanation
        )
        assert fix


async def test_proxy_that_is_not_running_fails_at_connect(
    tester: SmtpConnectionTester,
) -> None:
    dead = free_port()
    settings = settings_for(
        port=2525,
        security=Security.STARTTLS,
        proxy=ProxySettings(kind=ProxyKind.SOCKS5, host="127.0.0.1", port=dead),
    )
    report = await tester.diagnose(settings, SmtpSecrets())
    name, explanation, _ = failed(report)
    assert name is StepName.CONNECT
    assert f"The SOCKS5 proxy 127.0.0.1:{dead} refused the connection" in explanation


async def test_proxy_host_is_checked_by_the_network_policy(http_proxy: ProxyProcess) -> None:
    settings = settings_for(
        host="203.0.113.10",
        port=587,
        security=Security.STARTTLS,
        proxy=proxied(http_proxy, ProxyKind.HTTP),
    )
    report = await SmtpConnectionTester(NetworkPolicy()).diagnose(settings, SmtpSecrets())
    name, explanation, _ = failed(report)
    assert name is StepName.RESOLVE
    assert explanation.startswith("The proxy host 127.0.0.1 resolves to an address")
    assert all(
        s.status is StepStatus.SKIPPED for s in report.steps if s.name is not StepName.RESOLVE
    )
