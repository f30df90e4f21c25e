"""Random secrets handed to people once: API tokens, session ids, initial passwords.

Only their SHA-256 digests are stored. The tokens carry 256 bits of entropy, so a fast
digest is enough (a slow KDF protects low-entropy passwords, not random tokens).
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "vm_"  # noqa: S105 (a public prefix, not a secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_api_token() -> tuple[str, str]:
    """``(token, display prefix)``; the token looks like ``vm_<8 id chars>_<43 secret chars>``."""
    ident = secrets.token_hex(4)
    return f"{TOKEN_PREFIX}{ident}_{secrets.token_urlsafe(32)}", f"{TOKEN_PREFIX}{ident}"


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


def new_password() -> str:
    """A readable initial password: 4 groups of 5 characters, about 100 bits."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))
