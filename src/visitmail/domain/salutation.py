"""The greeting line of a mail to a lead, from gender, title, name and language.

``salutation(lead, "de")`` gives ``Sehr geehrte Frau Dr. Müller``; templates add the
punctuation they want (``{{ salutation }},``). Rules:

* German (``de``): ``Sehr geehrte Frau {title} {last}`` / ``Sehr geehrter Herr {title}
  {last}``; diverse or unknown gender: ``Guten Tag {title} {first} {last}``.
* English (``en``, and every language without rules of its own): a title replaces the
  courtesy title (``Dear Dr. Miller``, ``Dear Prof. Dr. Miller``), else ``Dear Ms. Miller`` /
  ``Dear Mr. Miller``; diverse or unknown gender: ``Dear Alex Miller``.
* French (``fr``): ``Bonjour Madame Dupont`` / ``Bonjour Monsieur Dupont`` / ``Bonjour Alex
  Dupont``; neutral ``Madame, Monsieur``. Academic titles are not used in French greetings.
* Spanish (``es``): ``Estimada Sra. García`` / ``Estimado Sr. García`` / ``Estimado/a Alex
  García``; neutral ``Estimados señores``. Titles are left out (their form depends on gender).

Titles are kept as given and in the order given (``Prof. Dr.``). Without a last name, or
with diverse/unknown gender and neither a first name nor (de/en) a title, the neutral
greeting is used: ``Sehr geehrte Damen und Herren`` / ``Dear Sir or Madam``. Whitespace in
names is collapsed. Never raises.
"""

from __future__ import annotations

from visitmail.domain.reports import Gender, Lead

SUPPORTED_LANGUAGES: tuple[str, ...] = ("de", "en", "fr", "es")
"""Languages with their own rules; any other language gets the English forms."""

_NEUTRAL = {
    "de": "Sehr geehrte Damen und Herren",
    "en": "Dear Sir or Madam",
    "fr": "Madame, Monsieur",
    "es": "Estimados señores",
}


def _clean(value: str) -> str:
    return " ".join(value.split())


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def primary_language(language: str) -> str:
    """``de-AT`` → ``de``; an empty or odd tag → ``""``."""
    primary = language.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else ""


def salutation(lead: Lead, language: str) -> str:
    """The greeting for ``lead`` in ``language`` (a BCP 47 tag; only the primary subtag
    counts), without trailing punctuation. See the module docstring for the forms."""
    lang = primary_language(language)
    if lang not in SUPPORTED_LANGUAGES:
        lang = "en"
    title, first, last = _clean(lead.title), _clean(lead.first_name), _clean(lead.last_name)
    gender = lead.gender
    if not last:
        return _NEUTRAL[lang]
    if lang == "de":
        if gender == Gender.FEMALE:
            return _join("Sehr geehrte Frau", title, last)
        if gender == Gender.MALE:
            return _join("Sehr geehrter Herr", title, last)
        if first or title:
            return _join("Guten Tag", title, first, last)
        return _NEUTRAL[lang]
    if lang == "fr":
        if gender == Gender.FEMALE:
            return _join("Bonjour Madame", last)
        if gender == Gender.MALE:
            return _join("Bonjour Monsieur", last)
        return _join("Bonjour", first, last) if first else _NEUTRAL[lang]
    if lang == "es":
        if gender == Gender.FEMALE:
            return _join("Estimada Sra.", last)
        if gender == Gender.MALE:
            return _join("Estimado Sr.", last)
        return _join("Estimado/a", first, last) if first else _NEUTRAL[lang]
    # English, and the fallback for every other language
    if title:
        return _join("Dear", title, last)
    if gender == Gender.FEMALE:
        return _join("Dear Ms.", last)
    if gender == Gender.MALE:
        return _join("Dear Mr.", last)
    return _join("Dear", first, last) if first else _NEUTRAL[lang]
