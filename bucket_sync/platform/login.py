"""Interactive sign-in: OAuth 2.0 authorization code with PKCE (S256) and a loopback redirect (RFC 8252).

The user's browser goes to ``{ims}/connect/authorize``; IMS sends it back to
``http://localhost:<port>/signin-callback`` where a one-shot HTTP server here receives the code; the code
and the PKCE verifier are exchanged for tokens at ``{ims}/connect/token``. Nothing in the browser's URL
is a secret without the verifier, which never leaves this process.

IMS compares the redirect URI with the app's registration exactly, port included, and on a mismatch shows
its own error page and never calls back: so the port is fixed (default 3000, the URI most Native apps
register), never a random one. ``localhost`` is served on 127.0.0.1 and on ::1 (browsers resolve it to
either), or on 127.0.0.1 alone where the machine has no IPv6 loopback.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import html
import logging
import os
import secrets
import selectors
import socket
import socketserver
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from ..errors import AuthError, UsageError
from ..redact import register_secret
from .ims import SCOPE, TokenGrant, request_token
from .jwt_claims import token_claims
from .login_store import SavedLogin
from .urls import require_secure_url

if TYPE_CHECKING:
    from .http import ApiTransport

log = logging.getLogger(__name__)

CALLBACK_PATH = "/signin-callback"
# The redirect URI must be registered with the app exactly, port included: a fixed default makes that
# possible (3000 is what Bentley's desktop samples register).
DEFAULT_REDIRECT_PORT = 3000
# Long enough to sign in (with MFA); short enough that a redirect IMS refused, which never comes back, is
# reported while the user is still looking.
DEFAULT_TIMEOUT_S = 120.0
LOGIN_SCOPE = f"{SCOPE} offline_access"

_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>bucket-sync</title></head>"
    "<body style='font-family:sans-serif'><h2>{title}</h2><p>{text}</p></body></html>"
)


def redirect_uri(port: int) -> str:
    """The redirect URI sent to IMS for ``port``: the app must have exactly this one registered."""
    return f"http://localhost:{port}{CALLBACK_PATH}"


DEFAULT_REDIRECT_URI = redirect_uri(DEFAULT_REDIRECT_PORT)


def check_redirect_port(port: object, *, source: str = "--redirect-port") -> int:
    """``port`` if it can be a registered redirect URI's port; UsageError (exit 2) otherwise.

    Port 0 (any free port) is refused: IMS would see a redirect URI no registration can match.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"{source} {port!r} is not a port number",
                         hint=f"use the port of the redirect URI registered for your Native app (default {DEFAULT_REDIRECT_PORT})")
    if port == 0:
        raise UsageError(
            f"{source} 0 (any free port) cannot be used: IMS accepts only a redirect URI registered for the app, "
            "port included, and a random port matches none",
            hint=f"pass the port of the redirect URI registered for your Native app; the default {DEFAULT_REDIRECT_PORT} "
                 f"means {DEFAULT_REDIRECT_URI}",
        )
    return port


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


@dataclass
class _Session:
    """What the listening sockets share: the state to expect, and the first answer that came back."""

    expected_state: str
    result: _Callback | None = None


# A port someone else holds; anything else failing on ::1 means the machine has no usable IPv6 loopback.
_IN_USE = {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}


class _CallbackServer(HTTPServer):
    # On Windows SO_REUSEADDR would let two listeners share a port (and either get the browser's answer):
    # there the port is taken exclusively instead.
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, host: str, port: int, family: socket.AddressFamily, session: _Session) -> None:
        self.address_family = family
        self.session = session
        super().__init__((host, port), _CallbackHandler)

    def server_bind(self) -> None:
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        # HTTPServer.server_bind would also resolve the host's FQDN: a DNS lookup, and not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


class _LoopbackListener:
    """``localhost:<port>`` for the browser's return: 127.0.0.1, and ::1 where the machine has it."""

    def __init__(self, port: int, state: str) -> None:
        self.session = _Session(state)
        self.servers = [self._bind("127.0.0.1", port, socket.AF_INET)]
        if socket.has_ipv6:
            try:
                self.servers.append(self._bind("::1", port, socket.AF_INET6))
            except OSError as exc:
                if exc.errno in _IN_USE:
                    self.close()
                    raise
                # No IPv6 loopback here: browsers then reach localhost on 127.0.0.1.
                log.debug("no IPv6 loopback for the sign-in listener (%s); using 127.0.0.1 only", exc.strerror)

    def _bind(self, host: str, port: int, family: socket.AddressFamily) -> _CallbackServer:
        return _CallbackServer(host, port, family, self.session)

    @property
    def port(self) -> int:
        return self.servers[0].server_address[1]

    @property
    def addresses(self) -> list[str]:
        return [f"[{s.server_address[0]!s}]" if s.address_family == socket.AF_INET6 else str(s.server_address[0])
                for s in self.servers]

    def wait(self, timeout_s: float, clock: Callable[[], float]) -> _Callback | None:
        """The browser's answer, or None when none came within ``timeout_s``."""
        deadline = clock() + timeout_s
        with selectors.DefaultSelector() as selector:
            for server in self.servers:
                server.timeout = 0  # handle_request serves a connection that is already waiting, then returns
                selector.register(server, selectors.EVENT_READ)
            while self.session.result is None:
                remaining = deadline - clock()
                if remaining <= 0:
                    return None
                # Wakes at least twice a second, so the deadline (and Ctrl-C) are honoured.
                for key, _ in selector.select(min(0.5, remaining)):
                    cast(_CallbackServer, key.fileobj).handle_request()  # what was registered above
        return self.session.result

    def close(self) -> None:
        for server in self.servers:
            server.server_close()

    def __enter__(self) -> "_LoopbackListener":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    timeout = 10  # a browser's idle pre-connection must not hold the one-at-a-time listener for long

    def do_GET(self) -> None:  # noqa: N802
        session = self.server.session
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self._reply(404, "Not found", "This is bucket-sync's sign-in listener.")
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if query.get("state") != session.expected_state:
            # Not the answer to our request (a stale tab, or another page posing as IMS): refuse it.
            session.result = _Callback(error="the sign-in answer did not match the request (state mismatch)")
            self._reply(400, "Sign-in failed", "The answer did not match the sign-in request. Run bucket-sync auth login again.")
            return
        if "error" in query:
            text = query["error"] + (f": {query['error_description']}" if query.get("error_description") else "")
            session.result = _Callback(error=f"IMS refused the sign-in ({text})")
            self._reply(400, "Sign-in failed", text)
            return
        if not query.get("code"):
            session.result = _Callback(error="IMS sent no authorization code")
            self._reply(400, "Sign-in failed", "No authorization code was received.")
            return
        register_secret(query["code"])
        session.result = _Callback(code=query["code"])
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
    port = check_redirect_port(request.redirect_port)
    pkce, state = Pkce.new(), secrets.token_urlsafe(16)
    try:
        listener = _LoopbackListener(port, state)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on localhost port {port} for the sign-in redirect: {exc.strerror or exc}",
            hint="free that port, or pick the port registered for the app with --redirect-port",
        ) from None
    uri = redirect_uri(port)
    with listener:
        log.debug("waiting for the sign-in redirect on %s port %d", " and ".join(listener.addresses), port)
        url = authorize_url(ims_url, request.client_id.strip(), uri, request.scope, pkce, state)
        show_url(url)
        if open_browser:
            _open_browser(url)
        callback = listener.wait(request.timeout_s, clock)
    if callback is None:
        raise AuthError(
            f"no sign-in within {request.timeout_s:.0f} s: the browser never came back to {uri}",
            hint=f"if IMS showed an error about the redirect URI instead of its sign-in page, register exactly {uri} "
                 "for your Native app (or pass the port of the one registered with --redirect-port); otherwise open "
                 "the printed URL in a browser on this machine and sign in, or allow more time with --timeout",
        )
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
            "redirect_uri": uri,
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


def _open_browser(url: str) -> None:
    if not _has_display():
        # Without a display, webbrowser would start a console browser (lynx, w3m) inside this terminal,
        # where the sign-in page cannot work: the printed URL is the way.
        log.info("no graphical display: open the URL above in a browser on this machine")
        return
    try:
        opened = webbrowser.open(url, new=1, autoraise=True)
    except Exception:  # noqa: BLE001 - no browser installed, or it failed to start: the printed URL is the fallback
        opened = False
    if not opened:
        log.info("could not open a browser; open the URL above yourself")


def _has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _account(claims: dict[str, Any]) -> str | None:
    for key in ("email", "preferred_username", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
