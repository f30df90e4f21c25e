"""The unsubscribe line every follow-up carries and the page its link opens, on both
databases: mail delivered by a real worker to aiosmtpd and parsed; the page in the
lead's language naming the organization; GET changes nothing, POST suppresses."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.web.test_follow_ups_api import (
    follow_up,
    lead,
    received_by,
    setup,
)
from tests.integration.web.test_reports_api import capture
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.runtime import Runtime

HTML_ACCEPT = {"Accept": "text/html"}


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    started = await start_smtp_server()
    yield started
    await started.close()


def part(message: EmailMessage, kind: str) -> str:
    found = message.get_body(preferencelist=(kind,))
    assert isinstance(found, EmailMessage)
    return str(found.get_content()).replace("\r\n", "\n")


async def mailed(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer, language: str
) -> EmailMessage:
    event, _ = await setup(client, runtime, org, server)
    report = await capture(client, org.headers, event["id"], lead=lead(language=language))
    reply = await follow_up(client, org.headers, report["id"])
    assert reply.json()["status"] == "queued", reply.text
    await make_worker(runtime, org).run_until_idle()
    [mail] = received_by(server, report["lead"]["email"])
    return mail


async def suppressed(client: httpx.AsyncClient, org: OrgFixture) -> list[str]:
    reply = await client.get("/api/v1/suppressions", headers=org.headers)
    assert reply.status_code == 200, reply.text
    return [item["address"] for item in reply.json()["items"]]


async def test_german_follow_up_shows_the_header_link_in_both_parts_and_a_german_page(
    client: httpx.AsyncClient, runtime: Runtime, server: SmtpServer
) -> None:
    org = await new_org(runtime, "Müller & Söhne")
    mail = await mailed(client, runtime, org, server, "de")
    url = mail["List-Unsubscribe"].strip("<>")
    assert urlsplit(url).query == "lang=de"

    text = part(mail, "plain")
    assert "Sie erhalten diese E-Mail, weil Sie Müller & Söhne besucht haben. Abmelden:" in text
    assert text.rstrip().endswith(url)
    markup = part(mail, "html")
    links = re.findall(r'<a href="([^"]+)">Von diesen E-Mails abmelden</a>', markup)
    assert [html.unescape(link) for link in links] == [url]
    assert "Müller &amp; Söhne besucht haben" in markup

    split = urlsplit(url)
    path = f"{split.path}?{split.query}"
    page = await client.get(path)
    assert page.status_code == 200
    assert '<html lang="de">' in page.text
    assert "Keine weiteren E-Mails von Müller &amp; Söhne an" in page.text
    assert '<button type="submit">Abmelden</button>' in page.text
    assert "/static/app.css" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert await suppressed(client, org) == []  # a scanner's GET changes nothing

    done = await client.post(path, headers=HTML_ACCEPT, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert "Sie sind abgemeldet" in done.text
    assert "Müller &amp; Söhne sendet keine weiteren E-Mails" in done.text
    address = mail["To"].addresses[0].addr_spec
    assert await suppressed(client, org) == [address.lower()]


async def test_english_follow_up_and_page_and_one_click_post_unchanged(
    client: httpx.AsyncClient, runtime: Runtime, server: SmtpServer
) -> None:
    org = await new_org(runtime, "Acme Fairs")
    mail = await mailed(client, runtime, org, server, "en")
    url = mail["List-Unsubscribe"].strip("<>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = part(mail, "plain")  # the English template has no HTML part
    assert "You receive this email because you visited Acme Fairs. Unsubscribe:\n" + url in text

    split = urlsplit(url)
    path = f"{split.path}?{split.query}"
    page = await client.get(path)
    assert '<html lang="en">' in page.text
    assert "Stop follow-up emails from Acme Fairs to" in page.text
    assert await suppressed(client, org) == []

    one_click = await client.post(path, content=b"List-Unsubscribe=One-Click")
    assert one_click.status_code == 200
    assert one_click.json() == {"status": "unsubscribed"}
    assert len(await suppressed(client, org)) == 1


async def test_a_language_without_texts_falls_back_to_english(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    mail = await mailed(client, runtime, org, server, "de")
    path = urlsplit(mail["List-Unsubscribe"].strip("<>")).path
    page = await client.get(f"{path}?lang=fr")
    assert page.status_code == 200 and '<html lang="en">' in page.text
    assert "Stop follow-up emails from Acme" in page.text


@pytest.mark.parametrize(
    ("lang", "title"), [("de", "Dieser Link ist ungültig"), ("en", "This link is not valid")]
)
async def test_a_bad_token_answers_a_friendly_404_page(
    client: httpx.AsyncClient, lang: str, title: str
) -> None:
    page = await client.get(f"/api/v1/unsubscribe/not-a-token?lang={lang}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert f"<h1>{title}</h1>" in page.text and "/static/app.css" in page.text
    posted = await client.post(f"/api/v1/unsubscribe/not-a-token?lang={lang}", headers=HTML_ACCEPT)
    assert posted.status_code == 404 and title in posted.text
    machine = await client.post("/api/v1/unsubscribe/not-a-token")
    assert machine.status_code == 404 and machine.json()["error"]["code"] == "not_found"
