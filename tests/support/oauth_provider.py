"""A real OAuth2 token endpoint on 127.0.0.1 for tests (``http.server`` in a thread).

It answers like Microsoft's identity platform on ``/<tenant>/oauth2/v2.0/token`` and like
Google on ``/token`` (and any other path, for ``generic``):

* ``refresh_token``: issues an access token and **rotates** the refresh token on every use
  (the old one is refused afterwards), unless ``rotate`` is off;
* ``client_credentials``: with a client secret, or a client assertion JWT whose signature
  is checked with the registered certificate's public key (``aud`` = the URL, ``x5t``);
* ``urn:ietf:params:oauth:grant-type:jwt-bearer``: a service account's assertion checked
  with its public key, ``sub`` = the mailbox.

Errors use each provider's words: ``invalid_grant`` with ``AADSTS70000``/``AADSTS700082``
(Microsoft) or ``Token has been expired or revoked.`` (Google); a wrong client secret
gets ``invalid_client`` / ``AADSTS7000215``. Every request is recorded (form fields), and
:meth:`OAuthProvider.live` tells the SMTP test server whether a bearer token is good.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

HOST = "127.0.0.1"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Grant:
    client_id: str
    mailbox: str | None  # None: an app-only token (any mailbox the app may use)
    scopes: tuple[str, ...]


@dataclass
class LiveToken:
    grant: Grant
    expires_at: float


@dataclass
class Request:
    path: str
    form: dict[str, str]

    @property
    def grant_type(self) -> str:
        return self.form.get("grant_type", "")


@dataclass
class KeyPair:
    """An RSA key (PEM) and a self-signed certificate for it, for assertions."""

    private_pem: str
    public_pem: str
    cert_pem: str

    @classmethod
    def generate(cls, name: str = "visitmail-test") -> KeyPair:
        import datetime

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(
            private_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            public_pem=key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        )


@dataclass
class OAuthProvider:
    """State and controls; start with :func:`start_oauth_provider`, stop with ``close``."""

    clients: dict[str, str | None] = field(default_factory=dict)  # id -> secret (None: public)
    client_certs: dict[str, str] = field(default_factory=dict)  # id -> public key PEM
    service_accounts: dict[str, str] = field(default_factory=dict)  # email -> public key PEM
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, LiveToken] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    rotate: bool = True
    expires_in: int = 3600
    granted_scopes: tuple[str, ...] | None = None  # answer these instead of the requested
    delay: float = 0.0  # seconds before answering a token request (widens races)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- set-up -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def microsoft_url(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/token"

    @property
    def google_url(self) -> str:
        return f"{self.base_url}/token"

    def register_client(self, client_id: str, secret: str | None = None) -> None:
        self.clients[client_id] = secret

    def register_certificate(self, client_id: str, keys: KeyPair) -> None:
        self.clients.setdefault(client_id, None)
        self.client_certs[client_id] = keys.public_pem

    def register_service_account(self, email: str, keys: KeyPair) -> str:
        """Returns the JSON key file an admin would download."""
        self.service_accounts[email] = keys.public_pem
        return json.dumps(
            {
                "type": "service_account",
                "client_email": email,
                "private_key_id": "k1",
                "private_key": keys.private_pem,
                "token_uri": self.google_url,
            }
        )

    def issue_refresh_token(
        self, client_id: str, mailbox: str, scopes: tuple[str, ...] = ()
    ) -> str:
        """What a sign-in would have given the admin."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[token] = Grant(client_id, mailbox, scopes)
        return token

    # -- controls -------------------------------------------------------------------------

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def revoke_access_tokens(self) -> None:
        """Server-side revocation: SMTP refuses tokens visitmail still believes valid."""
        with self.lock:
            self.access_tokens.clear()

    def live(self, token: str, mailbox: str) -> bool:
        """Is ``token`` a live access token for ``mailbox`` (SMTP server side)?"""
        with self.lock:
            found = self.access_tokens.get(token)
        if found is None or found.expires_at < time.time():
            return False
        return found.grant.mailbox in (None, mailbox)

    def token_requests(self, grant_type: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if grant_type in (None, r.grant_type)]

    # -- answering ------------------------------------------------------------------------

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(Request(path, dict(form)))
        if self.delay:
            time.sleep(self.delay)
        microsoft = path.endswith("/oauth2/v2.0/token")
        grant_type = form.get("grant_type")
        with self.lock:
            if grant_type == "refresh_token":
                return self._refresh(form, microsoft)
            if grant_type == "client_credentials":
                return self._client_credentials(path, form, microsoft)
            if grant_type == JWT_BEARER:
                return self._jwt_bearer(path, form)
        return 400, {"error": "unsupported_grant_type"}

    def _issue(self, grant: Grant) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = LiveToken(grant, time.time() + self.expires_in)
        scopes = self.granted_scopes if self.granted_scopes is not None else grant.scopes
        return {
            "token_type": "Bearer",
            "access_token": token,
            "expires_in": self.expires_in,
            "scope": " ".join(scopes),
        }

    def _client_ok(
        self, form: dict[str, str], microsoft: bool
    ) -> tuple[int, dict[str, Any]] | None:
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            return 400, {"error": "unauthorized_client", "error_description": "unknown client"}
        expected = self.clients[client_id]
        if expected is not None and form.get("client_secret") != expected:
            text = (
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                "in the request is the client secret value, not the client secret ID."
                if microsoft
                else "Unauthorized"
            )
            return 401, {"error": "invalid_client", "error_description": text}
        return None

    def _refresh(self, form: dict[str, str], microsoft: bool) -> tuple[int, dict[str, Any]]:
        refused = self._client_ok(form, microsoft)
        if refused:
            return refused
        token = form.get("refresh_token", "")
        grant = self.refresh_tokens.get(token)
        if grant is None or grant.client_id != form.get("client_id"):
            text = (
                "AADSTS700082: The refresh token has expired due to inactivity. The token "
                "was issued on 2026-01-01 and was inactive for 90.00:00:00."
                if microsoft
                else "Token has been expired or revoked."
            )
            return 400, {"error": "invalid_grant", "error_description": text}
        scopes = tuple(form.get("scope", "").split()) or grant.scopes
        body = self._issue(Grant(grant.client_id, grant.mailbox, scopes))
        if self.rotate:
            del self.refresh_tokens[token]
            new = "rt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[new] = grant
            body["refresh_token"] = new
        return 200, body

    def _client_credentials(
        self, path: str, form: dict[str, str], microsoft: bool
    ) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id", "")
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            public = self.client_certs.get(client_id)
            if public is None:
                return 401, {"error": "invalid_client", "error_description": "no certificate"}
            claims = _verified(form.get("client_assertion", ""), public)
            if (
                claims is None
                or claims.get("iss") != client_id
                or claims.get("sub") != client_id
                or claims.get("aud") != self.base_url + path
            ):
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS700027: Client assertion contains an invalid "
                    "signature.",
                }
        else:
            refused = self._client_ok(form, microsoft)
            if refused:
                return refused
        scopes = tuple(form.get("scope", "").split())
        return 200, self._issue(Grant(client_id, None, scopes))

    def _jwt_bearer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        assertion = form.get("assertion", "")
        try:
            unverified = json.loads(
                _b64(assertion.split(".")[1])  # which service account: then verify with it
            )
        except (IndexError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
        public = self.service_accounts.get(str(unverified.get("iss")))
        claims = _verified(assertion, public) if public else None
        if claims is None or claims.get("aud") != self.base_url + path:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if not claims.get("sub"):
            return 400, {"error": "invalid_grant", "error_description": "No sub"}
        scopes = tuple(str(claims.get("scope", "")).split())
        return 200, self._issue(Grant(str(claims["iss"]), str(claims["sub"]), scopes))

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verified(token: str, public_pem: str) -> dict[str, Any] | None:
    try:
        return dict(jwt.decode(token, RSAKey.import_key(public_pem)).claims)
    except Exception:
        return None


def start_oauth_provider(**options: Any) -> OAuthProvider:
    """Start the endpoint on 127.0.0.1 (an ephemeral port) in a thread."""
    provider = OAuthProvider(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            status, body = provider.answer(self.path, form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    provider.port = int(server.server_address[1])
    provider._server = server
    provider._thread = threading.Thread(target=server.serve_forever, daemon=True)
    provider._thread.start()
    return provider
