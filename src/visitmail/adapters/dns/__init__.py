"""DNS look-ups for the sender-domain check (dnspython) and the organizational domain
(the public suffix list shipped with ``publicsuffixlist``, read offline)."""
