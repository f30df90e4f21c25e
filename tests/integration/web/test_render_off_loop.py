"""Issue 10, item 8: a template preview or a mapping dry run renders off the event loop, so
other requests (``/healthz``) are answered while it runs. The test owns the stall: the
render blocks until ``/healthz`` has answered — which can only happen if the render does
not hold the event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from tests.integration.web.test_reports_api import live_event
from tests.support.orgs import OrgFixture
from visitmail.domain import mapping_eval
from visitmail.services import follow_ups, mapping

STALL_LIMIT = 20.0  # seconds the fake render waits before giving up (never on a pass)


def stalling(real: Any, answered: threading.Event, waited: list[bool]) -> Any:
    def render(*args: Any, **kwargs: Any) -> Any:
        waited.append(answered.wait(STALL_LIMIT))
        return real(*args, **kwargs)

    return render


async def healthz_while(client: httpx.AsyncClient, slow: Any, answered: threading.Event) -> Any:
    task = asyncio.create_task(slow)
    await asyncio.sleep(0)  # the slow request starts first
    health = await client.get("/healthz")
    answered.set()
    assert health.status_code == 200
    return await task


async def test_a_template_preview_does_not_hold_up_other_requests(
    client: httpx.AsyncClient, org: OrgFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered, waited = threading.Event(), []
    monkeypatch.setattr(
        follow_ups, "render_follow_up", stalling(follow_ups.render_follow_up, answered, waited)
    )
    event = await live_event(client, org)
    preview = client.post(
        f"/api/v1/events/{event['id']}/templates/de/preview",
        headers=org.headers,
        json={"template": {"subject": "Hallo {{ lead.company }}", "text": "Text"}},
    )
    reply = await healthz_while(client, preview, answered)
    assert reply.status_code == 200, reply.text
    assert waited == [True]  # /healthz answered while the render was still running


async def test_a_mapping_dry_run_does_not_hold_up_other_requests(
    client: httpx.AsyncClient, org: OrgFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered, waited = threading.Event(), []
    monkeypatch.setattr(mapping, "fire", stalling(mapping_eval.fire, answered, waited))
    dry_run = client.post(
        "/api/v1/notification-mapping/dry-run",
        headers=org.headers,
        json={"report": {"lead": {"company": "ACME"}, "answers": {}}},
    )
    reply = await healthz_while(client, dry_run, answered)
    assert reply.status_code in (200, 422), reply.text
    assert waited == [True]
