"""Wiring for the browser sign-in's routes (UI and API): the clock and the consent client.

Tests set ``app.state.clock`` (a clock they move by hand, for the 10-minute expiry) or
``app.state.consent_client``; otherwise the wall clock and the real client, which reaches
the token endpoint under the operator's network policy.
"""

from __future__ import annotations

from fastapi import Request

from visitmail.oauth_wiring import build_consent_client
from visitmail.runtime import Runtime
from visitmail.services.clock import Clock, utcnow
from visitmail.services.oauth_connect import ConsentClient


def clock_of(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock or utcnow


def consent_client_of(request: Request, runtime: Runtime) -> ConsentClient:
    client: ConsentClient | None = getattr(request.app.state, "consent_client", None)
    return client or build_consent_client(runtime)
