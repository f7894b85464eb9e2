"""IMS's token endpoint (``{ims}/connect/token``), shared by every grant bucket-sync uses.

Client credentials now; the authorization code and refresh token grants of ``auth login`` later. Refusals
(the OAuth ``{"error":"invalid_client",...}`` shape) become AuthError (exit 3) with a hint per error code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from ..errors import ApiError, AuthError
from ..redact import register_secret

if TYPE_CHECKING:  # importing http (and httpx) waits for a token request: see credentials.py
    from .http import ApiTransport

SCOPE = "itwin-platform"

_OAUTH_HINTS = {
    "invalid_client": "check the client id and secret (ITWIN_CLIENT_ID/ITWIN_CLIENT_SECRET or [auth] in the config file)",
    "unauthorized_client": "this app may not use this sign-in: client credentials need a Service app registration",
    "invalid_scope": f"the app registration must allow the scope {SCOPE}",
    "invalid_grant": "the sign-in has expired or was revoked: run `bucket-sync auth login` again",
}


@dataclass(frozen=True)
class TokenGrant:
    """A successful answer of IMS's token endpoint."""

    access_token: str
    expires_in: float | None
    refresh_token: str | None = None
    scope: str | None = None


def request_token(
    transport: ApiTransport,
    ims_url: str,
    form: Mapping[str, str],
    *,
    what: str,
    client_auth: tuple[str, str] | None = None,
    idempotent: bool = True,
) -> TokenGrant:
    """POST ``form`` to ``{ims_url}/connect/token``; IMS refusals become AuthError (exit 3).

    Shared by every grant (client credentials now; authorization code and refresh token for ``auth
    login``). Pass ``idempotent=False`` for grants that must not be resent after the request went out.
    """
    import httpx

    auth = None
    if client_auth:
        # RFC 6749 2.3.1: id and secret are form-encoded before Basic encoding, and IMS decodes them:
        # a secret containing '+' or '%' would otherwise be refused.
        auth = httpx.BasicAuth(quote_plus(client_auth[0]), quote_plus(client_auth[1]))
    try:
        resp = transport.request(
            "POST",
            f"{ims_url.rstrip('/')}/connect/token",
            what=what,
            data=dict(form),
            auth=auth,
            headers={"Accept": "application/json"},
            idempotent=idempotent,
        )
    except ApiError as err:
        if err.status in (400, 401, 403):
            from .api_errors import UNKNOWN_CLIENT_HINT, is_unknown_client  # httpx is loaded by now

            if is_unknown_client(err.code, err.details):
                hint = UNKNOWN_CLIENT_HINT
            else:
                hint = _OAUTH_HINTS.get(err.code or "", _OAUTH_HINTS["invalid_client"])
            raise AuthError(err.message, hint=hint) from err
        raise
    try:
        data = resp.json()
    except ValueError:
        data = None
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise ApiError(f"could not {what}: IMS answered HTTP {resp.status_code} without an access token", status=resp.status_code)
    refresh = data.get("refresh_token") if isinstance(data.get("refresh_token"), str) else None
    register_secret(token)
    register_secret(refresh)
    try:
        expires_in = float(data["expires_in"])
    except (KeyError, TypeError, ValueError):
        expires_in = None
    scope = data.get("scope") if isinstance(data.get("scope"), str) else None
    return TokenGrant(token, expires_in, refresh or None, scope)
