"""The unsubscribe line appended to rendered follow-ups, per language."""

from __future__ import annotations

from visitmail.domain.follow_up import RenderedFollowUp
from visitmail.domain.unsubscribe_texts import texts, with_footer

URL = "https://app.example/api/v1/unsubscribe/tok?lang=de&x=1"


def test_texts_by_primary_subtag_and_english_fallback() -> None:
    assert texts("de-AT").language == "de"
    assert texts("DE").language == "de"
    assert texts("fr").language == "en"
    assert texts(None).language == "en"


def test_line_goes_before_the_last_body_end_with_the_escaped_url() -> None:
    rendered = RenderedFollowUp("s", "Hallo\n\n", "<html><body><p>Hi</p></BODY ></html>")
    out = with_footer(rendered, URL, "de", "A<B>")
    assert out.text == (
        f"Hallo\n\n-- \nSie erhalten diese E-Mail, weil Sie A<B> besucht haben. Abmelden:\n{URL}\n"
    )
    assert out.html is not None
    assert out.html.endswith("</p></BODY ></html>")
    assert "A&lt;B&gt; besucht" in out.html
    assert '<a href="https://app.example/api/v1/unsubscribe/tok?lang=de&amp;x=1">' in out.html


def test_html_without_body_gets_the_line_appended_and_text_only_stays_text_only() -> None:
    out = with_footer(RenderedFollowUp("s", "t", "<p>x</p>"), URL, "en", "Acme")
    assert out.html is not None and out.html.startswith("<p>x</p><p ")
    assert "Unsubscribe from these emails</a></p>" in out.html
    plain = with_footer(RenderedFollowUp("s", "t", None), URL, "en", "Acme")
    assert plain.html is None and "visited Acme. Unsubscribe:" in plain.text
