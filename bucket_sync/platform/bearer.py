"""The bearer-token auth flow for httpx: apart from credentials.py, which must not import httpx (a run that
finds its SAS in the cache chooses credentials but never talks to the API)."""

from __future__ import annotations

import logging
from collections.abc import Generator

import httpx

from .credentials import TokenProvider

log = logging.getLogger("bucket_sync.platform.credentials")  # the name these lines always had


class BearerAuth(httpx.Auth):
    """Sets ``Authorization: Bearer``; after a 401, renews the token and resends the request once."""

    def __init__(self, provider: TokenProvider) -> None:
        self._provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._provider.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        self._provider.invalidate(token)
        renewed = self._provider.token()
        if renewed != token:  # a source that cannot renew gets the 401 as is
            log.debug("the API refused the access token (401); retrying once with a renewed one")
            request.headers["Authorization"] = f"Bearer {renewed}"
            yield request
