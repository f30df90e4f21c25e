"""The organizational domain of a name (RFC 7489 §3.2): the public suffix plus one label,
from the Public Suffix List that the ``publicsuffixlist`` package ships (no download at
run time; the list is as fresh as the installed package)."""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList


@lru_cache(maxsize=1)
def _list() -> PublicSuffixList:
    return PublicSuffixList()  # parses the bundled list once (about 10 000 rules)


def organizational_domain(domain: str) -> str:
    """``mail.example.co.uk`` → ``example.co.uk``; a name that is itself a public suffix
    (or unknown to the list's rules) answers itself."""
    found = _list().privatesuffix(domain.lower().rstrip("."))
    return found if isinstance(found, str) else domain
