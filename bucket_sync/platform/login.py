"""Interactive sign-in: OAuth 2.0 authorization code with PKCE (S256) and a loopback redirect (RFC 8252).

The user's browser goes to ``{ims}/connect/authorize``; IMS sends it back to
``http://localhost:<port>/signin-callback`` where a one-shot HTTP server here receives the code; the code
and the PKCE verifier are exchanged for tokens at ``{ims}/connect/token``. Nothing in the browser's URL
is a secret without the verifier, which never leaves this process.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import os
import secrets
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

from ..errors import AuthError, UsageError
from ..redact import register_secret
from .ims import SCOPE, TokenGrant, request_token
from .login_store import SavedLogin
from .urls import require_secure_url

if TYPE_CHECKING:
    from .http import ApiTransport

log = logging.getLogger(__name__)

CALLBACK_PATH = "/signin-callback"
# The redirect URI must be registered with the app exactly, port included: a fixed default makes that
# possible (3000 is what Bentley's desktop samples register).
DEFAULT_REDIRECT_PORT = 3000
DEFAULT_TIMEOUT_S = 300.0
LOGIN_SCOPE = f"{SCOPE} offline_access"

_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>bucket-sync</title></head>"
    "<body style='font-family:sans-serif'><h2>{title}</h2><p>{text}</p></body></html>"
)


@dataclass(frozen=True)
class LoginRequest:
    ims_url: str
    client_id: str
    redirect_port: int = DEFAULT_REDIRECT_PORT
    scope: str = LOGIN_SCOPE
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> "Pkce":
        verifier = _b64url(secrets.token_bytes(32))  # 43 characters, the RFC 7636 minimum length
        return cls(verifier, _b64url(hashlib.sha256(verifier.encode("ascii")).digest()))


def login_scope(configured: str | None) -> str:
    """The scope to ask for: the configured one (default itwin-platform), always with offline_access."""
    scopes = (configured or SCOPE).split()
    if SCOPE not in scopes:
        scopes.insert(0, SCOPE)
    if "offline_access" not in scopes:
        scopes.append("offline_access")
    return " ".join(scopes)


def authorize_url(ims_url: str, client_id: str, redirect_uri: str, scope: str, pkce: Pkce, state: str) -> str:
    query = urlencode({
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": state,
    })
    return f"{ims_url.rstrip('/')}/connect/authorize?{query}"


@dataclass
class _Callback:
    """What the browser brought back to the loopback server."""

    code: str | None = None
    error: str | None = None


class _LoopbackServer(HTTPServer):
    allow_reuse_address = True

    def __init__(self, port: int, state: str) -> None:
        super().__init__(("127.0.0.1", port), _CallbackHandler)
        self.expected_state = state
        self.result: _Callback | None = None


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _LoopbackServer

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self._reply(404, "Not found", "This is bucket-sync's sign-in listener.")
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if query.get("state") != self.server.expected_state:
            # Not the answer to our request (a stale tab, or another page posing as IMS): refuse it.
            self.server.result = _Callback(error="the sign-in answer did not match the request (state mismatch)")
            self._reply(400, "Sign-in failed", "The answer did not match the sign-in request. Run bucket-sync auth login again.")
            return
        if "error" in query:
            text = query["error"] + (f": {query['error_description']}" if query.get("error_description") else "")
            self.server.result = _Callback(error=f"IMS refused the sign-in ({text})")
            self._reply(400, "Sign-in failed", text)
            return
        if not query.get("code"):
            self.server.result = _Callback(error="IMS sent no authorization code")
            self._reply(400, "Sign-in failed", "No authorization code was received.")
            return
        register_secret(query["code"])
        self.server.result = _Callback(code=query["code"])
        self._reply(200, "Signed in", "bucket-sync is signed in. You can close this window.")

    def _reply(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the request line carries the authorization code


def interactive_login(
    request: LoginRequest,
    *,
    show_url: Callable[[str], None],
    open_browser: bool = True,
    transport: ApiTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[SavedLogin, TokenGrant]:
    """Run the whole sign-in; return what to save and the first token grant. AuthError when refused.

    ``show_url`` is always given the authorize URL (the browser may not open, or open elsewhere).
    """
    ims_url = require_secure_url(request.ims_url, option="--ims-url")
    if not request.client_id.strip():
        raise UsageError(
            "auth login needs the client id of a Native app registered with Bentley IMS",
            hint="pass --client-id, set ITWIN_LOGIN_CLIENT_ID, or set login-client-id under [auth] in the config file",
        )
    pkce, state = Pkce.new(), secrets.token_urlsafe(16)
    try:
        server = _LoopbackServer(request.redirect_port, state)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on localhost port {request.redirect_port} for the sign-in redirect: {exc.strerror}",
            hint="free that port, or pick the port registered for the app with --redirect-port",
        ) from None
    with server:
        redirect_uri = f"http://localhost:{server.server_address[1]}{CALLBACK_PATH}"
        url = authorize_url(ims_url, request.client_id.strip(), redirect_uri, request.scope, pkce, state)
        show_url(url)
        if open_browser:
            _open_browser(url)
        callback = _wait_for_callback(server, request.timeout_s, clock)
    if callback.error:
        raise AuthError(f"sign-in failed: {callback.error}", hint="run `bucket-sync auth login` again")
    if transport is None:
        from .http import ApiTransport

        transport = ApiTransport()
    grant = request_token(
        transport,
        ims_url,
        {
            "grant_type": "authorization_code",
            "code": callback.code or "",
            "redirect_uri": redirect_uri,
            "code_verifier": pkce.verifier,
            "client_id": request.client_id.strip(),
        },
        what="exchange the sign-in code for tokens at IMS",
        idempotent=False,  # a code is single use
    )
    if not grant.refresh_token:
        raise AuthError(
            "IMS signed you in but gave no refresh token, so the sign-in could not be kept",
            hint="the app registration must allow the offline_access scope",
        )
    claims = token_claims(grant.access_token)
    account = _account(claims)
    now = clock()
    login = SavedLogin(request.client_id.strip(), ims_url, grant.refresh_token, grant.scope or request.scope,
                       account=account).with_grant(grant, now=now)
    return login, grant


def _wait_for_callback(server: _LoopbackServer, timeout_s: float, clock: Callable[[], float]) -> _Callback:
    deadline = clock() + timeout_s
    server.timeout = 0.5  # handle_request returns this often, so the deadline (and Ctrl-C) are honoured
    while server.result is None:
        if clock() >= deadline:
            raise AuthError(
                f"no sign-in within {timeout_s:.0f} s",
                hint="open the printed URL in a browser on this machine and sign in; or raise --timeout",
            )
        server.handle_request()
    return server.result


def _open_browser(url: str) -> None:
    if not _has_display():
        # Without a display, webbrowser would start a console browser (lynx, w3m) inside this terminal,
        # where the sign-in page cannot work: the printed URL is the way.
        log.info("no graphical display: open the URL above in a browser on this machine")
        return
    try:
        opened = webbrowser.open(url, new=1, autoraise=True)
    except Exception:  # no browser installed, or it failed to start: the printed URL is the fallback
        opened = False
    if not opened:
        log.info("could not open a browser; open the URL above yourself")


def _has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def token_claims(token: str) -> dict:
    """The claims of a JWT, read without verification: for display only (who, until when)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _account(claims: dict) -> str | None:
    for key in ("email", "preferred_username", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
