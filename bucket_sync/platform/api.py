"""The iTwin Platform API client: container URLs for buckets and reality data, move, and the one request
seam the reality data calls (reality_data.py) go through.

This module knows nothing of blobs: it hands back the SAS container URL as a string and lets the resolver
parse it. The bucket API is a technology preview whose answer changed shape once already, so the URL is
looked for in every place it has been seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from ..errors import ApiError, ExitCode
from ..redact import register_secret
from .api_errors import invite_note, snippet
from .bearer import BearerAuth
from .credentials import TokenProvider
from .http import DEFAULT_MAX_WAIT_S, ApiTransport
from .urls import require_secure_url

if TYPE_CHECKING:
    from .reality_data import RealityDataClient

ACCEPT_V1 = "application/vnd.bentley.itwin-platform.v1+json"
ACCEPT_V2 = "application/vnd.bentley.itwin-platform.v2+json"

_MOVE_HINTS = {
    403: "moving needs realitydata_manage on both iTwins (or Organization Administrator of the organization owning both)",
    404: "check the reality data id and the destination iTwin id, and that you have access to both",
    422: (
        "check the destination iTwin id; it must be in the same organization and data center as the reality data, "
        "which may be associated with at most one iTwin"
    ),
}

# Throttled or unavailable answers after which the service may still have done the work (a gateway that gave
# up while the move went through): a retried move that then finds the reality data in place has succeeded.
_RETRIED_AFTER = frozenset({429, 503})


class MoveOutcome(str, Enum):
    MOVED = "moved"
    # A retried request found it already in the destination: the first attempt (most likely) moved it.
    ALREADY_THERE_AFTER_RETRY = "already-there-after-retry"


@dataclass(frozen=True)
class MoveResult:
    outcome: MoveOutcome
    retried_after: tuple[int, ...] = ()  # the statuses that made the move be resent


def access_forbidden_hint(*, write: bool, itwin_id: str | None, app_email: str | None = None) -> str:
    """What to do about a 403 on a reality data's read or write access.

    Access is decided from the iTwin: without ``iTwinId`` the API grants it "only in some cases", so the
    first fix is to name the iTwin; with one, the permission it lacks.
    """
    permission = "realitydata_manage" if write else "realitydata_use"
    action = "writing to" if write else "reading"
    if not itwin_id:
        return (
            "access to a reality data is decided from its iTwin, and without one the API grants it only in some "
            f"cases: pass --itwin <iTwinId> (the iTwin the reality data belongs to or is shared with; {action} "
            f"it needs {permission} there)"
        )
    return (
        f"{action} a reality data needs the {permission} permission on iTwin {itwin_id}: ask an iTwin "
        f"administrator for a role that has it{invite_note(app_email)}"
    )


class PlatformApi:
    """A client of the iTwin Platform API at ``api_url`` (https, or http on loopback only)."""

    def __init__(
        self,
        api_url: str,
        tokens: TokenProvider,
        *,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        transport: ApiTransport | None = None,
    ) -> None:
        self.api_url = require_secure_url(api_url, option="--api-url")
        self.tokens = tokens
        self._transport = transport or ApiTransport(http, sleep=sleep, clock=clock, max_wait_s=max_wait_s)
        self._auth = BearerAuth(tokens)

    def bucket_container_url(self, itwin_id: str) -> str:
        """The SAS container URL of the iTwin's Reality Modeling bucket (read and write)."""
        what = f"get the Reality Modeling bucket of iTwin {itwin_id}"
        resp = self._send("GET", f"/reality-modeling/itwins/{quote(itwin_id, safe='')}/bucket", ACCEPT_V2, what)
        return _container_url(resp, what)

    def reality_data_container_url(self, reality_data_id: str, *, write: bool, itwin_id: str | None = None) -> str:
        """The SAS container URL for reading (``readaccess``) or writing (``writeaccess``) a reality data."""
        access = "writeaccess" if write else "readaccess"
        what = f"get {'write' if write else 'read'} access to reality data {reality_data_id}"
        params = {"iTwinId": itwin_id} if itwin_id else None
        path = f"/reality-management/reality-data/{quote(reality_data_id, safe='')}/{access}"
        hints = {403: access_forbidden_hint(write=write, itwin_id=itwin_id, app_email=self.tokens.app_email)}
        resp = self._send("GET", path, ACCEPT_V1, what, params=params, hints=hints)
        return _container_url(resp, what)

    def move_reality_data(self, reality_data_id: str, to_itwin_id: str) -> MoveResult:
        """Move a reality data to another iTwin (204 is success).

        A move resent after a 429/503 that then hears 409 ``AlreadyExists`` has succeeded: the reality data
        is where it was asked to be, most likely moved by the first attempt. A 409 on the first attempt is
        an error (it was there already: nothing was moved).
        """
        what = f"move reality data {reality_data_id} to iTwin {to_itwin_id}"
        path = f"/reality-management/reality-data/{quote(reality_data_id, safe='')}/move"
        try:
            self._send("PATCH", path, ACCEPT_V1, what, json={"iTwinId": to_itwin_id}, hints=_MOVE_HINTS)
        except ApiError as err:
            if err.status != 409:
                raise
            if (err.code or "").lower() == "alreadyexists" and _RETRIED_AFTER.intersection(err.retried_after):
                return MoveResult(MoveOutcome.ALREADY_THERE_AFTER_RETRY, err.retried_after)
            raise ApiError(
                f"could not {what}: reality data is already within that iTwin",
                status=409,
                code=err.code,
                target=err.target,
                details=err.details,
                exit_code=ExitCode.FAILED,
                hint="nothing was moved; check the destination iTwin id",
            ) from err
        return MoveResult(MoveOutcome.MOVED)

    @property
    def reality_data(self) -> "RealityDataClient":
        """Create, list, show, update and delete reality data (platform/reality_data.py)."""
        from .reality_data import RealityDataClient

        return RealityDataClient(self)

    def request(
        self, method: str, target: str, what: str, *, accept: str = ACCEPT_V1, headers: Mapping[str, str] | None = None,
        hints: Mapping[int, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send ``method`` to ``target`` (a path under the API URL, or an absolute URL the API gave, such as a
        next page) with this client's auth and retries; the 2xx answer, else a bucket_sync error."""
        url = target if "://" in target else self.api_url + target
        return self._transport.request(
            method,
            url,
            what=what,
            headers={**dict(headers or {}), "Accept": accept},
            auth=self._auth,
            app_email=self.tokens.app_email,
            hints=hints,
            **kwargs,
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "PlatformApi":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(
        self, method: str, path: str, accept: str, what: str, *, hints: Mapping[int, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return self.request(method, path, what, accept=accept, hints=hints, **kwargs)


def _container_url(resp: httpx.Response, what: str) -> str:
    """Find the SAS container URL in a 2xx answer: ``_links.containerUrl.href`` or where it used to be."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    url = _find_container_url(data) if isinstance(data, dict) else None
    if url is None:
        seen = f"fields: {', '.join(sorted(map(str, data)))}" if isinstance(data, dict) else (
            f"the server said {snippet(resp.text, resp.headers.get('content-type', ''))!r}"
        )
        raise ApiError(
            f"could not {what}: the API answered HTTP {resp.status_code} without a container URL ({seen})",
            status=resp.status_code,
            exit_code=ExitCode.FAILED,
            hint="the API is a preview and its answer may have changed: check --api-url, or report this",
        )
    # Registered before anyone can log it: the caller parses it, but a log line might come first.
    for sig in parse_qs(urlsplit(url).query).get("sig", ()):
        register_secret(sig)
    return url


def _find_container_url(data: dict[str, Any]) -> str | None:
    found = data.get("bucket")
    bucket = found if isinstance(found, dict) else {}
    for holder in (data.get("_links"), data, bucket, bucket.get("_links")):
        if not isinstance(holder, dict):
            continue
        value = holder.get("containerUrl")
        if isinstance(value, dict):
            value = value.get("href")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
