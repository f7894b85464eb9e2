"""Where access tokens for the iTwin Platform API come from, and how they are renewed.

Three sources, first found wins (README.md, "Credentials and sign-in"): a static ``ITWIN_ACCESS_TOKEN``; client
credentials (a service app) renewed before ``expires_in`` runs out; a cached interactive sign-in (plugged in
through ``cached_login_loader``, implemented with ``auth login``). :class:`BearerAuth` (bearer.py) puts the
token on requests and, after a 401, renews it and resends once: httpx's auth flow is built for exactly that.

Nothing here imports httpx until a token is actually requested: a run whose SAS comes from the cache
chooses its credentials (the cache key names them) but never uses them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..errors import NoCredentialsError
from ..redact import register_secret
from ..retry import renewal_retry_in
from .ims import SCOPE, TokenGrant, request_token
from .jwt_claims import token_expiry
from .urls import require_secure_url

if TYPE_CHECKING:
    from .http import ApiTransport

log = logging.getLogger(__name__)

APP_EMAIL_DOMAIN = "apps.imsoidc.bentley.com"
# IMS always sends expires_in; should it not, assume the usual one-hour lifetime rather than forever.
_ASSUMED_LIFETIME_S = 3600.0
# Bentley's clients renew 1 to 5 minutes early; a tenth of the lifetime keeps short test tokens usable.
_MAX_RENEW_MARGIN_S = 300.0

NO_CREDENTIALS_MESSAGE = (
    "no credentials for the iTwin Platform API: set ITWIN_ACCESS_TOKEN; or set ITWIN_CLIENT_ID and "
    "ITWIN_CLIENT_SECRET (or client_id/client_secret under [auth] in the config file) for a service app; "
    "or run `bucket-sync auth login`"
)


class TokenProvider(ABC):
    """A source of bearer tokens. Thread-safe.

    ``token()`` returns a token valid now (renewing first when it can and must); ``invalidate(token)`` is
    called after a 401 so that the next ``token()`` renews if it can; ``describe()`` says what this is for
    ``auth status``; ``expires_at`` is when the current token expires, when known; ``app_email`` is the
    service app's address (which must be invited to the iTwin), else None; ``cache_identity()`` names the
    principal without revealing a secret, so that what the API handed one principal is never reused by
    another (the SAS cache).
    """

    app_email: str | None = None

    @abstractmethod
    def token(self) -> str: ...

    def invalidate(self, token: str) -> None:  # noqa: B027 - optional: a no-op unless the source can renew
        """Forget ``token`` if it is the current one. Sources that cannot renew ignore this."""

    @abstractmethod
    def describe(self) -> str: ...

    @property
    def expires_at(self) -> datetime | None:
        return None

    def cache_identity(self) -> str | None:
        """A SHA-256 hex digest standing for the principal; None when unknown (then nothing is cached)."""
        return None


def identity_digest(kind: str, *parts: str) -> str:
    """SHA-256 over the parts, NUL-separated (no part can run into the next): one-way, so a digest of a
    token is safe to write into a cache file name or key."""
    return hashlib.sha256("\0".join((kind, *parts)).encode()).hexdigest()


class StaticToken(TokenProvider):
    """A token given as is (``ITWIN_ACCESS_TOKEN``): never renewed, so a 401 is final."""

    def __init__(self, token: str, *, source: str = "ITWIN_ACCESS_TOKEN") -> None:
        self._token = token.strip()
        self._source = source
        register_secret(self._token)
        self._expires_at = token_expiry(self._token)

    def token(self) -> str:
        return self._token

    def describe(self) -> str:
        return f"access token from {self._source} (used as is, cannot be renewed)"

    def cache_identity(self) -> str | None:
        # The token is all we know of its principal; a new token (even the same user's) starts afresh.
        return identity_digest("access-token", self._token)

    @property
    def expires_at(self) -> datetime | None:
        return self._expires_at


# Issuers write `exp` in whole seconds and clocks drift: a token can die up to a second or two before
# `now + expires_in` says. Short-lived tokens need that much slack on top of the 10% margin.
_CLOCK_SLACK_S = 2.0


def renew_margin(lifetime: float) -> float:
    """How long before the computed expiry a token is renewed: 10% of its life, at least the clock slack
    (but never more than half the life), at most five minutes."""
    return min(_MAX_RENEW_MARGIN_S, max(lifetime / 10, min(_CLOCK_SLACK_S, lifetime / 2)))


class RenewingTokenProvider(TokenProvider):
    """Caches a token from ``_grant()`` and renews it before it expires; the base of renewable sources.

    Renewal happens under a lock, so concurrent callers wait for one request to IMS instead of each
    sending their own.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self._renew_at = 0.0

    @abstractmethod
    def _grant(self) -> TokenGrant:
        """Ask IMS for a new token (raising AuthError when refused)."""

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._renew_at:
                return self._token
            try:
                grant = self._grant()
            except Exception as exc:
                if self._token is None or now >= self._expires:
                    raise
                # Early renewal failed but the token still works: keep going, try again soon.
                self._renew_at = now + renewal_retry_in(self._expires - now)
                log.warning("could not renew the access token yet, still valid for %.0f s: %s", self._expires - now, exc)
                return self._token
            register_secret(grant.access_token)
            lifetime = grant.expires_in if grant.expires_in and grant.expires_in > 0 else _ASSUMED_LIFETIME_S
            self._token = grant.access_token
            self._expires = now + lifetime
            self._renew_at = self._expires - renew_margin(lifetime)
            log.debug("got an access token from %s, valid for %.0f s", self.describe(), lifetime)
            return self._token

    def invalidate(self, token: str) -> None:
        with self._lock:
            if token == self._token:
                self._token = None

    @property
    def expires_at(self) -> datetime | None:
        with self._lock:
            if self._token is None:
                return None
            return datetime.fromtimestamp(self._expires, timezone.utc)


class ClientCredentials(RenewingTokenProvider):
    """A service app's token: ``grant_type=client_credentials`` at ``{ims}/connect/token``."""

    def __init__(
        self,
        ims_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str = SCOPE,
        transport: ApiTransport | None = None,
        clock: Callable[[], float] = time.time,
        source: str = "ITWIN_CLIENT_ID/ITWIN_CLIENT_SECRET",
    ) -> None:
        super().__init__(clock=clock)
        register_secret(client_secret)
        self._ims_url = require_secure_url(ims_url, option="--ims-url")
        self.client_id = client_id.strip()
        self._client_secret = client_secret.strip()
        self._scope = scope
        self._transport = transport  # made on first use: httpx is imported only when a token is needed
        self._source = source
        self.app_email = f"{self.client_id}@{APP_EMAIL_DOMAIN}"

    def describe(self) -> str:
        return f"client credentials (client id {_short(self.client_id)}, from {self._source})"

    def cache_identity(self) -> str | None:
        # The app is the principal; the same client id at another IMS is another principal.
        return identity_digest("client-credentials", self._ims_url, self.client_id)

    def _grant(self) -> TokenGrant:
        if self._transport is None:
            from .http import ApiTransport

            self._transport = ApiTransport()
        return request_token(
            self._transport,
            self._ims_url,
            {"grant_type": "client_credentials", "scope": self._scope},
            client_auth=(self.client_id, self._client_secret),
            what=f"get an access token for client {_short(self.client_id)} from IMS",
        )


CachedLoginLoader = Callable[[], "TokenProvider | None"]


def choose_credentials(
    env: Mapping[str, str],
    config_auth: Mapping[str, object] | None,
    ims_url: str,
    *,
    cached_login_loader: CachedLoginLoader | None = None,
    transport: ApiTransport | None = None,
) -> TokenProvider:
    """The first credential source found, in the order of README.md, "Credentials and sign-in";
    NoCredentialsError when none is.

    ``config_auth`` is the config file's ``[auth]`` table (``client_id``, ``client_secret``); a key given
    in the environment wins over the file. ``cached_login_loader`` returns the ``auth login`` session, or
    None when there is none. Nothing is sent over the network here.
    """
    token = (env.get("ITWIN_ACCESS_TOKEN") or "").strip()
    if token:
        return StaticToken(token)
    auth = config_auth or {}
    env_id, env_secret = (env.get("ITWIN_CLIENT_ID") or "").strip(), (env.get("ITWIN_CLIENT_SECRET") or "").strip()
    cfg_id, cfg_secret = _config_value(auth, "client_id"), _config_value(auth, "client_secret")
    register_secret(env_secret or None)
    register_secret(cfg_secret or None)
    client_id, client_secret = env_id or cfg_id, env_secret or cfg_secret
    if client_id and client_secret:
        env_name, cfg_name = "ITWIN_CLIENT_ID/ITWIN_CLIENT_SECRET", "[auth] in the config file"
        if env_id and env_secret:
            source = env_name
        elif not env_id and not env_secret:
            source = cfg_name
        else:
            source = f"{env_name} and {cfg_name}"
        return ClientCredentials(ims_url, client_id, client_secret, transport=transport, source=source)
    if client_id or client_secret:
        # Half a pair is a mistake worth naming, not a reason to fall through to another identity.
        have, lack = ("client id", "client secret") if client_id else ("client secret", "client id")
        raise NoCredentialsError(
            f"a {have} is configured but no {lack}",
            hint="set both ITWIN_CLIENT_ID and ITWIN_CLIENT_SECRET (or client_id and client_secret under [auth] in the config file)",
        )
    if cached_login_loader is not None:
        provider = cached_login_loader()
        if provider is not None:
            return provider
    raise NoCredentialsError(NO_CREDENTIALS_MESSAGE, hint="a SAS container URL given directly needs no credentials")


def _config_value(auth: Mapping[str, object], key: str) -> str:
    value = auth.get(key, auth.get(key.replace("_", "-")))
    return str(value).strip() if value is not None else ""


def _short(client_id: str) -> str:
    return client_id if len(client_id) <= 12 else client_id[:8] + "…"
