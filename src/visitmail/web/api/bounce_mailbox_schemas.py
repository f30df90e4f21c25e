"""Request and response bodies of the bounce-mailbox API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from visitmail.domain.bounce_mailbox import MAX_FOLDER, MAX_HOST, BounceMailbox
from visitmail.domain.smtp_settings import Security
from visitmail.services.bounce_mailbox import MAX_PASSWORD, BounceMailboxView, MailboxTest
from visitmail.web.api.schemas import Strict


class BounceMailboxIn(Strict):
    host: str = Field(
        max_length=MAX_HOST,
        description="the IMAP host, e.g. outlook.office365.com or imap.gmail.com",
        examples=["outlook.office365.com"],
    )
    port: int = Field(default=993, ge=1, le=65535, description="993 (IMAPS) or 143 (STARTTLS)")
    security: Security = Field(
        default=Security.TLS, description="`tls` (implicit, port 993) or `starttls` (port 143)"
    )
    username: str | None = Field(
        default=None,
        max_length=320,
        description="the mailbox's own login; null: sign in as the mail server does (its "
        "username and password, or its OAuth2 sign-in with the IMAP permission)",
    )
    password: str | None = Field(
        default=None,
        max_length=MAX_PASSWORD,
        description="write-only; with `username` only; omitted or null keeps the stored one",
    )
    folder: str = Field(default="INBOX", max_length=MAX_FOLDER, description="where DSNs arrive")
    enabled: bool = Field(default=True, description="false: keep the settings, stop reading")

    def to_domain(self) -> BounceMailbox:
        return BounceMailbox(
            host=self.host,
            port=self.port,
            security=self.security,
            username=self.username,
            folder=self.folder,
            enabled=self.enabled,
        )


class MailboxStateOut(BaseModel):
    last_polled_at: datetime | None = Field(description="the last poll, null before the first")
    last_error: str | None = Field(description="what the last poll could not do, and the fix")
    reports_found: int = Field(description="bounces and complaints read so far")
    reading: bool = Field(description="true once a poll has read the folder")


class BounceMailboxOut(BaseModel):
    host: str
    port: int
    security: Security
    username: str | None = Field(description="null: signs in as the mail server does")
    password_set: bool
    folder: str
    enabled: bool
    state: MailboxStateOut

    @classmethod
    def of(cls, view: BounceMailboxView) -> BounceMailboxOut:
        s = view.settings
        return cls(
            host=s.host,
            port=s.port,
            security=s.security,
            username=s.username,
            password_set=view.password_set,
            folder=s.folder,
            enabled=s.enabled,
            state=MailboxStateOut(
                last_polled_at=view.state.last_polled_at,
                last_error=view.state.last_error,
                reports_found=view.state.reports_found,
                reading=view.state.cursor is not None,
            ),
        )


class MailboxTestOut(BaseModel):
    ok: bool = Field(description="signed in and opened the folder")
    step: str | None = Field(
        description="`connect`, `tls`, `login`, `folder` or `read` that failed"
    )
    error: str | None = Field(description="what failed and how to fix it")
    messages_in_folder: int
    reports_seen: int = Field(description="bounces and complaints among the last days' mail")
    looked_back_days: int

    @classmethod
    def of(cls, t: MailboxTest) -> MailboxTestOut:
        return cls(
            ok=t.ok,
            step=t.step,
            error=t.error,
            messages_in_folder=t.messages_in_folder,
            reports_seen=t.reports_seen,
            looked_back_days=t.looked_back_days,
        )
