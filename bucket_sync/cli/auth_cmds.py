"""auth login / status / logout: the interactive sign-in, and which credential is in use."""

from __future__ import annotations

import json as jsonlib
from datetime import datetime
from enum import Enum
from typing import Any

import click

from ..app.context import Globals
from ..errors import BucketSyncError, LocalFileError, NoCredentialsError
from ..platform.credentials import ClientCredentials, StaticToken, TokenProvider
from ..platform.login import (
    DEFAULT_REDIRECT_PORT,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TIMEOUT_S,
    LoginRequest,
    check_redirect_port,
    interactive_login,
    login_scope,
    redirect_uri,
)
from ..app.render import with_time
from ..platform.jwt_claims import token_claims
from ..platform.login_store import (CachedLogin, delete_login, describe_store, login_path, read_login,
                                    save_login)
from ..platform.sas_cache import clear_cache
from ..redact import redact
from ..timefmt import rfc3339
from .error_output import echo_error
from .options import common_options, make_globals

LOGIN_CLIENT_ID_ENV = "ITWIN_LOGIN_CLIENT_ID"


class CredentialSource(str, Enum):
    ENV_TOKEN = "env-token"
    CLIENT_CREDENTIALS = "client-credentials"
    CACHED_LOGIN = "cached-login"
    NONE = "none"


def source_of(provider: TokenProvider) -> CredentialSource:
    if isinstance(provider, StaticToken):
        return CredentialSource.ENV_TOKEN
    if isinstance(provider, ClientCredentials):
        return CredentialSource.CLIENT_CREDENTIALS
    if isinstance(provider, CachedLogin):
        return CredentialSource.CACHED_LOGIN
    raise TypeError(f"unknown credential source {type(provider).__name__}")


def _emit(g: Globals, obj: dict[str, Any], human: str | None, *, err: bool = False) -> None:
    if g.json:
        click.echo(jsonlib.dumps(with_time(obj)))
    elif human and not g.quiet:
        click.echo(human, err=err)


def _fail(g: Globals, obj: dict[str, Any], exc: BucketSyncError) -> int:
    """Report ``exc`` on stderr and, with --json, as the outcome object; return its exit code."""
    echo_error(exc.message, exc.hint)
    if g.json:
        click.echo(jsonlib.dumps(with_time({**obj, "error": redact(exc.message), "exit_code": int(exc.exit_code)})))
    return int(exc.exit_code)


@click.group(name="auth")
def auth() -> None:
    """Sign in interactively, show the credential in use, or forget the sign-in."""


_LOGIN_HELP = f"""Sign in with your Bentley account (authorization code + PKCE) and keep the sign-in.

Register a Native app in the iTwin Platform developer portal with the scopes itwin-platform and
offline_access and the redirect URI {DEFAULT_REDIRECT_URI}: IMS compares it exactly, port included,
so if your app has another port registered, pass that port with --redirect-port.
"""


@auth.command(name="login", help=_LOGIN_HELP)
@click.option("--client-id", envvar=LOGIN_CLIENT_ID_ENV, metavar="ID",
              help=f"Client id of your Native app registered with Bentley IMS [env {LOGIN_CLIENT_ID_ENV}; config [auth] login-client-id].")
@click.option("--redirect-port", type=int, metavar="PORT",
              help="Port of the redirect URI http://localhost:PORT/signin-callback registered for the app; it must "
                   f"match exactly, so never 0 [config [auth] redirect-port; default {DEFAULT_REDIRECT_PORT}].")
@click.option("--no-browser", is_flag=True, help="Only print the sign-in URL; do not try to open a browser.")
@click.option("--timeout", type=click.FloatRange(1, None), default=DEFAULT_TIMEOUT_S, show_default=True, metavar="SECONDS",
              help="How long to wait for the browser to come back.")
@common_options
@click.pass_context
def login(ctx: click.Context, /, client_id: str | None, redirect_port: int | None, no_browser: bool, timeout: float, **kw: Any) -> int:
    """Sign in with your Bentley account (see _LOGIN_HELP) and save the sign-in."""
    g = make_globals(ctx, kw)
    auth_cfg = g.config.auth
    client_id = client_id or _config_str(auth_cfg.get("login-client-id"))
    if redirect_port is None:
        redirect_port = check_redirect_port(auth_cfg.get("redirect-port", DEFAULT_REDIRECT_PORT),
                                            source="[auth] redirect-port")
    else:
        redirect_port = check_redirect_port(redirect_port)
    request = LoginRequest(
        ims_url=g.ims_url,
        client_id=client_id or "",
        redirect_port=redirect_port,
        scope=login_scope(_config_str(auth_cfg.get("scope"))),
        timeout_s=timeout,
    )

    def show_url(url: str) -> None:
        # Always on stderr, even with a browser: it may open on another display, or not at all.
        uri = redirect_uri(request.redirect_port)
        click.echo("Sign in with your Bentley account in a browser; if none opened, open this URL:", err=True)
        click.echo(f"  {url}", err=True)
        click.echo(f"Waiting up to {request.timeout_s:.0f} s for the browser to come back to {uri} ...", err=True)
        click.echo(f"If IMS shows an error about redirect_uri instead of its sign-in page: register exactly this "
                   f"redirect URI for your Native app, {uri}, or pass --redirect-port to match yours.", err=True)

    path = login_path()
    store = describe_store(path)  # a keychain that cannot be used is said before the browser opens
    saved, _ = interactive_login(request, show_url=show_url, open_browser=not no_browser)
    try:
        save_login(saved, path)
    except OSError as exc:
        raise LocalFileError(f"signed in, but could not save the sign-in to {path}: {exc.strerror}",
                             hint="check that the folder is writable (BUCKET_SYNC_STATE_DIR), then sign in again") from None
    expires = rfc3339(saved.access_expires)
    obj = {"event": "login", "account": saved.account, "expires": expires, "path": str(path), "store": store,
           "exit_code": 0}
    _emit(g, obj, f"signed in as {saved.account or 'an unnamed account'}; the sign-in is saved in the {store}")
    shadow = _shadowing_source(g)
    if shadow:
        click.echo(f"note: {shadow} is set and takes precedence over this sign-in", err=True)
    return 0


@auth.command(name="status")
@common_options
@click.pass_context
def status(ctx: click.Context, /, **kw: Any) -> int:
    """Show which credential is in use, for whom, and until when (gets a token to check it)."""
    g = make_globals(ctx, kw)
    obj: dict[str, Any] = {"event": "auth", "source": CredentialSource.NONE.value, "description": None, "account": None,
                 "expires": None, "saved_login": None, "store": None}
    try:
        obj["store"] = describe_store()
        saved = read_login()
        if saved is not None:
            obj["saved_login"] = {"account": saved.account, "path": str(login_path()), "store": obj["store"]}
        try:
            provider = g.credentials()
        except NoCredentialsError as exc:
            _emit(g, {**obj, "exit_code": int(exc.exit_code)}, "credentials: none")
            echo_error(exc.message)  # the status line above says the rest
            return int(exc.exit_code)
        obj["source"] = source_of(provider).value
        obj["description"] = provider.describe()
        token = provider.token()  # proves the credential works, and tells who and until when
        claims = token_claims(token)
        obj["account"] = next((claims[k] for k in ("email", "sub") if isinstance(claims.get(k), str)), None)
        expiry = _expiry(claims, provider)
        obj["expires"] = expiry
    except BucketSyncError as exc:
        return _fail(g, obj, exc)
    lines = [f"credentials: {obj['description']}", f"account: {obj['account'] or 'unknown (the token does not say)'}",
             f"access token valid until: {expiry or 'unknown'}", f"sign-in store: {obj['store']}"]
    if saved is not None and obj["source"] != CredentialSource.CACHED_LOGIN.value:
        lines.append(f"saved sign-in: {saved.account or 'present'} (not in use: the source above takes precedence)")
    _emit(g, {**obj, "exit_code": 0}, "\n".join(lines))
    return 0


@auth.command(name="logout")
@common_options
@click.pass_context
def logout(ctx: click.Context, /, **kw: Any) -> int:
    """Forget the saved sign-in (in the OS keychain and in the file) and every cached SAS."""
    g = make_globals(ctx, kw)
    path = login_path()
    removed = delete_login(path)
    # Every principal's SAS go, not only this sign-in's: logout means "nothing of mine stays usable here".
    cleared = clear_cache()
    human = ("signed out: removed the saved sign-in (keychain and file)" if removed
             else f"not signed in (no saved sign-in in the keychain or at {path})")
    if cleared:
        human += f"; cleared {cleared} cached SAS"
    _emit(g, {"event": "logout", "removed": removed, "path": str(path), "sas_cache_cleared": cleared,
              "exit_code": 0}, human)
    return 0


def _expiry(claims: dict[str, Any], provider: TokenProvider) -> str | None:
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return rfc3339(float(exp))
    known = provider.expires_at
    return rfc3339(known) if isinstance(known, datetime) else None


def _shadowing_source(g: Globals) -> str | None:
    if (g.env.get("ITWIN_ACCESS_TOKEN") or "").strip():
        return "ITWIN_ACCESS_TOKEN"
    if (g.env.get("ITWIN_CLIENT_ID") or "").strip() or _config_str(g.config.auth.get("client-id")):
        return "a client id for client credentials (ITWIN_CLIENT_ID or [auth] client-id)"
    return None


def _config_str(value: object) -> str | None:
    return str(value).strip() or None if value is not None else None


__all__ = ["auth", "CredentialSource", "source_of"]
