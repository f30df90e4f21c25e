"""The rule that keeps scripts out of a follow-up's HTML part (pure).

A follow-up's HTML is shown in mail clients and in the app's preview; neither should run
code an event manager typed. Refused, after HTML character references are decoded and
whitespace and control characters inside the scheme are dropped (``java&#115;cript:``,
``java\\tscript:``): a ``<script`` element, a ``javascript:`` (or ``vbscript:``) URL, and
an ``on…=`` event-handler attribute inside a tag. The same function runs when a template
is saved and when it is rendered, so a template stored before the rule cannot send one."""

from __future__ import annotations

import html
import re

from visitmail.domain.errors import InvalidInput

_SCRIPT_TAG = re.compile(r"<\s*script\b", re.IGNORECASE)
_SCRIPT_URL = re.compile(r"(?:java|vb)script:", re.IGNORECASE)
_TAG = re.compile(r"<[a-zA-Z][^>]*>", re.DOTALL)
_HANDLER = re.compile(r"[\s/\"']on[a-z]+\s*=", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


def refuse_scripts(source: str, *, field: str = "html") -> None:
    """Raise :class:`InvalidInput` naming ``field`` when ``source`` carries a script."""
    decoded = html.unescape(source)
    if _SCRIPT_TAG.search(decoded):
        raise InvalidInput("must not contain <script> elements", field=field)
    if _SCRIPT_URL.search(_INVISIBLE.sub("", decoded)):
        raise InvalidInput("must not contain javascript: URLs", field=field)
    for tag in _TAG.finditer(decoded):
        if _HANDLER.search(tag.group(0)):
            raise InvalidInput(
                "must not contain event-handler attributes (onclick=, onload=, …)", field=field
            )
