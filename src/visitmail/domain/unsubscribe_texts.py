"""The words a lead reads about unsubscribing: the visible line at the end of every
follow-up (text and HTML part) and the page the link opens, per language.

Contract: :func:`texts` answers the texts of a language tag (``de-AT`` → ``de``) and falls
back to English for a language without texts; :func:`with_footer` appends the line, with
the same URL as the ``List-Unsubscribe`` header, to both parts of a rendered follow-up.
Pure: no I/O, so the send path and the page share one source of words."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace

from visitmail.domain.follow_up import RenderedFollowUp


@dataclass(frozen=True, slots=True)
class UnsubscribeTexts:
    language: str
    footer: str  # the line in the mail, before the URL
    link: str  # the HTML part's link text
    title: str
    question: str  # "{organization}" and "{address}" are filled in (escaped for HTML)
    button: str
    done_title: str
    done: str
    invalid_title: str
    invalid: str


_EN = UnsubscribeTexts(
    language="en",
    footer="You receive this email because you visited {organization}. Unsubscribe:",
    link="Unsubscribe from these emails",
    title="Unsubscribe",
    question="Stop follow-up emails from {organization} to {address}?",
    button="Unsubscribe",
    done_title="You are unsubscribed",
    done="{organization} will send no more follow-up emails to {address}.",
    invalid_title="This link is not valid",
    invalid="This unsubscribe link is not valid. It may be incomplete or too old; "
    "reply to the email and ask to be removed instead.",
)
_DE = UnsubscribeTexts(
    language="de",
    footer="Sie erhalten diese E-Mail, weil Sie {organization} besucht haben. Abmelden:",
    link="Von diesen E-Mails abmelden",
    title="Abmelden",
    question="Keine weiteren E-Mails von {organization} an {address} senden?",
    button="Abmelden",
    done_title="Sie sind abgemeldet",
    done="{organization} sendet keine weiteren E-Mails an {address}.",
    invalid_title="Dieser Link ist ungültig",
    invalid="Dieser Abmeldelink ist ungültig. Er ist vielleicht unvollständig oder zu alt; "
    "antworten Sie auf die E-Mail und bitten Sie um Austragung.",
)
_TEXTS = {t.language: t for t in (_EN, _DE)}
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def texts(language: str | None) -> UnsubscribeTexts:
    """The texts of ``language``'s primary subtag; English when there are none."""
    primary = (language or "").split("-", 1)[0].strip().lower()
    return _TEXTS.get(primary, _EN)


def with_footer(
    rendered: RenderedFollowUp, url: str, language: str, organization: str
) -> RenderedFollowUp:
    """``rendered`` with the unsubscribe line after the text and at the end of the HTML
    body (before ``</body>`` when there is one). ``url`` must be the header's URL."""
    words = texts(language)
    line = words.footer.format(organization=organization or "us")
    text = f"{rendered.text.rstrip()}\n\n-- \n{line}\n{url}\n"
    if rendered.html is None:
        return replace(rendered, text=text)
    esc_org = html.escape(organization or "us")
    block = (
        '<p style="font-size:12px;color:#666;margin-top:24px">'
        f"{html.escape(words.footer).replace('{organization}', esc_org)} "
        f'<a href="{html.escape(url, quote=True)}">{html.escape(words.link)}</a></p>'
    )
    ends = list(_BODY_END.finditer(rendered.html))
    if ends:
        at = ends[-1].start()
        body = rendered.html[:at] + block + rendered.html[at:]
    else:
        body = rendered.html + block
    return replace(rendered, text=text, html=body)
