"""Values in the viewer's language: the Accept-Language choice, numbers, countries."""

from __future__ import annotations

from visitmail.web.ui.locale_format import country, language, number, viewer_locale


def test_the_best_known_language_by_quality_wins() -> None:
    assert str(viewer_locale("fr;q=0.5, de-DE;q=0.9, en;q=0.1")) == "de_DE"
    assert str(viewer_locale("xx-unknown, de")) == "de"
    assert str(viewer_locale("*")) == "en"
    assert str(viewer_locale(None)) == "en"
    assert str(viewer_locale("de;q=0, fr")) == "fr"
    assert str(viewer_locale("de;q=abc, it")) == "it"


def test_a_long_header_is_read_only_so_far() -> None:
    header = ",".join(["xx"] * 10_000) + ",de"
    assert str(viewer_locale(header)) == "en"


def test_numbers_countries_and_languages() -> None:
    de, en = viewer_locale("de"), viewer_locale("en")
    assert number(12500.5, de) == "12.500,5" and number(12500.5, en) == "12,500.5"
    assert number(3, de) == "3"
    assert country("DE", en) == "Germany" and country("de", de) == "Deutschland"
    assert country("QQ", en) == "QQ"
    assert language("fr", de) == "Französisch" and language("fr-CA", en) == "French"
