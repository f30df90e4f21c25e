"""Drive schemathesis over the app's OpenAPI schema, in-process, on the test's event loop.

schemathesis' own ASGI transport runs the app on an event loop of its own thread, where the
session's database pool (bound to the test loop) cannot be used. So cases are generated
(hypothesis, in a worker thread) by schemathesis, serialized by its ``requests`` transport,
sent with httpx to the same app on the test loop, and judged by schemathesis' checks plus
the project's own error-shape rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from visitmail.domain.network_policy import IPAddress, NetworkPolicy

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
_REQUEST_KEYS = ("method", "url", "headers", "files", "data", "params", "cookies", "json")
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True, slots=True)
class LoopbackOnlyPolicy(NetworkPolicy):
    """The SSRF guard narrowed to one loopback port (the test's own SMTP server).

    The product's guard lets public addresses through by design (SMTP servers are public);
    under fuzzing a generated host could be a public IP literal, so here nothing but the
    test server is reachable. Names never reach DNS: see :func:`loopback_resolver`."""

    def permits(self, address: IPAddress, port: int | None = None) -> bool:
        return address in _LOOPBACK and port == self.loopback_port


async def loopback_resolver(_host: str, _port: int) -> list[str]:
    """Every name resolves to 127.0.0.1: generated host names cause no DNS traffic."""
    return ["127.0.0.1"]


@dataclass
class Finding:
    operation: str
    status: int
    problem: str
    request: str

    def __str__(self) -> str:
        return f"{self.operation} -> {self.status}: {self.problem}\n    {self.request}"


@dataclass
class FuzzReport:
    requests: int = 0
    unsendable: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    # "METHOD /path" -> statuses answered to it, to see what the run reached
    per_operation: dict[str, dict[int, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def unique_findings(self) -> list[Finding]:
        seen: set[tuple[str, int, str]] = set()
        unique: list[Finding] = []
        for f in self.findings:
            key = (f.operation, f.status, f.problem.splitlines()[0][:120])
            if key not in seen:
                seen.add(key)
                unique.append(f)
        return unique


def error_shape_problem(response: httpx.Response) -> str | None:
    """None when a 4xx body is ``{"error": {"code", "message", "field"}}`` (a 422 naming
    the field); else why not."""
    try:
        body = response.json()
    except ValueError:
        return f"4xx body is not JSON: {response.text[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"4xx body has no error object: {response.text[:200]!r}"
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return f"4xx error lacks code/message strings: {response.text[:200]!r}"
    if "field" not in error or not (error["field"] is None or isinstance(error["field"], str)):
        return f"4xx error lacks a field (string or null): {response.text[:200]!r}"
    if response.status_code == 422 and not error["field"]:
        return f"422 does not name the field: {response.text[:200]!r}"
    return None


Sender = Callable[[requests.PreparedRequest], httpx.Response]


def bridge(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> Sender:
    """A blocking sender for the worker thread: the request runs on ``loop``."""

    async def send(prepared: requests.PreparedRequest) -> httpx.Response:
        body = prepared.body
        content = body.encode() if isinstance(body, str) else body
        return await client.request(
            str(prepared.method),
            str(prepared.url),
            headers=dict(prepared.headers),
            content=content,
        )

    def blocking(prepared: requests.PreparedRequest) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(send(prepared), loop).result(timeout=120)

    return blocking


def operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def fuzz(
    spec: dict[str, Any],
    send: Sender,
    *,
    token: str,
    real_ids: dict[str, str],
    max_examples: int,
    skip: Callable[[str, str], bool] = lambda _method, _path: False,
) -> FuzzReport:
    """Run every operation of ``spec`` in both generation modes, ``max_examples`` each,
    derandomized. ``real_ids`` maps path-parameter names to existing objects, used for
    every parameter in about three of four positive cases. Never raises for what it finds: see the report."""
    # Strings: any UTF-8-encodable text, NUL included (schemathesis cannot put a lone
    # surrogate on the wire; test_invalid_text.py and test_api_fuzz_findings.py send those).
    config = schemathesis.Config.from_dict(
        {"generation": {"deterministic": True, "allow-x00": True}}
    )
    schema = schemathesis.openapi.from_dict(spec, config=config)
    report = FuzzReport()
    headers = {"Authorization": f"Bearer {token}"}
    for operation in operations(schema):
        if skip(operation.method.upper(), operation.path):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, send, headers, real_ids, max_examples, report)
    return report


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    send: Sender,
    headers: dict[str, str],
    real_ids: dict[str, str],
    max_examples: int,
    report: FuzzReport,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    key = f"{operation.method.upper()} {operation.path}"
    label = f"{key} [{mode.value}]"

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @hypothesis.given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy)
        if case.path_parameters and mode is GenerationMode.POSITIVE:
            # Three cases in four name real objects in every parameter, so each operation
            # reaches its success path whatever the (derandomized) draws; the fourth mixes
            # real and generated ids, parameter by parameter (unknown ids: 404, never 500).
            every = data.draw(st.integers(0, 3)) > 0
            for name in list(case.path_parameters):
                if name in real_ids and (every or data.draw(st.booleans())):
                    case.path_parameters[name] = real_ids[name]
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        try:
            prepared = requests.Request(
                **{k: v for k, v in kwargs.items() if k in _REQUEST_KEYS}
            ).prepare()
        except (UnicodeError, ValueError):
            report.unsendable += 1  # not expressible in HTTP (e.g. a surrogate in the URL)
            return
        response = send(prepared)
        report.requests += 1
        for counts in (report.statuses, report.per_operation.setdefault(key, {})):
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
        described = f"{prepared.method} {prepared.url} body={str(prepared.body)[:300]!r}"
        try:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
        except (FailureGroup, AssertionError) as failed:
            report.findings.append(
                Finding(label, response.status_code, _first_lines(str(failed)), described)
            )
        if 400 <= response.status_code < 500 and not _documented_html(operation, response):
            problem = error_shape_problem(response)
            if problem is not None:
                report.findings.append(Finding(label, response.status_code, problem, described))

    # Unsatisfiable: nothing to negate (no parameters, no body); the positive mode ran it.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()


def _documented_html(operation: Any, response: httpx.Response) -> bool:
    """A page for people (the unsubscribe link) answers its errors as documented HTML."""
    documented = operation.definition.raw.get("responses", {}).get(str(response.status_code), {})
    is_html = response.headers.get("content-type", "").startswith("text/html")
    return is_html and "text/html" in documented.get("content", {})


def _first_lines(text: str, n: int = 6) -> str:
    return "\n".join(line for line in text.strip().splitlines()[:n] if line.strip())
