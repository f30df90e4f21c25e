"""``next`` after login: only local paths, never another site (an open redirect)."""

from __future__ import annotations

import pytest

from visitmail.web.ui.return_to import MAX_NEXT_LENGTH, login_url, request_target, safe_next


@pytest.mark.parametrize(
    "good",
    ["/outbox", "/outbox?status=failed&kind=follow_up", "/events/42#media", "/a%2F%2Fb", "/"],
)
def test_local_paths_are_kept(good: str) -> None:
    assert safe_next(good) == good


@pytest.mark.parametrize(
    "hostile",
    [
        None,
        "",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "/x\\y",
        "https://evil.example",
        "HTTPS://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "data:text/html,x",
        "evil.example/path",
        "/\t/evil.example",
        "/\r\n/evil.example",
        "/a b",
        "/\x00",
        "/\x7f",
        " /outbox",
        "/login",
        "/login?next=/x",
        "/logout",
        "/" + "a" * MAX_NEXT_LENGTH,
    ],
)
def test_anything_else_is_refused(hostile: str | None) -> None:
    assert safe_next(hostile) is None


def test_the_login_address_carries_a_safe_page_only() -> None:
    assert login_url("/outbox?status=failed") == "/login?next=/outbox%3Fstatus%3Dfailed"
    assert login_url("/") == "/login"
    assert login_url("//evil.example") == "/login"


def test_a_request_for_a_double_slash_path_does_not_become_a_next() -> None:
    # A server gets GET //evil.example/x as a path; as next= a browser would leave the site.
    scope = {"type": "http", "path": "//evil.example/x", "raw_path": b"//evil.example/x"}
    assert login_url(request_target(scope)) == "/login"
    scope = {"type": "http", "path": "/outbox", "raw_path": b"/outbox", "query_string": b"a=1"}
    assert login_url(request_target(scope)) == "/login?next=/outbox%3Fa%3D1"
