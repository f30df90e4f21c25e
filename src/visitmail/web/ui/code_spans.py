"""``code_spans``: a Jinja filter that shows `backticked` words of a text as ``<code>``.

Texts from the domain (warnings, advice, the connection test's fixes) mark settings values
with backticks, as in "choose `starttls`". A page shows them as code, never as literal
backticks. The text is escaped first, so only the ``<code>`` tags are markup.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: object) -> Markup:
    """Escaped ``text`` with each `span` in ``<code>``; a lone backtick is dropped."""
    escaped = str(escape("" if text is None else str(text)))
    marked = _SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)
    return Markup(marked.replace("`", ""))  # noqa: S704 - escaped above
