"""The IMS half of the platform emulator: OAuth 2.0 token endpoint, authorize endpoint, token checks.

Kept apart from the HTTP plumbing in ``emulator.py`` so the rules read in one place:

- clients are registered, as at IMS: one confidential service app (random id and secret per emulator), and
  the Native apps a test registers (``register_client``), each with its list of redirect URIs (default
  ``http://localhost:3000/signin-callback``, more with ``register_redirect_uri``); an unknown client id at
  the token endpoint is 401 ``invalid_client`` with the API's ``UnknownClient`` detail beside it;
- client credentials: the service app only, client authentication by HTTP Basic or form fields, scope must
  include ``itwin-platform``;
- authorization code + PKCE (S256 only) for a registered Native app, auto-approved. The ``redirect_uri``
  must be one of the app's exactly (port included: a random port never matches); otherwise, like an unknown
  client, the authorize endpoint shows an error page (HTTP 400) and never redirects. The token request must
  repeat the authorize request's ``redirect_uri``. ``offline_access`` in the scope adds a refresh token;
- refresh tokens rotate: using one invalidates it (IdentityServer's ``OneTimeOnly`` default);
- access tokens look like JWTs (base64url header.payload.signature) with ``sub``, ``email``, ``exp``,
  ``scope``..., but the signature is random bytes: the emulator checks tokens against what it issued,
  so a client that decodes claims works, and one that forges or replays tokens does not.

Everything secret that is handed out is remembered in ``secrets`` so tests can assert it never leaks.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

ITWIN_SCOPE = "itwin-platform"
CODE_LIFETIME_S = 300
REFRESH_LIFETIME_S = 30 * 24 * 3600
USER_EMAIL = "user@example.com"
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# What most Native apps register (Bentley's node-cli default), and so what a registration starts with.
DEFAULT_REDIRECT_URIS = ("http://localhost:3000/signin-callback",)
# The API's answer for a token of an app it does not know (seen from api.bentley.com): its shape, and the
# detail the token endpoint adds beside the OAuth fields for an unknown client id.
UNKNOWN_CLIENT_MESSAGE = "Access denied due to invalid client. Make sure that client was registered on https://developer.bentley.com."
UNKNOWN_CLIENT_DETAIL = {"code": "UnknownClient", "message": "Client was not registered on https://developer.bentley.com."}


@dataclass
class Reply:
    """What a handler answers; ``emulator.py`` turns it into HTTP."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: object, headers: dict[str, str] | None = None) -> "Reply":
        h = {"Content-Type": "application/json; charset=utf-8"}
        h.update(headers or {})
        return cls(status, json.dumps(obj).encode(), h)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Reply:
    h = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    h.update(headers or {})
    return Reply.json(status, {"error": error, "error_description": description}, h)


def unknown_client(headers: dict[str, str] | None = None) -> Reply:
    """401 for a client id IMS has no registration for.

    OAuth clients read ``error`` as a string (RFC 6749 5.2), so that stays ``invalid_client``; the docs'
    detail (``{"code":"UnknownClient","message":...}``) comes beside it in ``details``, as the API nests it.
    """
    h = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    h.update(headers or {})
    body = {"error": "invalid_client", "error_description": UNKNOWN_CLIENT_MESSAGE, "details": [dict(UNKNOWN_CLIENT_DETAIL)]}
    return Reply.json(401, body, h)


@dataclass
class Client:
    """An app registration: a ``service`` app (client credentials, has a secret) or a ``native`` app
    (authorization code + PKCE, no secret) with the redirect URIs registered for it."""

    client_id: str
    kind: str
    secret: str | None = None
    redirect_uris: list[str] = field(default_factory=lambda: list(DEFAULT_REDIRECT_URIS))


@dataclass
class AccessToken:
    sub: str
    email: str
    client_id: str
    scopes: list[str]
    exp: float
    generation: int  # expire_tokens() bumps the current generation; older tokens are dead


@dataclass
class RefreshToken:
    sub: str
    email: str
    client_id: str
    scopes: list[str]
    exp: float
    generation: int


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    challenge: str
    scopes: list[str]
    exp: float


class AuthServer:
    def __init__(self, token_lifetime: float = 3600, user_email: str = USER_EMAIL) -> None:
        self.lock = threading.Lock()
        self.issuer = ""  # set by the emulator once it knows its URL
        self.client_id = "service-" + secrets.token_hex(8)
        self.client_secret = secrets.token_urlsafe(32)
        self.client_sub = str(uuid.uuid4())
        self.user_sub = str(uuid.uuid4())
        self.user_email = user_email
        self.token_lifetime = token_lifetime
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self.generation = 0
        self.refresh_generation = 0
        self.secrets: set[str] = {self.client_secret}
        self.clients: dict[str, Client] = {}
        self.reset_clients()

    # -- registrations -----------------------------------------------------------------------------
    def reset_clients(self) -> None:
        """Back to the service app alone: Native apps and their redirect URIs are a test's own setup."""
        with self.lock:
            self.clients = {self.client_id: Client(self.client_id, "service", self.client_secret, [])}

    def register_client(self, client_id: str, redirect_uris: list[str] | None = None) -> None:
        """Register (or re-register) a Native app; ``redirect_uris`` default to DEFAULT_REDIRECT_URIS."""
        if not isinstance(client_id, str) or not client_id.strip():
            raise ValueError("client_id must be a non-empty string")
        if client_id == self.client_id:
            raise ValueError(f"{client_id!r} is the service app; Native apps need another client id")
        uris = list(DEFAULT_REDIRECT_URIS if redirect_uris is None else redirect_uris)
        for uri in uris:
            _check_redirect_uri(uri)
        with self.lock:
            self.clients[client_id] = Client(client_id, "native", None, uris)

    def register_redirect_uri(self, client_id: str, uri: str) -> None:
        """Add ``uri`` to a registered Native app's redirect URIs (KeyError if the app is not registered)."""
        _check_redirect_uri(uri)
        with self.lock:
            client = self.clients.get(client_id)
            if client is None or client.kind != "native":
                raise KeyError(f"no Native app {client_id!r} is registered: register_client() first")
            if uri not in client.redirect_uris:
                client.redirect_uris.append(uri)

    def client_registrations(self) -> list[dict]:
        """Every registration without its secret (for the emulator's state)."""
        with self.lock:
            return [{"clientId": c.client_id, "kind": c.kind, "redirectUris": list(c.redirect_uris)}
                    for c in self.clients.values()]

    def _client(self, client_id: str | None) -> Client | None:
        with self.lock:
            return self.clients.get(client_id or "")

    # -- issuing -----------------------------------------------------------------------------------
    def _jwt(self, claims: dict) -> str:
        header = {"alg": "RS256", "kid": "emulator", "typ": "at+jwt"}
        return ".".join(
            [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(secrets.token_bytes(64))]
        )

    def issue_access_token(
        self,
        *,
        sub: str | None = None,
        email: str | None = None,
        client_id: str | None = None,
        scopes: list[str] | None = None,
        lifetime: float | None = None,
    ) -> tuple[str, int]:
        """Mint an access token (also usable directly by tests, e.g. for ``ITWIN_ACCESS_TOKEN``)."""
        sub = sub or self.user_sub
        email = email or self.user_email
        client_id = client_id or self.client_id
        scopes = scopes if scopes is not None else [ITWIN_SCOPE]
        lifetime = int(self.token_lifetime if lifetime is None else lifetime)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "nbf": now,
            "iat": now,
            "exp": now + lifetime,
            "aud": [ITWIN_SCOPE],
            # IdentityServer (which IMS is built on) emits scope as a JSON array: parse defensively.
            "scope": scopes,
            "client_id": client_id,
            "sub": sub,
            "email": email,
            "jti": secrets.token_hex(16),
        }
        token = self._jwt(claims)
        with self.lock:
            self.access_tokens[token] = AccessToken(sub, email, client_id, scopes, now + lifetime, self.generation)
            self.secrets.add(token)
        return token, lifetime

    def _issue_refresh_token(self, sub: str, email: str, client_id: str, scopes: list[str]) -> str:
        token = secrets.token_urlsafe(48)
        with self.lock:
            self.refresh_tokens[token] = RefreshToken(
                sub, email, client_id, scopes, time.time() + REFRESH_LIFETIME_S, self.refresh_generation
            )
            self.secrets.add(token)
        return token

    def _token_reply(self, sub: str, email: str, client_id: str, scopes: list[str], refresh: bool) -> Reply:
        access, lifetime = self.issue_access_token(sub=sub, email=email, client_id=client_id, scopes=scopes)
        body = {"access_token": access, "expires_in": lifetime, "token_type": "Bearer", "scope": " ".join(scopes)}
        if refresh and "offline_access" in scopes:
            body["refresh_token"] = self._issue_refresh_token(sub, email, client_id, scopes)
        if "openid" in scopes:
            now = int(time.time())
            id_token = self._jwt(
                {"iss": self.issuer, "aud": client_id, "iat": now, "exp": now + lifetime, "sub": sub, "email": email}
            )
            with self.lock:
                self.secrets.add(id_token)
            body["id_token"] = id_token
        return Reply.json(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # -- checking ----------------------------------------------------------------------------------
    def check_access_token(self, token: str) -> AccessToken | None:
        """The token's record if it is one we issued, unexpired, not revoked, with the itwin-platform scope."""
        with self.lock:
            record = self.access_tokens.get(token)
            if record is None or record.generation != self.generation or record.exp <= time.time():
                return None
            if ITWIN_SCOPE not in record.scopes:
                return None
            return record

    def expire_tokens(self, refresh: bool = False) -> None:
        """Every access token issued so far stops working (and refresh tokens too if ``refresh``)."""
        with self.lock:
            self.generation += 1
            if refresh:
                self.refresh_generation += 1

    # -- /connect/authorize ------------------------------------------------------------------------
    def authorize(self, query: dict[str, list[str]]) -> Reply:
        q = {k: v[0] for k, v in query.items()}
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        # Without a trustworthy redirect_uri, errors cannot be redirected: show them (as IMS shows a page).
        if not client_id:
            return _error_page("invalid_request", "The client_id parameter is missing.")
        client = self._client(client_id)
        if client is None:
            return _error_page("unauthorized_client", "Unknown client or client not enabled.")
        if client.kind != "native":
            return _error_page("unauthorized_client", "Invalid grant type for client.")
        # Exactly one of the registered URIs, as IMS checks: no loopback port leniency (RFC 8252 7.3).
        if redirect_uri not in client.redirect_uris:
            return _error_page("invalid_request", f"Invalid redirect_uri: {redirect_uri or '(none)'} is not registered "
                               "for this client.")

        def redirect_error(error: str, description: str) -> Reply:
            params = {"error": error, "error_description": description}
            if "state" in q:
                params["state"] = q["state"]
            return _redirect(redirect_uri, params)

        if q.get("response_type") != "code":
            return redirect_error("unsupported_response_type", "Only response_type=code is supported.")
        scopes = q.get("scope", "").split()
        if not scopes:
            return redirect_error("invalid_scope", "The scope parameter is missing.")
        challenge = q.get("code_challenge", "")
        if not challenge:
            return redirect_error("invalid_request", "code challenge required")
        if q.get("code_challenge_method") != "S256":
            return redirect_error("invalid_request", "Transform algorithm not supported: use code_challenge_method=S256")
        code = secrets.token_urlsafe(32)
        with self.lock:
            self.codes[code] = AuthCode(client_id, redirect_uri, challenge, scopes, time.time() + CODE_LIFETIME_S)
            self.secrets.add(code)
        params = {"code": code, "scope": " ".join(scopes)}
        if "state" in q:
            params["state"] = q["state"]
        return _redirect(redirect_uri, params)

    # -- /connect/token ----------------------------------------------------------------------------
    def token(self, form: dict[str, list[str]], authorization: str | None) -> Reply:
        f = {k: v[0] for k, v in form.items()}
        basic = _parse_basic(authorization)
        if authorization and basic is None:
            return oauth_error(401, "invalid_client", "Malformed client authentication.")
        client_id = basic[0] if basic else f.get("client_id")
        client_secret = basic[1] if basic else f.get("client_secret")
        grant = f.get("grant_type")
        if not grant:
            return oauth_error(400, "invalid_request", "grant_type is missing.")

        client = self._client(client_id)
        challenge = {"WWW-Authenticate": 'Basic realm="ims"'} if basic else {}
        if grant == "client_credentials":
            if client_id and client is None:
                return unknown_client(challenge)
            if client is not None and client.kind != "service":
                return oauth_error(400, "unauthorized_client", "Invalid grant type for client.")
            if client_id != self.client_id or client_secret is None or not secrets.compare_digest(
                client_secret, self.client_secret
            ):
                return oauth_error(401, "invalid_client", "Client authentication failed.", challenge)
            scopes = f.get("scope", "").split()
            if ITWIN_SCOPE not in scopes:
                return oauth_error(400, "invalid_scope", f"The scope must include {ITWIN_SCOPE}.")
            if "offline_access" in scopes:
                return oauth_error(400, "invalid_scope", "offline_access is not allowed for client_credentials.")
            email = f"{self.client_id}@apps.imsoidc.bentley.com"
            return self._token_reply(self.client_sub, email, self.client_id, scopes, refresh=False)

        # Public-client grants: a secret is optional, but if one is sent for our confidential client it
        # must be right.
        if client_id == self.client_id and client_secret is not None and not secrets.compare_digest(
            client_secret, self.client_secret
        ):
            return oauth_error(401, "invalid_client", "Client authentication failed.")
        if not client_id:
            return oauth_error(400, "invalid_client", "client_id is missing.")
        if client is None:
            return unknown_client(challenge)

        if grant == "authorization_code":
            code = f.get("code", "")
            with self.lock:
                record = self.codes.pop(code, None)  # single use, even when the exchange fails
            if record is None or record.exp <= time.time():
                return oauth_error(400, "invalid_grant", "Invalid or expired authorization code.")
            if record.client_id != client_id:
                return oauth_error(400, "invalid_grant", "The code was issued to another client.")
            if record.redirect_uri != f.get("redirect_uri"):
                return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request.")
            verifier = f.get("code_verifier", "")
            if not _VERIFIER_RE.match(verifier):
                return oauth_error(400, "invalid_grant", "Invalid code_verifier.")
            if not secrets.compare_digest(b64url(hashlib.sha256(verifier.encode()).digest()), record.challenge):
                return oauth_error(400, "invalid_grant", "Transformed code_verifier does not match code challenge.")
            return self._token_reply(self.user_sub, self.user_email, client_id, record.scopes, refresh=True)

        if grant == "refresh_token":
            token = f.get("refresh_token", "")
            with self.lock:
                record = self.refresh_tokens.get(token)
                valid = (
                    record is not None
                    and record.generation == self.refresh_generation
                    and record.exp > time.time()
                    and record.client_id == client_id
                )
                if valid:
                    del self.refresh_tokens[token]  # rotation: the old one is spent
            if not valid:
                return oauth_error(400, "invalid_grant", "Invalid refresh token.")
            return self._token_reply(record.sub, record.email, record.client_id, record.scopes, refresh=True)

        return oauth_error(400, "unsupported_grant_type", f"Grant type {grant!r} is not supported.")

    def discovery(self) -> Reply:
        base = self.issuer
        return Reply.json(
            200,
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/connect/authorize",
                "token_endpoint": f"{base}/connect/token",
                "jwks_uri": f"{base}/.well-known/openid-configuration/jwks",
                "scopes_supported": ["openid", "profile", "email", "offline_access", ITWIN_SCOPE],
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            },
        )


def _is_loopback_redirect(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS


def _check_redirect_uri(uri: object) -> None:
    # The emulator redirects browsers there: only a loopback http URI makes sense for a test's Native app.
    if not isinstance(uri, str) or not _is_loopback_redirect(uri):
        raise ValueError(f"a Native app's redirect URI must be http://localhost, 127.0.0.1 or [::1]: {uri!r}")


def _redirect(uri: str, params: dict[str, str]) -> Reply:
    sep = "&" if urlsplit(uri).query else "?"
    return Reply(302, b"", {"Location": uri + sep + urlencode(params), "Cache-Control": "no-store"})


def _error_page(error: str, description: str) -> Reply:
    """IMS's own error page: shown in the browser, never redirected (the redirect URI is not trusted)."""
    page = (
        "<!DOCTYPE html><html><head><title>Sign-in error</title></head><body><h1>Sign-in error</h1>"
        f"<p>{html.escape(error)}</p><p>{html.escape(description)}</p></body></html>"
    )
    return Reply(400, page.encode(), {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})


def _parse_basic(header: str | None) -> tuple[str, str] | None:
    """(client_id, client_secret) from ``Basic base64(urlencode(id):urlencode(secret))`` (RFC 6749 2.3.1)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if ":" not in decoded:
        return None
    cid, secret = decoded.split(":", 1)
    return unquote(cid), unquote(secret)


def parse_form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
