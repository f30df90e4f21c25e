"""Salutations from gender, title, name and language."""

from __future__ import annotations

import pytest

from visitmail.domain.reports import Gender, Lead
from visitmail.domain.salutation import primary_language, salutation

F, M, D, U = Gender.FEMALE, Gender.MALE, Gender.DIVERSE, Gender.UNKNOWN


def lead(gender: Gender, title: str = "", first: str = "", last: str = "") -> Lead:
    return Lead(gender=gender, title=title, first_name=first, last_name=last)


@pytest.mark.parametrize(
    ("who", "language", "expected"),
    [
        (lead(F, "Dr.", "Anna", "Müller"), "de", "Sehr geehrte Frau Dr. Müller"),
        (lead(F, "", "Anna", "Müller"), "de", "Sehr geehrte Frau Müller"),
        (lead(M, "", "Jan", "Schmidt"), "de", "Sehr geehrter Herr Schmidt"),
        (lead(M, "Prof. Dr.", "Jan", "Schmidt"), "de", "Sehr geehrter Herr Prof. Dr. Schmidt"),
        (lead(D, "", "Alex", "Meyer"), "de", "Guten Tag Alex Meyer"),
        (lead(U, "", "Alex", "Meyer"), "de", "Guten Tag Alex Meyer"),
        (lead(U, "Dr.", "", "Meyer"), "de", "Guten Tag Dr. Meyer"),
        (lead(U, "", "", "Meyer"), "de", "Sehr geehrte Damen und Herren"),
        (lead(F, "Dr.", "Anna", ""), "de", "Sehr geehrte Damen und Herren"),
        (lead(F, "Dr.", "Ann", "Miller"), "en", "Dear Dr. Miller"),
        (lead(M, "Prof. Dr.", "Tom", "Miller"), "en", "Dear Prof. Dr. Miller"),
        (lead(F, "", "Ann", "Miller"), "en", "Dear Ms. Miller"),
        (lead(M, "", "Tom", "Miller"), "en", "Dear Mr. Miller"),
        (lead(D, "", "Alex", "Miller"), "en", "Dear Alex Miller"),
        (lead(U, "", "Alex", "Miller"), "en", "Dear Alex Miller"),
        (lead(U, "", "", "Miller"), "en", "Dear Sir or Madam"),
        (lead(M, "", "Tom", ""), "en", "Dear Sir or Madam"),
        (lead(F, "", "Claire", "Dupont"), "fr", "Bonjour Madame Dupont"),
        (lead(M, "Dr.", "Luc", "Dupont"), "fr", "Bonjour Monsieur Dupont"),
        (lead(U, "", "Alex", "Dupont"), "fr", "Bonjour Alex Dupont"),
        (lead(U, "", "", ""), "fr", "Madame, Monsieur"),
        (lead(F, "", "Ana", "García"), "es", "Estimada Sra. García"),
        (lead(M, "", "Juan", "García"), "es", "Estimado Sr. García"),
        (lead(D, "", "Alex", "García"), "es", "Estimado/a Alex García"),
        (lead(U, "", "", ""), "es", "Estimados señores"),
    ],
)
def test_salutation(who: Lead, language: str, expected: str) -> None:
    assert salutation(who, language) == expected


def test_regional_tags_use_their_primary_language() -> None:
    assert salutation(lead(F, "", "", "Huber"), "de-AT") == "Sehr geehrte Frau Huber"
    assert salutation(lead(M, "", "", "Smith"), "en_GB") == "Dear Mr. Smith"


@pytest.mark.parametrize("language", ["it", "", "x-klingon", "??"])
def test_other_languages_fall_back_to_english(language: str) -> None:
    assert salutation(lead(F, "", "", "Rossi"), language) == "Dear Ms. Rossi"


def test_whitespace_in_names_is_collapsed() -> None:
    assert salutation(lead(F, " Prof.  Dr. ", "", "  von  Brandt "), "de") == (
        "Sehr geehrte Frau Prof. Dr. von Brandt"
    )


def test_primary_language() -> None:
    assert primary_language("de-AT") == "de"
    assert primary_language("EN") == "en"
    assert primary_language("") == ""
    assert primary_language("12") == ""
