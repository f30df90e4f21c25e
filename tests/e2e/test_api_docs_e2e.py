"""``/api/docs`` in Chromium with every request off this origin refused (as on a machine
without internet): Swagger UI renders the operations under the pages' CSP and breaks none
of its rules."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Route, expect

from tests.e2e.conftest import Server, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_swagger_ui_renders_the_operations_offline_under_the_csp(
    browser: Browser, server: Server
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    foreign: list[str] = []

    def only_this_origin(route: Route) -> None:
        url = route.request.url
        if url.startswith(f"{server.url}/") or url.startswith("data:"):
            route.continue_()
        else:
            foreign.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_origin)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )
    try:
        reply = page.goto(f"{server.url}/api/docs")
        assert reply is not None and reply.status == 200
        assert "script-src 'self'" in reply.headers["content-security-policy"]
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("visitmail")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible()
        assert operations.count() >= 20
        expect(
            page.locator(".opblock-summary-path", has_text="/api/v1/smtp-settings/test")
        ).to_be_visible()
        # Open one operation: its parameters and "Try it out" render (Swagger UI runs).
        page.locator(".opblock-summary", has_text="/api/v1/messages/{message_id}").first.click()
        expect(page.get_by_role("button", name="Try it out").first).to_be_visible()
        screenshot(page, "api-docs")
        assert page.evaluate("window.__violations") == []
        assert foreign == []
        assert errors == []
    finally:
        context.close()
