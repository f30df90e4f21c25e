"""Issue 10, item 15: what the schemathesis run (test_api_fuzz.py) found, and what probing
by hand beside it found, one regression test each, on both databases."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.web.test_reports_api import live_event, report_body
from tests.support.orgs import OrgFixture

EVENT = {"name": "Fair", "languages": ["de"]}


def refused_as_text(reply: httpx.Response) -> None:
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_text"
    assert error["field"] == "body"
    assert "UTF-8" in error["message"]


async def test_a_body_that_is_not_utf8_is_a_422_naming_the_body(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    # Found (schemathesis): FastAPI answered undecodable bytes with 400 "There was an error
    # parsing the body" and `field` null, a status no operation documents.
    reply = await client.post(
        "/api/v1/events",
        headers={**org.headers, "Content-Type": "application/json"},
        content=b'{"name": "\x97"}',
    )
    refused_as_text(reply)


async def test_a_malformed_multipart_body_is_a_422_naming_the_body(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    # Found (schemathesis): the same 400 for an upload whose multipart framing is broken.
    event = await live_event(client, org)
    reply = await client.post(
        f"/api/v1/events/{event['id']}/media",
        headers={**org.headers, "Content-Type": "multipart/form-data; boundary=b0"},
        content=b"--b0\r\n[None]--b0--\r\n",
    )
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] == "body"
    listed = await client.get(f"/api/v1/events/{event['id']}/media", headers=org.headers)
    assert listed.json() == []


async def test_a_surrogate_spelled_in_raw_bytes_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    # Found (by hand): ED A0 80 is U+D800 encoded as if it were a character; json.loads
    # decodes it (surrogatepass) into text that cannot be stored, past the \\ud800-escape
    # guard: the report was stored, its reply was a 500, and so was every later list of
    # the organization's reports (item 5's failure, through a side door).
    event = await live_event(client, org)
    body = json.dumps(report_body(event["id"], answers={"interest": "MARK"})).encode()
    reply = await client.post(
        "/api/v1/reports",
        headers={**org.headers, "Content-Type": "application/json"},
        content=body.replace(b"MARK", b"a\xed\xa0\x80b"),
    )
    refused_as_text(reply)
    listed = await client.get("/api/v1/reports", headers=org.headers)
    assert listed.status_code == 200
    assert listed.json() == []


async def test_json_nested_too_deeply_is_a_422_naming_the_body(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    # Found (by hand): the parser's RecursionError became the same undocumented 400.
    reply = await client.post(
        "/api/v1/reports",
        headers={**org.headers, "Content-Type": "application/json"},
        content=b"[" * 10_000 + b"]" * 10_000,
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "body"


async def test_a_mapping_with_a_raw_surrogate_is_refused_and_the_mapping_stays(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    document = {"version": 1, "rules": [{"name": "MARK", "event": "*", "on": "exported"}]}
    reply = await client.put(
        "/api/v1/notification-mapping",
        headers={**org.headers, "Content-Type": "application/json"},
        content=json.dumps(document).encode().replace(b"MARK", b"\xed\xb0\x80"),
    )
    refused_as_text(reply)
    active = await client.get("/api/v1/notification-mapping", headers=org.headers)
    assert active.status_code == 200
    assert active.json()["revision"] == 0


async def test_utf16_json_is_still_read(client: httpx.AsyncClient, org: OrgFixture) -> None:
    # The guard refuses only what does not decode: JSON's other encodings, which the
    # parser detects, keep working.
    body = json.dumps({**EVENT, "name": "Messe Köln"}).encode("utf-16")
    reply = await client.post(
        "/api/v1/events",
        headers={**org.headers, "Content-Type": "application/json"},
        content=body,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["name"] == "Messe Köln"


async def schema_of(client: httpx.AsyncClient) -> dict[str, Any]:
    reply = await client.get("/api/openapi.json")
    assert reply.status_code == 200
    document: dict[str, Any] = reply.json()
    return document


async def test_every_operation_with_a_body_documents_the_guards_answers(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    # Found: a 64 KB preview got 413 from the body limit, undocumented for every operation.
    paths = (await schema_of(client))["paths"]
    with_body = [
        (method, path)
        for path, item in paths.items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]
    assert ("post", "/api/v1/events/{event_id}/templates/{language}/preview") in with_body
    for method, path in with_body:
        responses = paths[path][method]["responses"]
        assert "413" in responses, (method, path)
        assert "422" in responses, (method, path)

    event = await live_event(client, org)
    big = {"template": {"subject": "Hi", "text": "x" * 70_000}}
    reply = await client.post(
        f"/api/v1/events/{event['id']}/templates/de/preview", headers=org.headers, json=big
    )
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"] == {
        "code": "too_large",
        "message": "the body exceeds 64000 bytes",
        "field": "body",
    }


async def test_a_mapping_body_that_is_not_json_matches_the_documented_422(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    # Found: the 422 schema required `details`, which only a mapping_invalid answer has.
    reply = await client.put(
        "/api/v1/notification-mapping",
        headers={**org.headers, "Content-Type": "application/json"},
        content=b"\x00",
    )
    assert reply.status_code == 422, reply.text
    assert "details" not in reply.json()["error"]
    schemas = (await schema_of(client))["components"]["schemas"]
    assert "details" not in schemas["MappingInvalidDetail"].get("required", [])


@pytest.mark.parametrize(
    ("document", "field"),
    [([], "body"), ({"": None, "version": 1, "rules": []}, '[""]')],
)
async def test_a_mapping_problem_at_the_top_names_a_field(
    client: httpx.AsyncClient, org: OrgFixture, document: Any, field: str
) -> None:
    # Found (schemathesis, 80 examples): a document that is not an object, or has the empty
    # key at the top, got a 422 whose `field` was null: its path was "".
    reply = await client.put("/api/v1/notification-mapping", headers=org.headers, json=document)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "mapping_invalid"
    assert error["field"] == field
    assert error["details"][0]["field"] == field
    dry = await client.post(
        "/api/v1/notification-mapping/dry-run",
        headers=org.headers,
        json={"document": {"": True}, "report_id": str(uuid.uuid4())},
    )
    assert dry.status_code == 422, dry.text
    assert dry.json()["error"]["field"] == '[""]'


async def test_the_unsubscribe_page_documents_its_html_answers(
    client: httpx.AsyncClient,
) -> None:
    # Found: the page answers a bad link with HTML, but the schema promised the JSON error
    # shape (and 401/403/422, which a page without authentication never answers).
    reply = await client.get("/api/v1/unsubscribe/not-a-token")
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("text/html")
    responses = (await schema_of(client))["paths"]["/api/v1/unsubscribe/{token}"]["get"][
        "responses"
    ]
    assert "text/html" in responses["404"]["content"]
    assert not {"401", "403"} & set(responses)
