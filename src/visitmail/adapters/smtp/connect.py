"""Open an SMTP connection the safe way: resolve, apply the network policy, connect directly
or through a proxy, greet, EHLO, TLS, AUTH.

Each step is a function of its own so the connection test can time and report them one by
one; :func:`open_connection` chains them for the delivery engine. Every function raises
:class:`~visitmail.domain.smtp_errors.SmtpFailure` (with the failing ``stage``) and nothing
else for a failing server, proxy or network.

Rules enforced here, not by callers:

* every address the SMTP host *and the proxy* resolve to passes the :class:`NetworkPolicy`,
  and the socket connects to a checked address (no second lookup that could be rebound);
* ``starttls`` requires STARTTLS: without it the connection is closed before AUTH;
* a password is never sent over an unencrypted connection unless the operator allows it;
  neither is an OAuth2 bearer token (``auth_method = oauth2``, SASL XOAUTH2);
* with a pinned certificate the pin is checked right after the handshake.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib
from python_socks import ProxyType
from python_socks.async_.asyncio import Proxy

from visitmail.adapters.smtp import http_connect, tls
from visitmail.adapters.smtp.errors import (
    Target,
    auth_rejected,
    starttls_unavailable,
    target_of,
    translate,
)
from visitmail.domain.diagnosis import StepName
from visitmail.domain.network_policy import REFUSED, NetworkPolicy
from visitmail.domain.oauth_tokens import xoauth2_initial_response
from visitmail.domain.smtp_errors import (
    SmtpAddressRefused,
    SmtpAuthFailed,
    SmtpDnsFailed,
    SmtpFailure,
    SmtpPlaintextAuthRefused,
)
from visitmail.domain.smtp_settings import (
    AuthMethod,
    ProxyKind,
    Security,
    SmtpSecrets,
    SmtpSettings,
)

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``; raises ``socket.gaierror`` when the name does not resolve."""

# Preference when the server offers several and AuthMethod is AUTO (aiosmtplib's order).
AUTH_PREFERENCE = ("cram-md5", "plain", "login")
_PROXY_TYPES = {
    ProxyKind.SOCKS5: ProxyType.SOCKS5,
    ProxyKind.SOCKS4: ProxyType.SOCKS4,
}


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system (``getaddrinfo``), unique addresses in order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class Route:
    """Checked addresses to connect to.

    ``addresses``: the SMTP host's (empty when only the proxy can resolve the name);
    ``proxy_addresses``: the proxy's (empty without a proxy).
    """

    addresses: tuple[str, ...]
    proxy_addresses: tuple[str, ...] = ()


async def resolve_route(
    settings: SmtpSettings, policy: NetworkPolicy, *, resolver: Resolver | None = None
) -> Route:
    """Resolve the SMTP host (and the proxy) and check every address against ``policy``.

    With a proxy, the SMTP host name is handed to the proxy (remote DNS); it is still checked
    here when it resolves locally. Raises :class:`SmtpDnsFailed` or
    :class:`SmtpAddressRefused` (stage ``resolve``).
    """
    resolve = resolver or system_resolver
    proxy = settings.proxy
    if not proxy.enabled:
        addresses = await _checked(settings.host, settings.port, policy, resolve, "host")
        return Route(addresses=addresses)
    # validate() guarantees both when a proxy is chosen
    assert proxy.host is not None
    assert proxy.port is not None
    proxy_addresses = await _checked(proxy.host, proxy.port, policy, resolve, "proxy.host")
    try:
        addresses = await _checked(settings.host, settings.port, policy, resolve, "host")
    except SmtpDnsFailed:
        addresses = ()  # not resolvable here: the proxy resolves it
    return Route(addresses=addresses, proxy_addresses=proxy_addresses)


async def _checked(
    host: str, port: int, policy: NetworkPolicy, resolve: Resolver, field: str
) -> tuple[str, ...]:
    what = "proxy host" if field == "proxy.host" else "host"
    literal = _ip(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as e:
            raise SmtpDnsFailed(
                f"The {what} name {host} could not be resolved.",
                stage=StepName.RESOLVE,
                fix="Check the spelling of the host name (for example smtp.example.com).",
            ) from e
        if not addresses:
            raise SmtpDnsFailed(
                f"The {what} name {host} has no address.",
                stage=StepName.RESOLVE,
                fix="Check the spelling of the host name.",
            )
    for address in addresses:
        ip = _ip(address)
        if ip is None or not policy.permits(ip, port):
            # Same words whatever the address is, so the guard cannot map a network.
            raise SmtpAddressRefused(
                f"The {what} {host} {REFUSED}.",
                stage=StepName.RESOLVE,
                fix="Use the provider's public SMTP host name.",
                details={"field": field},
            )
    return tuple(addresses)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None


async def open_socket(settings: SmtpSettings, secrets: SmtpSecrets, route: Route) -> socket.socket:
    """A connected TCP socket to the SMTP server: direct to a checked address, or through
    the proxy (at a checked address). Raises :class:`SmtpFailure` (stage ``connect``)."""
    target = target_of(settings)
    try:
        if settings.proxy.enabled:
            return await _through_proxy(settings, secrets, route)
        return await _direct(route.addresses, settings.port, settings.timeouts.connect)
    except SmtpFailure:
        raise
    except Exception as e:
        raise translate(e, stage=StepName.CONNECT, target=target) from e


async def _direct(addresses: tuple[str, ...], port: int, seconds: float) -> socket.socket:
    loop = asyncio.get_running_loop()
    last: Exception | None = None
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(seconds):
                await loop.sock_connect(sock, (address, port))
        except (OSError, TimeoutError) as e:
            sock.close()
            last = e
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert last is not None  # resolve_route never returns an empty direct route
    raise last


async def _through_proxy(
    settings: SmtpSettings, secrets: SmtpSecrets, route: Route
) -> socket.socket:
    proxy = settings.proxy
    assert proxy.port is not None
    assert route.proxy_addresses
    password = secrets.proxy_password if proxy.username else None
    if proxy.kind is ProxyKind.HTTP:
        return await http_connect.open_tunnel(
            route.proxy_addresses[0],
            proxy.port,
            settings.host,
            settings.port,
            username=proxy.username,
            password=password,
            seconds=settings.timeouts.connect,
        )
    client = Proxy(
        _PROXY_TYPES[proxy.kind],
        host=route.proxy_addresses[0],
        port=proxy.port,
        username=proxy.username,
        password=password,
        rdns=True,  # SOCKS5 / SOCKS4a: the proxy resolves the SMTP host name
    )
    sock: socket.socket = await client.connect(
        dest_host=settings.host, dest_port=settings.port, timeout=settings.timeouts.connect
    )
    return sock


def new_client(
    settings: SmtpSettings, sock: socket.socket, context: ssl.SSLContext | None
) -> aiosmtplib.SMTP:
    """An aiosmtplib client that will talk over ``sock`` (not connected yet: see
    :func:`greet`). STARTTLS is never automatic; :func:`start_tls` does it explicitly."""
    return aiosmtplib.SMTP(
        hostname=settings.host,
        sock=sock,
        use_tls=settings.security is Security.TLS,
        start_tls=False,
        tls_context=context,
        timeout=settings.timeouts.command,
        local_hostname=settings.helo_name,
    )


@functools.cache
def default_helo_name() -> str:
    """This machine's FQDN for EHLO when no HELO name is set. Computed once per process:
    ``socket.getfqdn`` may wait on reverse DNS, which must not eat a test's time bound."""
    return socket.getfqdn()


def tls_context_for(settings: SmtpSettings, secrets: SmtpSecrets) -> ssl.SSLContext | None:
    """The TLS context, or ``None`` for ``security = none``. Raises :class:`SmtpTlsFailed`."""
    if settings.security is Security.NONE:
        return None
    return tls.build_context(settings.tls, secrets)


async def greet(client: aiosmtplib.SMTP, settings: SmtpSettings) -> aiosmtplib.SMTPResponse:
    """Read the 220 greeting (after the handshake, for implicit TLS, then check the pin).
    Raises :class:`SmtpFailure` at stage ``greeting`` or, for handshake trouble, ``tls``."""
    target = target_of(settings)
    if client.local_hostname is None:
        client.local_hostname = await asyncio.to_thread(default_helo_name)
    try:
        response = await client.connect()
    except Exception as e:
        raise translate(e, stage=_greeting_stage(e, settings), target=target) from e
    if settings.security is Security.TLS:
        _check_pin(client, settings)
    return response


def _greeting_stage(exc: BaseException, settings: SmtpSettings) -> StepName:
    if settings.security is not Security.TLS:
        return StepName.GREETING
    # With implicit TLS, aiosmtplib raises for the handshake and for the greeting alike;
    # a read-phase error means the handshake had finished.
    cause = exc.__cause__
    after_handshake = isinstance(exc, aiosmtplib.SMTPConnectResponseError) or isinstance(
        cause, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError
    )
    return StepName.GREETING if after_handshake else StepName.TLS


def _check_pin(client: aiosmtplib.SMTP, settings: SmtpSettings) -> None:
    try:
        tls.verify_pin(client.get_transport_info("ssl_object"), settings.tls)
    except SmtpFailure:
        client.close()
        raise


async def say_ehlo(client: aiosmtplib.SMTP, settings: SmtpSettings) -> aiosmtplib.SMTPResponse:
    """EHLO; the capabilities land in ``client.esmtp_extensions`` / ``server_auth_methods``."""
    try:
        return await client.ehlo()
    except Exception as e:
        raise translate(e, stage=StepName.EHLO, target=target_of(settings)) from e


def encrypted(client: aiosmtplib.SMTP) -> bool:
    return client.is_connected and client.get_transport_info("sslcontext") is not None


async def start_tls(
    client: aiosmtplib.SMTP, settings: SmtpSettings, context: ssl.SSLContext
) -> aiosmtplib.SMTPResponse:
    """STARTTLS, then the pin check and a fresh EHLO (RFC 3207 says to forget the old one).

    Raises :class:`SmtpStartTlsUnavailable` when the server does not offer STARTTLS: the
    connection is closed at once, so nothing else (no AUTH, no password) is sent.
    """
    target = target_of(settings)
    if not client.supports_extension("starttls"):
        client.close()
        raise starttls_unavailable(target)
    try:
        response = await client.starttls(tls_context=context)
    except Exception as e:
        raise translate(e, stage=StepName.TLS, target=target) from e
    _check_pin(client, settings)
    try:
        await client.ehlo()
    except Exception as e:
        raise translate(e, stage=StepName.TLS, target=target) from e
    return response


def choose_mechanism(method: AuthMethod, offered: list[str]) -> str | None:
    """The AUTH mechanism to use (lower case), or ``None`` if the server offers none that
    fits: the strongest offered for ``auto``, else exactly the chosen one."""
    if method is AuthMethod.AUTO:
        return next((m for m in AUTH_PREFERENCE if m in offered), None)
    return method.value if method.value in offered else None


async def authenticate(
    client: aiosmtplib.SMTP,
    settings: SmtpSettings,
    secrets: SmtpSecrets,
    *,
    allow_plaintext_auth: bool,
    access_token: str | None = None,
) -> tuple[str, aiosmtplib.SMTPResponse] | None:
    """Log in if a username is set; returns ``(mechanism, reply)`` or ``None`` without one.
    With ``auth_method = oauth2`` the login is XOAUTH2 with ``access_token``.

    Raises :class:`SmtpPlaintextAuthRefused` before sending anything when the connection is
    not encrypted and the operator did not allow it, :class:`SmtpAuthFailed` otherwise.
    """
    username = settings.username
    if not username:
        return None
    if settings.auth_method is AuthMethod.OAUTH2:
        return await authenticate_xoauth2(
            client,
            settings,
            username,
            access_token,
            allow_plaintext_auth=allow_plaintext_auth,
        )
    if not secrets.password:
        raise SmtpAuthFailed(
            "A username is set but no password is stored.",
            stage=StepName.AUTH,
            fix="Enter the account's password (or remove the username).",
        )
    if not encrypted(client) and not allow_plaintext_auth:
        raise SmtpPlaintextAuthRefused(
            "The connection is not encrypted, so the password was not sent.",
            stage=StepName.AUTH,
            fix="Choose `starttls` or `tls`. Only the operator can allow passwords over "
            "unencrypted connections (VISITMAIL_ALLOW_PLAINTEXT_AUTH), for trusted networks.",
        )
    offered = list(client.server_auth_methods)
    mechanism = choose_mechanism(settings.auth_method, offered)
    if mechanism is None:
        return _no_mechanism(settings, offered)
    login = {
        "plain": client.auth_plain,
        "login": client.auth_login,
        "cram-md5": client.auth_crammd5,
    }[mechanism]
    try:
        response = await login(username, secrets.password)
    except Exception as e:
        raise translate(e, stage=StepName.AUTH, target=target_of(settings)) from e
    return mechanism, response


async def authenticate_xoauth2(
    client: aiosmtplib.SMTP,
    settings: SmtpSettings,
    mailbox: str,
    access_token: str | None,
    *,
    allow_plaintext_auth: bool,
) -> tuple[str, aiosmtplib.SMTPResponse]:
    """``AUTH XOAUTH2 <base64(user=<mailbox>^Aauth=Bearer <token>^A^A)>``.

    A server that refuses the token either answers 535 (Microsoft) or, like Google, first
    sends ``334 <base64 JSON>`` with the reason; the client then sends an empty line and
    the server gives its final error. Raises :class:`SmtpAuthFailed` (the JSON ``status``
    in ``details``) or :class:`SmtpPlaintextAuthRefused`.
    """
    if not access_token:
        raise SmtpAuthFailed(
            "No OAuth2 access token could be had for the mailbox.",
            stage=StepName.AUTH,
            fix="Run the connection test: its token step says what is missing.",
        )
    if not encrypted(client) and not allow_plaintext_auth:
        raise SmtpPlaintextAuthRefused(
            "The connection is not encrypted, so the OAuth token was not sent.",
            stage=StepName.AUTH,
            fix="Choose `starttls` or `tls`.",
        )
    offered = list(client.server_auth_methods)
    if "xoauth2" not in offered:
        names = ", ".join(m.upper() for m in offered) or "no mechanism"
        raise SmtpAuthFailed(
            f"The server does not offer OAuth2 (XOAUTH2) login; it offers {names}.",
            stage=StepName.AUTH,
            fix="Use the provider's OAuth-capable submission host (Microsoft 365: "
            "smtp.office365.com port 587 starttls; Google: smtp.gmail.com port 587 starttls).",
            details={"offered": [m.upper() for m in offered]},
        )
    initial = xoauth2_initial_response(mailbox, access_token).encode("ascii")
    target = target_of(settings)
    try:
        response = await client.execute_command(b"AUTH", b"XOAUTH2", initial)
        challenge: str | None = None
        if response.code == 334:  # Google's error challenge: base64 JSON, explained below
            challenge = response.message
            response = await client.execute_command(b"")  # the empty reply RFC 7628 asks for
    except Exception as e:
        raise translate(e, stage=StepName.AUTH, target=target) from e
    if response.code != 235:
        raise auth_rejected(response.code, response.message, challenge=challenge, oauth=True)
    return "xoauth2", response


def _no_mechanism(
    settings: SmtpSettings, offered: list[str]
) -> tuple[str, aiosmtplib.SMTPResponse]:
    names = [m.upper() for m in offered]
    if not offered:
        raise SmtpAuthFailed(
            "The server does not offer authentication (AUTH) on this connection.",
            stage=StepName.AUTH,
            fix="Remove the username if the server relays without a login; if it only offers "
            "AUTH after encryption, choose `starttls` or `tls`.",
        )
    raise SmtpAuthFailed(
        f"The server does not offer the {settings.auth_method.value.upper()} mechanism; it "
        f"offers {', '.join(names)}.",
        stage=StepName.AUTH,
        fix="Set the authentication method to `auto`.",
        details={"offered": names},
    )


async def open_connection(
    settings: SmtpSettings,
    secrets: SmtpSecrets,
    policy: NetworkPolicy,
    *,
    allow_plaintext_auth: bool,
    resolver: Resolver | None = None,
    access_token: str | None = None,
) -> aiosmtplib.SMTP:
    """A connected, encrypted (unless ``security = none``), authenticated client, ready for
    MAIL FROM. The caller owns it: ``await client.quit()`` or ``client.close()``.
    ``access_token``: the bearer token for ``auth_method = oauth2`` (fetched by the caller
    for this connection).

    Each network operation is bounded by ``settings.timeouts`` (connect / command); bound
    the whole call yourself if you need an overall limit. Raises :class:`SmtpFailure`.
    """
    route = await resolve_route(settings, policy, resolver=resolver)
    context = tls_context_for(settings, secrets)
    sock = await open_socket(settings, secrets, route)
    client = new_client(settings, sock, context)
    try:
        await greet(client, settings)
        await say_ehlo(client, settings)
        if settings.security is Security.STARTTLS:
            assert context is not None
            await start_tls(client, settings, context)
        await authenticate(
            client,
            settings,
            secrets,
            allow_plaintext_auth=allow_plaintext_auth,
            access_token=access_token,
        )
    except BaseException:
        # aiosmtplib's transport owns the socket now: closing the socket behind its back
        # would leave a stale selector registration for the file descriptor.
        client.close()
        raise
    return client


async def fetch_certificate(
    settings: SmtpSettings, secrets: SmtpSecrets, route: Route
) -> bytes | None:
    """The server's certificate (DER), read over a separate connection that accepts any
    certificate, so a failed verification can show the fingerprint to pin. Sends nothing
    but EHLO / STARTTLS; never authenticates. ``None`` if it cannot be read."""
    if settings.security is Security.NONE:
        return None
    client: aiosmtplib.SMTP | None = None
    try:
        sock = await open_socket(settings, secrets, route)
        client = new_client(settings, sock, tls.probe_context())
        await client.connect()
        if settings.security is Security.STARTTLS:
            await client.ehlo()
            await client.starttls(tls_context=tls.probe_context())
        return tls.peer_certificate(client.get_transport_info("ssl_object"))
    except (SmtpFailure, aiosmtplib.SMTPException, OSError):
        return None
    finally:
        if client is not None:
            if isinstance(client.transport, asyncio.Transport):
                client.transport.abort()  # no graceful TLS shutdown for a probe
            client.close()


__all__ = [
    "Resolver",
    "Route",
    "Target",
    "authenticate",
    "authenticate_xoauth2",
    "choose_mechanism",
    "encrypted",
    "fetch_certificate",
    "greet",
    "new_client",
    "open_connection",
    "open_socket",
    "resolve_route",
    "say_ehlo",
    "start_tls",
    "system_resolver",
    "tls_context_for",
]
