"""The step-by-step connection test and auto-detect (implements ``SmtpDiagnoser``).

Steps run in :data:`STEP_ORDER`, each timed, each with the server's reply where there is
one. The first failure stops the test; later steps are reported as skipped. The whole test
is bounded by ``settings.timeouts.overall``. Nothing in a report comes from a secret: texts
are built from the settings' public fields, the server's replies and fixed sentences.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate, make_msgid

import aiosmtplib

from visitmail.adapters.smtp import connect, tls
from visitmail.adapters.smtp.errors import (
    proxy_label,
    speaks_plain,
    target_of,
    timeout_failure,
    translate,
)
from visitmail.domain.addresses import normalize_email
from visitmail.domain.diagnosis import (
    OAUTH_STEPS,
    SENT_MESSAGE_ID,
    STEP_ORDER,
    AutodetectCandidate,
    AutodetectReport,
    DiagnosisReport,
    PortAnswer,
    Step,
    StepName,
    StepStatus,
    ports_answered,
)
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.oauth import missing_scopes
from visitmail.domain.oauth_tokens import TokenCheck
from visitmail.domain.smtp_errors import (
    Detail,
    SmtpAuthFailed,
    SmtpCertificateRejected,
    SmtpConnectFailed,
    SmtpFailure,
    SmtpStartTlsUnavailable,
    SmtpTimedOut,
    SmtpTlsFailed,
)
from visitmail.domain.smtp_settings import (
    UNENCRYPTED_WARNING,
    Security,
    SmtpSecrets,
    SmtpSettings,
    Timeouts,
)

log = logging.getLogger(__name__)

# Auto-detect tries these, and recommends the first that works in this order; the
# configured port is tried with every security too. Unencrypted ones come last.
AUTODETECT_COMBINATIONS: tuple[tuple[int, Security], ...] = (
    (465, Security.TLS),
    (587, Security.STARTTLS),
    (25, Security.STARTTLS),
    (2525, Security.STARTTLS),
    (25, Security.NONE),
)


class SmtpConnectionTester:
    """Runs the connection test against real servers.

    ``policy`` is the operator's SSRF guard; ``allow_plaintext_auth`` whether a password may
    cross an unencrypted connection; ``resolver`` replaces the system DNS (tests);
    ``autodetect_timeout`` bounds each auto-detect candidate (seconds).
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        allow_plaintext_auth: bool = False,
        *,
        resolver: connect.Resolver | None = None,
        autodetect_timeout: float = 6.0,
    ) -> None:
        self._policy = policy
        self._allow_plaintext_auth = allow_plaintext_auth
        self._resolver = resolver
        self._autodetect_timeout = autodetect_timeout

    async def diagnose(
        self,
        settings: SmtpSettings,
        secrets: SmtpSecrets,
        *,
        send_to: str | None = None,
        on_step: Callable[[Step], None] | None = None,
        oauth_token: TokenCheck | None = None,
    ) -> DiagnosisReport:
        """The full test. Raises only :class:`InvalidInput` for a malformed ``send_to``;
        a failing server, proxy or network is a failed step. ``on_step`` sees each step
        as it passes or fails. ``oauth_token``: see ``SmtpDiagnoser``."""
        recipient = normalize_email(send_to, field="send_to") if send_to else None
        run = _Run(self, settings, secrets, send_to=recipient, stop_after=None, on_step=on_step)
        run.oauth_token = oauth_token
        await run.execute()
        return DiagnosisReport(steps=run.steps(), warnings=_warnings(settings))

    async def autodetect(self, settings: SmtpSettings, secrets: SmtpSecrets) -> AutodetectReport:
        """Try the usual port x security combinations concurrently, up to AUTH (no MAIL
        FROM), and recommend the first that works, preferring encrypted ones."""
        combos = _combinations(settings)
        bound = min(self._autodetect_timeout, settings.timeouts.overall)
        timeouts = Timeouts(connect=bound, command=bound, overall=bound)
        runs = [
            _Run(
                self,
                dataclasses.replace(settings, port=port, security=security, timeouts=timeouts),
                secrets,
                send_to=None,
                stop_after=StepName.AUTH,
            )
            for port, security in combos
        ]
        await asyncio.gather(*(run.execute() for run in runs))
        candidates = [_candidate(run) for run in runs]
        return AutodetectReport(
            candidates=candidates,
            recommended=_recommend(candidates),
            ports=ports_answered(candidates),
        )

    @property
    def policy(self) -> NetworkPolicy:
        return self._policy

    @property
    def allow_plaintext_auth(self) -> bool:
        return self._allow_plaintext_auth

    @property
    def resolver(self) -> connect.Resolver | None:
        return self._resolver


def _warnings(settings: SmtpSettings) -> list[str]:
    """The sender-domain trap and the "not encrypted" warning, in the same words as the
    saved settings' (``smtp_config.settings_warnings``), so merged they are said once."""
    warnings: list[str] = []
    sender = settings.sender_domain_warning()
    if sender:
        warnings.append(sender)
    if settings.security is Security.NONE:
        warnings.append(UNENCRYPTED_WARNING)
    return warnings


class _Run:
    """One conversation, step by step. Records a :class:`Step` per step that ran."""

    def __init__(
        self,
        tester: SmtpConnectionTester,
        settings: SmtpSettings,
        secrets: SmtpSecrets,
        *,
        send_to: str | None,
        stop_after: StepName | None,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        self.on_step = on_step
        self.tester = tester
        self.settings = settings
        self.secrets = secrets
        self.send_to = send_to
        self.stop_after = stop_after
        self.results: dict[StepName, Step] = {}
        self.current = StepName.RESOLVE
        self.started = 0.0
        self.deadline = 0.0
        self.route: connect.Route | None = None
        self.client: aiosmtplib.SMTP | None = None
        self.mechanism: str | None = None
        self.oauth_token: TokenCheck | None = None
        self.failure: SmtpFailure | None = None

    # -- bookkeeping -------------------------------------------------------------------

    def begin(self, name: StepName) -> None:
        self.current = name
        self.started = time.monotonic()

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def passed(
        self,
        name: StepName,
        explanation: str,
        *,
        reply: aiosmtplib.SMTPResponse | None = None,
        details: dict[str, Detail] | None = None,
        duration_ms: int | None = None,
    ) -> None:
        self.results[name] = Step(
            name=name,
            status=StepStatus.PASSED,
            duration_ms=self.elapsed_ms() if duration_ms is None else duration_ms,
            reply_code=reply.code if reply else None,
            reply_text=_first_line(reply.message) if reply else None,
            explanation=explanation,
            details=details or {},
        )
        self._tell(name)

    def _tell(self, name: StepName) -> None:
        if self.on_step is not None:
            self.on_step(self.results[name])

    def skipped(self, name: StepName, explanation: str) -> None:
        self.results[name] = Step(name=name, status=StepStatus.SKIPPED, explanation=explanation)

    def failed(self, failure: SmtpFailure) -> None:
        self.failure = failure
        self.results[failure.stage] = Step(
            name=failure.stage,
            status=StepStatus.FAILED,
            duration_ms=self.elapsed_ms(),
            reply_code=failure.reply_code,
            reply_text=failure.reply_text,
            explanation=failure.message,
            fix=failure.fix,
            details=dict(failure.details),
        )
        self._tell(failure.stage)
        log.info(
            "smtp test step failed",
            extra={
                "step": failure.stage.value,
                "code": failure.code,
                "reply_code": failure.reply_code,
            },
        )

    def steps(self) -> list[Step]:
        failed = next((s for s in self.results.values() if s.status is StepStatus.FAILED), None)
        why = f"Not run: the {failed.name.value} step failed." if failed else "Not run."
        if self.stop_after is not None and failed is None:
            why = "Not part of auto-detect."
        names = [n for n in STEP_ORDER if self.settings.uses_oauth or n not in OAUTH_STEPS]
        return [self.results.get(name) or _skipped(name, why) for name in names]

    # -- the conversation --------------------------------------------------------------

    async def execute(self) -> None:
        overall = self.settings.timeouts.overall
        target = target_of(self.settings)
        self.deadline = time.monotonic() + overall
        try:
            async with asyncio.timeout(overall):
                await self._conversation()
        except TimeoutError:
            self.failed(timeout_failure(self.current, target, overall))
        except SmtpFailure as failure:
            if isinstance(failure, SmtpCertificateRejected):
                await self._add_fingerprint(failure)
            self.failed(failure)
        except Exception as e:  # a bug or an unforeseen library error: still a report
            log.exception("smtp test crashed", extra={"step": self.current.value})
            self.failed(translate(e, stage=self.current, target=target))
        finally:
            if self.client is not None:
                self.client.close()

    def _done(self, name: StepName) -> bool:
        return self.stop_after is not None and STEP_ORDER.index(name) >= STEP_ORDER.index(
            self.stop_after
        )

    async def _conversation(self) -> None:
        settings = self.settings
        self.begin(StepName.RESOLVE)
        self.route = await connect.resolve_route(
            settings, self.tester.policy, resolver=self.tester.resolver
        )
        text, details = _resolved(settings, self.route)
        self.passed(StepName.RESOLVE, text, details=details)

        self.begin(StepName.TLS)  # a bad CA / client certificate fails here, before connecting
        context = connect.tls_context_for(settings, self.secrets)

        self.begin(StepName.CONNECT)
        sock = await connect.open_socket(settings, self.secrets, self.route)
        self.client = connect.new_client(settings, sock, context)
        text, details = _connected(settings)
        self.passed(StepName.CONNECT, text, details=details)

        await self._greeting()
        client = self.client
        self.begin(StepName.EHLO)
        ehlo = await connect.say_ehlo(client, settings)
        self.passed(
            StepName.EHLO,
            "The server answered EHLO and listed its capabilities.",
            reply=ehlo,
            details={"capabilities": _capabilities(client)},
        )

        await self._tls(context)
        await self._auth()
        if self._done(StepName.AUTH):
            return
        await self._envelope()
        self.begin(StepName.QUIT)
        reply = await client.quit()
        self.passed(StepName.QUIT, "The session ended cleanly.", reply=reply)

    async def _greeting(self) -> None:
        assert self.client is not None
        settings = self.settings
        self.begin(StepName.GREETING)
        try:
            reply = await connect.greet(self.client, settings)
        except SmtpFailure as failure:
            if failure.stage is StepName.TLS:
                note = "Not reached: with implicit TLS the handshake comes before the greeting."
                self.skipped(StepName.GREETING, note)
                self.skipped(StepName.EHLO, note)
            raise
        self.passed(StepName.GREETING, "The server greeted visitmail.", reply=reply)
        if settings.security is Security.TLS:
            details = tls.describe(self.client.get_transport_info("ssl_object"))
            self.passed(
                StepName.TLS,
                f"Implicit TLS ({details.get('protocol', 'TLS')}) was set up before the "
                "greeting; the certificate was verified.",
                details=details,
                duration_ms=0,
            )

    async def _tls(self, context: ssl.SSLContext | None) -> None:
        assert self.client is not None
        client, settings = self.client, self.settings
        if settings.security is Security.NONE:
            note = "No encryption was chosen (`none`)."
            if client.supports_extension("starttls"):
                note += " The server offers STARTTLS: choose `starttls` to encrypt the connection."
            self.skipped(StepName.TLS, note)
            return
        if settings.security is Security.TLS:
            return  # recorded with the greeting
        self.begin(StepName.TLS)
        assert context is not None
        reply = await connect.start_tls(client, settings, context)
        details = tls.describe(client.get_transport_info("ssl_object"))
        details["capabilities"] = _capabilities(client)
        pinned = " matches the pinned fingerprint" if settings.tls.pin_hex else " was verified"
        self.passed(
            StepName.TLS,
            f"STARTTLS upgraded the connection to {details.get('protocol', 'TLS')}; the "
            f"certificate{pinned}.",
            reply=reply,
            details=details,
        )

    async def _auth(self) -> None:
        assert self.client is not None
        if not self.settings.username:
            self.skipped(StepName.AUTH, "No username is set: the server is used without login.")
            return
        if self.settings.uses_oauth and self.oauth_token is None and self.stop_after:
            # auto-detect compares ports and security; the token is the connection test's
            self.skipped(StepName.AUTH, "OAuth2 login is checked by the connection test.")
            return
        access_token = self._token_steps() if self.settings.uses_oauth else None
        self.begin(StepName.AUTH)
        result = await connect.authenticate(
            self.client,
            self.settings,
            self.secrets,
            allow_plaintext_auth=self.tester.allow_plaintext_auth,
            access_token=access_token,
        )
        assert result is not None
        self.mechanism, reply = result
        self.passed(
            StepName.AUTH,
            f"Logged in as {self.settings.username} with {self.mechanism.upper()}.",
            reply=reply,
            details={"mechanism": self.mechanism.upper()},
        )

    def _token_steps(self) -> str:
        """The ``token`` and ``scope`` steps from the token the service fetched; raises
        :class:`SmtpFailure` at the failing one."""
        check, oauth = self.oauth_token, self.settings.oauth
        assert oauth is not None
        self.begin(StepName.TOKEN)
        if check is None or check.token is None:
            failure = check.failure if check is not None else None
            raise SmtpAuthFailed(
                failure.message if failure else "No OAuth2 access token could be fetched.",
                stage=StepName.TOKEN,
                fix=failure.fix if failure else "The operator must enable the token service.",
                details={"error": failure.error} if failure and failure.error else None,
            )
        token = check.token
        source = "fetched from" if token.refreshed else "taken from the cache of"
        self.passed(
            StepName.TOKEN,
            f"An access token was {source} the {oauth.provider.value} token endpoint; it "
            f"expires at {token.expires_at.isoformat(timespec='seconds')}.",
            details={"expires_at": token.expires_at.isoformat(timespec="seconds")},
            duration_ms=check.duration_ms,
        )
        self.begin(StepName.SCOPE)
        if not token.scopes:
            self.passed(
                StepName.SCOPE,
                "The endpoint did not list the granted scopes (usual for app-only tokens); "
                "the login step shows whether the token is accepted.",
                duration_ms=0,
            )
            return token.token
        missing = missing_scopes(oauth, token.scopes)
        if missing:
            raise SmtpAuthFailed(
                f"The token lacks the scope SMTP needs: {', '.join(missing)} (granted: "
                f"{' '.join(token.scopes)}).",
                stage=StepName.SCOPE,
                fix=f"Add {', '.join(missing)} to the app's API permissions, grant admin "
                "consent, and reconnect the account.",
                details={"missing": missing, "granted": list(token.scopes)},
            )
        self.passed(
            StepName.SCOPE,
            f"The token carries what SMTP needs ({' '.join(token.scopes)}).",
            details={"granted": list(token.scopes)},
            duration_ms=0,
        )
        return token.token

    async def _envelope(self) -> None:
        assert self.client is not None
        client, settings = self.client, self.settings
        target = target_of(settings)
        sender = settings.sender_email
        self.begin(StepName.MAIL_FROM)
        try:
            reply = await client.mail(sender)
        except aiosmtplib.SMTPException as e:
            raise translate(e, stage=StepName.MAIL_FROM, target=target) from e
        self.passed(
            StepName.MAIL_FROM,
            f"The server has not refused {sender} as the sender so far (some servers decide "
            "about the sender only at RCPT TO or after the message).",
            reply=reply,
        )

        recipient = self.send_to or sender
        self.begin(StepName.RCPT_TO)
        try:
            reply = await client.rcpt(recipient)
        except aiosmtplib.SMTPException as e:
            raise translate(e, stage=StepName.RCPT_TO, target=target) from e
        self.passed(
            StepName.RCPT_TO, f"The server accepts {recipient} as a recipient.", reply=reply
        )

        self.begin(StepName.SEND)
        if self.send_to is None:
            try:
                await client.rset()
            except aiosmtplib.SMTPException as e:
                raise translate(e, stage=StepName.SEND, target=target) from e
            self.skipped(
                StepName.SEND,
                "No test recipient was given, so nothing was sent (the transaction was reset).",
            )
            return
        message, message_id = _test_message(settings, self.send_to)
        try:
            reply = await client.data(message)
        except aiosmtplib.SMTPException as e:
            raise translate(e, stage=StepName.SEND, target=target) from e
        self.passed(
            StepName.SEND,
            f"A test message was accepted for {self.send_to}.",
            reply=reply,
            details={SENT_MESSAGE_ID: message_id},
        )

    async def _add_fingerprint(self, failure: SmtpCertificateRejected) -> None:
        """Show the server's certificate so the admin can pin it or fetch its CA."""
        remaining = min(self.deadline - time.monotonic(), self.settings.timeouts.connect)
        if "certificate_sha256" in failure.details or self.route is None or remaining < 0.2:
            return
        try:
            async with asyncio.timeout(remaining):
                der = await connect.fetch_certificate(self.settings, self.secrets, self.route)
        except TimeoutError:
            return
        if der:
            failure.details.update(tls.describe_certificate(der))


def _skipped(name: StepName, why: str) -> Step:
    return Step(name=name, status=StepStatus.SKIPPED, explanation=why)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def _capabilities(client: aiosmtplib.SMTP) -> list[str]:
    capabilities = []
    for name, value in client.esmtp_extensions.items():
        capabilities.append(f"{name.upper()} {value}".strip())
    return capabilities


def _resolved(settings: SmtpSettings, route: connect.Route) -> tuple[str, dict[str, Detail]]:
    details: dict[str, Detail] = {}
    if route.proxy_addresses:
        details["proxy_addresses"] = list(route.proxy_addresses)
    if route.addresses:
        details["addresses"] = list(route.addresses)
        text = f"{settings.host} resolves to {', '.join(route.addresses)}."
    else:
        text = f"{settings.host} does not resolve here; the proxy will resolve it."
    if route.proxy_addresses:
        text += f" The proxy {settings.proxy.host} resolves to {', '.join(route.proxy_addresses)}."
    return text, details


def _connected(settings: SmtpSettings) -> tuple[str, dict[str, Detail]]:
    label = proxy_label(settings)
    details: dict[str, Detail] = {"server": f"{settings.host}:{settings.port}"}
    if label:
        details["proxy"] = label
        return f"Connected to {settings.host}:{settings.port} through the {label}.", details
    return f"Connected to {settings.host}:{settings.port}.", details


def _test_message(settings: SmtpSettings, recipient: str) -> tuple[bytes, str]:
    domain = settings.sender_email.rsplit("@", 1)[1]
    message_id = make_msgid(domain=domain)
    message = EmailMessage()
    message["From"] = formataddr((settings.sender_name or "", settings.sender_email))
    message["To"] = recipient
    message["Subject"] = "visitmail connection test"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        "This message was sent by visitmail's SMTP connection test.\n\n"
        f"Server: {settings.host}:{settings.port} ({settings.security.value})\n"
        "If you received it, sending works.\n"
    )
    # Never fold: some receivers mangle a folded Message-ID.
    return message.as_bytes(policy=SMTP_POLICY.clone(max_line_length=998)), message_id


# -- auto-detect ------------------------------------------------------------------------


def _combinations(settings: SmtpSettings) -> list[tuple[int, Security]]:
    """Encrypted combinations first (465/tls, 587/starttls, the configured port ...),
    unencrypted last; duplicates removed."""
    configured = [(settings.port, s) for s in (Security.TLS, Security.STARTTLS, Security.NONE)]
    everything = [*AUTODETECT_COMBINATIONS[:2], *configured, *AUTODETECT_COMBINATIONS[2:]]
    encrypted = [c for c in everything if c[1] is not Security.NONE]
    plain = [c for c in everything if c[1] is Security.NONE]
    ordered: list[tuple[int, Security]] = []
    for combo in [*encrypted, *plain]:
        if combo not in ordered:
            ordered.append(combo)
    return ordered


def _candidate(run: _Run) -> AutodetectCandidate:
    steps = run.steps()
    failed = next((s for s in steps if s.status is StepStatus.FAILED), None)
    settings = run.settings
    # The server answering AUTH with an error (say, 535) still proves the port and
    # security are right.
    credentials_rejected = (
        failed is not None and failed.name is StepName.AUTH and failed.reply_code is not None
    )
    ok = failed is None or credentials_rejected
    if failed is not None and not credentials_rejected:
        summary = f"{failed.name.value}: {failed.explanation}"
    else:
        tls_step = next(s for s in steps if s.name is StepName.TLS)
        protocol = tls_step.details.get("protocol")
        summary = "Works" + (f" ({protocol})" if protocol else " (not encrypted)")
        if run.mechanism:
            summary += f"; logged in with {run.mechanism.upper()}"
        if credentials_rejected and failed is not None:
            summary += f"; but AUTH failed: {failed.explanation}"
        summary += "."
    return AutodetectCandidate(
        port=settings.port,
        security=settings.security.value,
        ok=ok,
        summary=summary,
        answer=_answer(run, ok),
    )


def _answer(run: _Run, ok: bool) -> PortAnswer:
    """What the port answered, read from the steps and the failure (not from texts)."""
    security, failure = run.settings.security, run.failure
    if ok:
        if security is Security.NONE:
            ehlo = next(s for s in run.steps() if s.name is StepName.EHLO)
            offered = ehlo.details.get("capabilities") or []
            assert isinstance(offered, list)
            if any(str(c).upper().startswith("STARTTLS") for c in offered):
                return PortAnswer.STARTTLS
            return PortAnswer.PLAIN_NO_STARTTLS
        return PortAnswer.TLS if security is Security.TLS else PortAnswer.STARTTLS
    if isinstance(failure, SmtpStartTlsUnavailable):
        return PortAnswer.PLAIN_NO_STARTTLS
    if isinstance(failure, SmtpTlsFailed) and speaks_plain(failure):
        return PortAnswer.PLAIN
    if isinstance(failure, SmtpTimedOut) and failure.stage in (
        StepName.CONNECT,
        StepName.GREETING,
    ):
        return PortAnswer.TIMED_OUT
    if isinstance(failure, SmtpConnectFailed) and failure.stage is StepName.CONNECT:
        return PortAnswer.REFUSED
    return PortAnswer.FAILED


def _recommend(candidates: list[AutodetectCandidate]) -> AutodetectCandidate | None:
    working = [c for c in candidates if c.ok]
    encrypted = [c for c in working if c.security != Security.NONE.value]
    if encrypted:
        return encrypted[0]
    if not working:
        return None
    plain = working[0]
    return dataclasses.replace(
        plain,
        summary="Only an unencrypted connection works: messages (and any password) would "
        f"cross the network in plain text. {plain.summary}",
    )
