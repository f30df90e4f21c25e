"""Events and their media library through the HTTP API, on both databases."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings
from tests.support.orgs import OrgFixture, new_member, new_org
from visitmail.domain.events import MAX_MEDIA_BYTES
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime, build_runtime
from visitmail.web.app import create_app

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def questionnaire(status: str = "live", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Hannover Messe 2026",
        "languages": ["de", "en"],
        "questions": [
            {"key": "interest", "label": {"de": "Interesse", "en": "Interest"}, "type": "text"},
            {
                "key": "products",
                "label": {"de": "Produkte", "en": "Products"},
                "type": "multi",
                "options": [
                    {"key": "mail", "label": {"de": "Mail", "en": "Mail"}},
                    {"key": "crm", "label": {"de": "CRM", "en": "CRM"}},
                ],
            },
            {"key": "budget", "label": "Budget", "type": "number"},
        ],
        "status": status,
    }
    body.update(extra)
    return body


async def create_event(
    client: httpx.AsyncClient, headers: dict[str, str], status: str = "live"
) -> dict[str, Any]:
    reply = await client.post("/api/v1/events", headers=headers, json=questionnaire(status))
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_event_lifecycle_create_read_list_replace(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    _, manager = await new_member(runtime, org, Role.EVENT_MANAGER)
    event = await create_event(client, bearer(manager), status="draft")
    assert event["status"] == "draft"
    assert event["default_language"] == "de"
    assert [q["key"] for q in event["questions"]] == ["interest", "products", "budget"]
    assert event["questions"][2]["label"] == {"de": "Budget"}  # a plain string: the default's
    assert event["questions"][1]["options"][1] == {
        "key": "crm",
        "label": {"de": "CRM", "en": "CRM"},
    }

    got = await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)
    assert got.status_code == 200 and got.json() == event

    changed = questionnaire("live", name="Hannover Messe", languages=["en", "de"])
    changed["questions"] = [{"key": "call_back", "label": {"en": "Call back?"}, "type": "bool"}]
    put = await client.put(f"/api/v1/events/{event['id']}", headers=bearer(manager), json=changed)
    assert put.status_code == 200, put.text
    assert put.json()["name"] == "Hannover Messe"
    assert put.json()["default_language"] == "en"
    assert [q["key"] for q in put.json()["questions"]] == ["call_back"]

    without_status = {k: v for k, v in changed.items() if k != "status"}
    kept = await client.put(
        f"/api/v1/events/{event['id']}", headers=bearer(manager), json=without_status
    )
    assert kept.json()["status"] == "live"  # PUT without status keeps the current one

    listed = await client.get("/api/v1/events", headers=org.headers)
    assert [e["id"] for e in listed.json()] == [event["id"]]
    live = await client.get("/api/v1/events?status=draft", headers=org.headers)
    assert live.json() == []


@pytest.mark.parametrize("role", [Role.REPORTER, Role.USER, Role.EVENT_CURATOR])
async def test_only_event_managers_and_admins_create_or_change_events(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, role: Role
) -> None:
    event = await create_event(client, org.headers)
    _, token = await new_member(runtime, org, role)
    created = await client.post("/api/v1/events", headers=bearer(token), json=questionnaire())
    assert created.status_code == 403
    assert created.json()["error"]["code"] == "forbidden"
    put = await client.put(
        f"/api/v1/events/{event['id']}", headers=bearer(token), json=questionnaire()
    )
    assert put.status_code == 403
    # Every role reads live events (the app needs them).
    assert (await client.get("/api/v1/events", headers=bearer(token))).status_code == 200
    got = await client.get(f"/api/v1/events/{event['id']}", headers=bearer(token))
    assert got.status_code == 200


async def test_the_app_roles_see_live_events_only(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    live = await create_event(client, org.headers, status="live")
    draft = await create_event(client, org.headers, status="draft")
    _, reporter = await new_member(runtime, org, Role.REPORTER)
    _, curator = await new_member(runtime, org, Role.EVENT_CURATOR)

    seen = await client.get("/api/v1/events", headers=bearer(reporter))
    assert [e["id"] for e in seen.json()] == [live["id"]]
    hidden = await client.get(f"/api/v1/events/{draft['id']}", headers=bearer(reporter))
    assert hidden.status_code == 404
    everything = await client.get("/api/v1/events", headers=bearer(curator))
    assert {e["id"] for e in everything.json()} == {live["id"], draft["id"]}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"name": "   "}, "name"),
        ({"languages": []}, "languages"),
        ({"languages": ["de", "Deutsch"]}, "languages[1]"),
        ({"status": "published"}, "status"),
        ({"questions": [{"key": "a", "type": "essay"}]}, "questions[0].type"),
        ({"questions": [{"key": "a", "type": "text", "colour": "red"}]}, "questions[0].colour"),
        (
            {
                "questions": [
                    {"key": "a", "type": "text"},
                    {"key": "b", "type": "bool"},
                    {"key": "c", "type": "single", "options": []},
                ]
            },
            "questions[2].options",
        ),
        (
            {"questions": [{"key": "a", "type": "text"}, {"key": "a", "type": "number"}]},
            "questions[1].key",
        ),
        (
            {"questions": [{"key": "a", "type": "single", "options": [{"key": "x y"}]}]},
            "questions[0].options[0].key",
        ),
        (
            {"questions": [{"key": "a", "type": "text", "label": {"fr": "Intérêt"}}]},
            "questions[0].label.fr",
        ),
    ],
)
async def test_invalid_events_answer_422_naming_the_path_and_store_nothing(
    client: httpx.AsyncClient, org: OrgFixture, change: dict[str, Any], path: str
) -> None:
    reply = await client.post("/api/v1/events", headers=org.headers, json=questionnaire(**change))
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == path
    assert (await client.get("/api/v1/events", headers=org.headers)).json() == []


async def test_another_organizations_event_is_not_found(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await create_event(client, org.headers)
    await client.post(
        f"/api/v1/events/{event['id']}/media", headers=org.headers, files={"file": ("a.pdf", PDF)}
    )
    other = await new_org(runtime, "Rival")
    for method, path in [
        ("GET", f"/api/v1/events/{event['id']}"),
        ("PUT", f"/api/v1/events/{event['id']}"),
        ("GET", f"/api/v1/events/{event['id']}/media"),
    ]:
        body = questionnaire() if method == "PUT" else None
        reply = await client.request(method, path, headers=other.headers, json=body)
        assert reply.status_code == 404, (method, path)
        assert "Hannover" not in reply.text
    upload = await client.post(
        f"/api/v1/events/{event['id']}/media", headers=other.headers, files={"file": ("a.pdf", PDF)}
    )
    assert upload.status_code == 404
    assert (await client.get("/api/v1/events", headers=other.headers)).json() == []
    unchanged = await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)
    assert unchanged.json()["name"] == event["name"]


# --- the media library --------------------------------------------------------------------


async def test_media_upload_list_download_delete(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture
) -> None:
    event = await create_event(client, org.headers)
    _, curator = await new_member(runtime, org, Role.EVENT_CURATOR)
    _, reporter = await new_member(runtime, org, Role.REPORTER)
    base = f"/api/v1/events/{event['id']}/media"

    uploaded = await client.post(
        base,
        headers=bearer(curator),
        files={"file": ("../../Produktübersicht 2026.pdf", PDF, "application/octet-stream")},
        data={"title": "Brochure"},
    )
    assert uploaded.status_code == 201, uploaded.text
    item = uploaded.json()
    assert item["filename"] == "Produktübersicht 2026.pdf"
    assert item["content_type"] == "application/pdf"  # from the bytes, not the declared type
    assert item["size"] == len(PDF)
    assert item["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert item["title"] == "Brochure"

    image = await client.post(base, headers=bearer(curator), files={"file": ("logo.png", PNG)})
    assert image.json()["content_type"] == "image/png" and image.json()["title"] is None

    listed = await client.get(base, headers=bearer(reporter))  # the app may read the library
    assert [m["id"] for m in listed.json()] == [item["id"], image.json()["id"]]
    assert set(listed.json()[0]) == {
        "id",
        "event_id",
        "filename",
        "content_type",
        "size",
        "sha256",
        "title",
        "created_at",
    }

    download = await client.get(f"{base}/{item['id']}", headers=bearer(reporter))
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Produkt_bersicht 2026.pdf"')
    assert "filename*=UTF-8''Produkt%C3%BCbersicht%202026.pdf" in disposition
    assert download.headers["x-content-type-options"] == "nosniff"

    refused = await client.delete(f"{base}/{item['id']}", headers=bearer(reporter))
    assert refused.status_code == 403
    deleted = await client.delete(f"{base}/{item['id']}", headers=bearer(curator))
    assert deleted.status_code == 204
    assert (await client.get(f"{base}/{item['id']}", headers=org.headers)).status_code == 404
    again = await client.delete(f"{base}/{item['id']}", headers=bearer(curator))
    assert again.status_code == 404
    assert [m["id"] for m in (await client.get(base, headers=org.headers)).json()] == [
        image.json()["id"]
    ]


@pytest.mark.parametrize("role", [Role.REPORTER, Role.USER])
async def test_the_app_roles_do_not_upload(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, role: Role
) -> None:
    event = await create_event(client, org.headers)
    _, token = await new_member(runtime, org, role)
    reply = await client.post(
        f"/api/v1/events/{event['id']}/media",
        headers=bearer(token),
        files={"file": ("a.pdf", PDF)},
    )
    assert reply.status_code == 403


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (b"<html><script>alert(1)</script></html>", "application/pdf"),
        (b"PK\x03\x04 a zip file", "image/png"),
        (b"MZ\x90\x00 an executable", "application/pdf"),
    ],
)
async def test_only_pdfs_and_images_by_their_bytes(
    client: httpx.AsyncClient, org: OrgFixture, content: bytes, declared: str
) -> None:
    event = await create_event(client, org.headers)
    base = f"/api/v1/events/{event['id']}/media"
    reply = await client.post(
        base, headers=org.headers, files={"file": ("brochure.pdf", content, declared)}
    )
    assert reply.status_code == 415, reply.text
    assert reply.json()["error"]["field"] == "file"
    assert (await client.get(base, headers=org.headers)).json() == []


async def test_media_upload_needs_a_file_and_a_clean_title(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    event = await create_event(client, org.headers)
    base = f"/api/v1/events/{event['id']}/media"
    missing = await client.post(base, headers=org.headers, data={"title": "x"})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "file"
    empty = await client.post(base, headers=org.headers, files={"file": ("a.pdf", b"")})
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "file"
    long_title = await client.post(
        base, headers=org.headers, files={"file": ("a.pdf", PDF)}, data={"title": "t" * 201}
    )
    assert long_title.status_code == 422 and long_title.json()["error"]["field"] == "title"
    assert (await client.get(base, headers=org.headers)).json() == []


async def test_media_over_10_mb_answers_413_naming_file(
    database_url: str, tmp_path: Path, org: OrgFixture
) -> None:
    # The shared test app caps bodies at 64 kB; this one lets a 10 MB upload through to
    # the media rule, as production's 25 MB default does.
    settings = make_settings(database_url, tmp_path, max_body_bytes=12 * 1024 * 1024)
    runtime = build_runtime(settings, fast_hashing=True)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            event = await create_event(client, org.headers)
            base = f"/api/v1/events/{event['id']}/media"
            exact = PDF + b"\x00" * (MAX_MEDIA_BYTES - len(PDF))
            ok = await client.post(base, headers=org.headers, files={"file": ("ok.pdf", exact)})
            assert ok.status_code == 201, ok.text
            assert ok.json()["size"] == MAX_MEDIA_BYTES
            reply = await client.post(
                base, headers=org.headers, files={"file": ("big.pdf", exact + b"\x00")}
            )
            assert reply.status_code == 413, reply.text
            assert reply.json()["error"]["field"] == "file"
            listed = (await client.get(base, headers=org.headers)).json()
            assert [m["filename"] for m in listed] == ["ok.pdf"]
            download = await client.get(f"{base}/{ok.json()['id']}", headers=org.headers)
            assert hashlib.sha256(download.content).hexdigest() == ok.json()["sha256"]
    finally:
        await runtime.close()


async def test_media_of_another_event_is_not_found(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    first = await create_event(client, org.headers)
    second = await create_event(client, org.headers)
    item = (
        await client.post(
            f"/api/v1/events/{first['id']}/media",
            headers=org.headers,
            files={"file": ("a.pdf", PDF)},
        )
    ).json()
    wrong = f"/api/v1/events/{second['id']}/media/{item['id']}"
    assert (await client.get(wrong, headers=org.headers)).status_code == 404
    assert (await client.delete(wrong, headers=org.headers)).status_code == 404


async def test_event_and_media_endpoints_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    for path, method in [
        ("/api/v1/events", "post"),
        ("/api/v1/events", "get"),
        ("/api/v1/events/{event_id}", "get"),
        ("/api/v1/events/{event_id}", "put"),
        ("/api/v1/events/{event_id}/media", "post"),
        ("/api/v1/events/{event_id}/media", "get"),
        ("/api/v1/events/{event_id}/media/{media_id}", "get"),
        ("/api/v1/events/{event_id}/media/{media_id}", "delete"),
    ]:
        assert paths[path][method]["summary"], (method, path)
    upload = paths["/api/v1/events/{event_id}/media"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"413", "415"} <= set(upload["responses"])


# --- dates --------------------------------------------------------------------------------


async def test_event_dates_are_stored_read_replaced_and_cleared(
    client: httpx.AsyncClient, org: OrgFixture
) -> None:
    reply = await client.post(
        "/api/v1/events",
        headers=org.headers,
        json=questionnaire(starts_on="2027-05-12", ends_on="2027-05-16"),
    )
    assert reply.status_code == 201, reply.text
    event = reply.json()
    assert (event["starts_on"], event["ends_on"]) == ("2027-05-12", "2027-05-16")
    got = (await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)).json()
    assert (got["starts_on"], got["ends_on"]) == ("2027-05-12", "2027-05-16")

    one_day = await client.put(
        f"/api/v1/events/{event['id']}",
        headers=org.headers,
        json=questionnaire(starts_on="2027-06-01"),
    )
    assert one_day.status_code == 200, one_day.text
    assert (one_day.json()["starts_on"], one_day.json()["ends_on"]) == ("2027-06-01", None)

    cleared = await client.put(
        f"/api/v1/events/{event['id']}", headers=org.headers, json=questionnaire()
    )
    assert (cleared.json()["starts_on"], cleared.json()["ends_on"]) == (None, None)
    got = (await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)).json()
    assert (got["starts_on"], got["ends_on"]) == (None, None)


@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"starts_on": "2027-05-16", "ends_on": "2027-05-12"}, "ends_on"),
        ({"ends_on": "2027-05-12"}, "starts_on"),
        ({"starts_on": "1027-05-12"}, "starts_on"),
        ({"starts_on": "2027-05-12", "ends_on": "9999-12-31"}, "ends_on"),
        ({"starts_on": "2027-02-30"}, "starts_on"),
        ({"starts_on": "12.05.2027"}, "starts_on"),
    ],
)
async def test_bad_dates_answer_422_naming_the_field_and_change_nothing(
    client: httpx.AsyncClient, org: OrgFixture, dates: dict[str, str], field: str
) -> None:
    reply = await client.post("/api/v1/events", headers=org.headers, json=questionnaire(**dates))
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == field
    assert (await client.get("/api/v1/events", headers=org.headers)).json() == []

    event = await create_event(client, org.headers)
    put = await client.put(
        f"/api/v1/events/{event['id']}", headers=org.headers, json=questionnaire(**dates)
    )
    assert put.status_code == 422 and put.json()["error"]["field"] == field
    unchanged = (await client.get(f"/api/v1/events/{event['id']}", headers=org.headers)).json()
    assert unchanged == event


async def test_event_dates_are_in_the_openapi_schemas(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/api/openapi.json")).json()["components"]["schemas"]
    for name in ("EventIn", "EventOut"):
        props = schemas[name]["properties"]
        assert {"starts_on", "ends_on"} <= set(props), name
        assert "date" in str(props["starts_on"]), props["starts_on"]
    assert "starts_on" in schemas["EventOut"]["required"]
