"""Ports the SMTP use cases need; ``adapters/smtp`` implements them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from visitmail.domain.diagnosis import AutodetectReport, DiagnosisReport, Step
from visitmail.domain.oauth_tokens import TokenCheck
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings


class SmtpDiagnoser(Protocol):
    async def diagnose(
        self,
        settings: SmtpSettings,
        secrets: SmtpSecrets,
        *,
        send_to: str | None = None,
        on_step: Callable[[Step], None] | None = None,
        oauth_token: TokenCheck | None = None,
    ) -> DiagnosisReport:
        """Run the step-by-step connection test within ``settings.timeouts.overall``.
        Never raises for a failing server: failures are steps. Never puts a secret in
        the report. ``on_step`` is called with each step as soon as it has passed or
        failed (so a page can show the test as it runs). ``oauth_token``: for OAuth2
        settings, the token fetched by the caller; reported as the ``token`` and ``scope``
        steps before ``auth`` (passed only for OAuth2 settings)."""
        ...

    async def autodetect(self, settings: SmtpSettings, secrets: SmtpSecrets) -> AutodetectReport:
        """Try the usual port x security combinations against ``settings.host`` (keeping the
        other settings) and recommend the one that works best."""
        ...
