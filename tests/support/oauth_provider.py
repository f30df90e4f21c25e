"""A real OAuth2 token endpoint on 127.0.0.1 for tests (``http.server`` in a thread).

It answers like Microsoft's identity platform on ``/<tenant>/oauth2/v2.0/token`` and like
Google on ``/token`` (and any other path, for ``generic``):

* ``refresh_token``: issues an access token and **rotates** the refresh token on every use
  (the old one is refused afterwards), unless ``rotate`` is off;
* ``client_credentials``: with a client secret, or a client assertion JWT whose signature
  is checked with the registered certificate's public key (``aud`` = the URL, ``x5t``);
* ``urn:ietf:params:oauth:grant-type:jwt-bearer``: a service account's assertion checked
  with its public key, ``sub`` = the mailbox.

The browser sign-in (authorization code with PKCE) is served too: ``GET
/<tenant>/oauth2/v2.0/authorize`` (Microsoft) or ``GET /authorize`` (Google) checks the
client id, the registered redirect URI, the scopes and the S256 ``code_challenge``, and
shows a small consent page ("visitmail wants to send mail as ...") with Allow and Deny;
``POST /consent`` redirects back with ``code`` + ``state`` or ``error=access_denied``.
``grant_type=authorization_code`` checks the code (once, same client and redirect URI)
and the ``code_verifier`` against the challenge, then issues an access token and, when
``offline_access`` (Microsoft) or ``access_type=offline`` (Google) was asked for, a
refresh token.

Errors use each provider's words: ``invalid_grant`` with ``AADSTS70000``/``AADSTS700082``
(Microsoft) or ``Token has been expired or revoked.`` (Google); a wrong client secret
gets ``invalid_client`` / ``AADSTS7000215``. Every request is recorded (form fields), and
:meth:`OAuthProvider.live` tells the SMTP test server whether a bearer token is good.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

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
class Consent:
    """An authorization request waiting on the consent page (or a code issued for it)."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    code_challenge: str
    mailbox: str
    microsoft: bool
    offline: bool


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None


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
    redirect_uris: dict[str, set[str]] = field(default_factory=dict)  # client -> allowed
    consents: dict[str, Consent] = field(default_factory=dict)  # ticket -> waiting request
    codes: dict[str, Consent] = field(default_factory=dict)  # authorization code -> request
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    issued_codes: list[str] = field(default_factory=list)  # every code handed out
    sign_in_as: str | None = None  # the account that signs in (default: the login_hint)
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

    def register_redirect_uri(self, client_id: str, uri: str) -> None:
        self.redirect_uris.setdefault(client_id, set()).add(uri)

    def microsoft_authorize_url(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/authorize"

    @property
    def google_authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

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

    def introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """RFC 7662 token introspection, for a mail server (Dovecot's ``oauth2`` passdb)
        that checks the bearer token an IMAP client presents: active, and whose."""
        with self.lock:
            found = self.access_tokens.get(form.get("token", ""))
        if found is None or found.expires_at < time.time():
            return 200, {"active": False}
        return 200, {"active": True, "username": found.grant.mailbox}

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
            if grant_type == "authorization_code":
                return self._authorization_code(form, microsoft)
        return 400, {"error": "unsupported_grant_type"}

    # -- the browser sign-in ------------------------------------------------------------

    def authorize(self, path: str, query: dict[str, str]) -> Reply:
        """``GET .../authorize``: the consent page, or an error page (never a redirect to
        an unregistered URI)."""
        with self.lock:
            self.authorize_requests.append(dict(query))
        microsoft = path.endswith("/oauth2/v2.0/authorize")
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        if client_id not in self.clients:
            return _error_page(
                "AADSTS700016: Application with identifier was not found in the directory."
                if microsoft
                else "Error 401: invalid_client. The OAuth client was not found."
            )
        if redirect_uri not in self.redirect_uris.get(client_id, set()):
            return _error_page(
                "AADSTS50011: The redirect URI specified in the request does not match the "
                "redirect URIs configured for the application."
                if microsoft
                else "Error 400: redirect_uri_mismatch"
            )
        scopes = tuple(query.get("scope", "").split())
        needed = (
            ("https://outlook.office.com/SMTP.Send",)
            if microsoft
            else ("https://mail.google.com/",)
        )
        problem = None
        if query.get("response_type") != "code":
            problem = "unsupported_response_type"
        elif not all(n in scopes for n in needed):
            problem = "invalid_scope"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            problem = "invalid_request"  # this provider insists on PKCE with S256
        if problem is not None:
            target = (
                redirect_uri
                + "?"
                + urlencode(
                    {
                        "error": problem,
                        "error_description": f"{problem} (test provider)",
                        "state": query.get("state", ""),
                    }
                )
            )
            return Reply(302, location=target)
        offline = (
            ("offline_access" in scopes) if microsoft else query.get("access_type") == "offline"
        )
        consent = Consent(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=query.get("state", ""),
            code_challenge=query["code_challenge"],
            mailbox=self.sign_in_as or query.get("login_hint", "user@example.com"),
            microsoft=microsoft,
            offline=offline,
        )
        ticket = secrets.token_urlsafe(16)
        with self.lock:
            self.consents[ticket] = consent
        listed = "".join(f"<li>{html.escape(sc)}</li>" for sc in scopes)
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Permissions requested · test provider</title></head><body>
<h1>Permissions requested</h1>
<p id="consent-text">visitmail wants to send mail as <strong>{html.escape(consent.mailbox)}</strong>.</p>
<ul>{listed}</ul>
<form method="post" action="/consent">
<input type="hidden" name="ticket" value="{ticket}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>"""
        return Reply(200, page.encode())

    def decide(self, form: dict[str, str]) -> Reply:
        """``POST /consent``: back to the redirect URI with a code, or with access_denied."""
        with self.lock:
            consent = self.consents.pop(form.get("ticket", ""), None)
        if consent is None:
            return _error_page("This sign-in request is unknown or was already answered.")
        if form.get("decision") != "allow":
            params = {"error": "access_denied", "state": consent.state}
            if consent.microsoft:
                params["error_description"] = (
                    "AADSTS65004: User declined to consent to access the app."
                )
            return Reply(302, location=consent.redirect_uri + "?" + urlencode(params))
        code = "code-" + secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = consent
            self.issued_codes.append(code)
        return Reply(
            302,
            location=consent.redirect_uri + "?" + urlencode({"code": code, "state": consent.state}),
        )

    def _authorization_code(
        self, form: dict[str, str], microsoft: bool
    ) -> tuple[int, dict[str, Any]]:
        refused = self._client_ok(form, microsoft)
        if refused:
            return refused
        consent = self.codes.pop(form.get("code", ""), None)  # a code is good once
        if (
            consent is None
            or consent.client_id != form.get("client_id")
            or consent.redirect_uri != form.get("redirect_uri")
        ):
            text = (
                "AADSTS70008: The provided authorization code or refresh token has expired "
                "due to inactivity."
                if microsoft
                else "Malformed auth code."
            )
            return 400, {"error": "invalid_grant", "error_description": text}
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if not verifier or not secrets.compare_digest(challenge, consent.code_challenge):
            text = (
                "AADSTS501481: The Code_Verifier does not match the code_challenge supplied "
                "in the authorization request."
                if microsoft
                else "Invalid code verifier."
            )
            return 400, {"error": "invalid_grant", "error_description": text}
        grant = Grant(consent.client_id, consent.mailbox, consent.scopes)
        body = self._issue(grant)
        if consent.offline:
            refresh = "rt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = grant
            body["refresh_token"] = refresh
        return 200, body

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


def _error_page(text: str) -> Reply:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title>'
        f'</head><body><h1>Sign-in error</h1><p id="provider-error">{html.escape(text)}</p>'
        "</body></html>"
    )
    return Reply(400, page.encode())


def _b64(part: str) -> bytes:
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
        def _reply(self, reply: Reply) -> None:
            self.send_response(reply.status)
            if reply.location is not None:
                self.send_header("Location", reply.location)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if not parts.path.endswith("/authorize"):
                self._reply(_error_page("not found"))
                return
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            self._reply(provider.authorize(parts.path, query))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            if self.path == "/consent":
                self._reply(provider.decide(form))
                return
            if self.path == "/introspect":
                status, body = provider.introspect(form)
            else:
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
