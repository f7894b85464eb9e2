"""The one place that talks HTTP to the iTwin Platform API and IMS.

Retries live here so every call gets the same rules (the schedules are retry.py's PLATFORM_API and
PLATFORM_THROTTLED): 429 and 503 wait for ``Retry-After`` within a bounded total wait; dropped connections
and 500/502/504 are retried a few times with exponential backoff and jitter. httpx exceptions are
translated here: nothing httpx-specific escapes this module (apart from the ``httpx.Client`` and
``httpx.Response`` objects themselves). ``sleep`` and the clocks are injected so tests
run instantly.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..errors import ApiError, TransientError, UsageError
from ..redact import redact
from ..retry import PLATFORM_API, PLATFORM_THROTTLED
from .api_errors import error_from_response

log = logging.getLogger(__name__)

USER_AGENT = f"bucket-sync/{__version__}"

DEFAULT_MAX_WAIT_S = 300.0
DEFAULT_MAX_RETRIES = (PLATFORM_API.attempts or 1) - 1

# The most any API or IMS answer may hold; more is refused without being read into memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures that happen before the request left: safe to retry even a PATCH or POST.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def make_client(*, timeout: float = 30.0) -> httpx.Client:
    """An httpx client with our User-Agent and timeouts (connect fast, allow a slow answer)."""
    return httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=httpx.Timeout(timeout, connect=10.0))


def request_with_retries(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
    rng: Callable[[], float] = random.random,
    idempotent: bool | None = None,
    app_email: str | None = None,
    hints: Mapping[int, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request; return the 2xx response, or raise a bucket_sync error.

    ``what`` completes "could not ..." in messages. ``kwargs`` go to ``client.request`` (headers, params,
    json, data, auth). Total time spent waiting between attempts never exceeds ``max_wait_s``.
    """
    method = method.upper()
    # Per request, so a client handed in by the caller (tests, a shared pool) still identifies us.
    kwargs["headers"] = {"User-Agent": USER_AGENT, **dict(kwargs.get("headers") or {})}
    if idempotent is None:
        idempotent = method in _IDEMPOTENT
    start = clock()
    failures = throttles = 0
    retried: list[int] = []  # statuses answered and retried: a later answer may be about an earlier attempt
    wait: float | None  # the pause before the next attempt; None when an answer is not retried

    def budget_allows(wait: float) -> bool:
        return clock() - start + wait <= max_wait_s

    while True:
        try:
            resp = _bounded(client, method, url, what, kwargs)
        except httpx.UnsupportedProtocol as exc:
            raise UsageError(f"could not {what}: unsupported URL scheme", hint="use https://") from exc
        except httpx.TransportError as exc:
            failures += 1
            wait = PLATFORM_API.backoff(failures, rng)
            retry = idempotent or isinstance(exc, _NOT_SENT)
            if retry and failures <= max_retries and budget_allows(wait):
                log.info("%s: %s, retrying in %.1f s", what, type(exc).__name__, wait)
                sleep(wait)
                continue
            raise TransientError(
                f"could not {what}: cannot reach {urlsplit(url).netloc} "
                f"({type(exc).__name__}: {redact(exc) or 'no details'}) after {failures} attempt(s)",
                hint="check the network connection, proxy settings and --api-url/--ims-url",
            ) from exc
        except httpx.HTTPError as exc:  # too many redirects, undecodable body, ...
            raise ApiError(f"could not {what}: {type(exc).__name__}: {redact(exc)}", status=0) from exc
        except httpx.InvalidURL as exc:
            raise UsageError(f"could not {what}: invalid URL ({redact(exc)})") from exc

        if resp.is_success:
            return resp
        status = resp.status_code
        wait = None
        if status in (429, 503):
            # The server refused before doing anything, so even PATCH/POST may be repeated.
            throttles += 1
            wait = PLATFORM_THROTTLED.wait(throttles, resp.headers.get("retry-after"),
                                           now=_server_now(resp, wall_clock), rng=rng)
        elif status in (500, 502, 504) and idempotent:
            failures += 1
            if failures <= max_retries:
                wait = PLATFORM_API.backoff(failures, rng)
        if wait is not None and budget_allows(wait):
            log.info("%s: HTTP %d, retrying in %.1f s", what, status, wait)
            retried.append(status)
            sleep(wait)
            continue
        gave_up = (throttles or failures) and status in (429, 500, 502, 503, 504)
        note = f"gave up after retrying for {clock() - start:.0f} s" if gave_up else None
        raise error_from_response(resp, what=what, app_email=app_email, hints=hints, note=note,
                                  retried_after=tuple(retried))


def _bounded(client: httpx.Client, method: str, url: str, what: str, kwargs: dict[str, Any]) -> httpx.Response:
    """The answer, read only while it stays within MAX_ANSWER_BYTES: a hostile or broken server cannot
    make the client buffer gigabytes (the largest documented answer, a page of 1,000 reality data, is a
    few MB)."""
    with client.stream(method, url, **kwargs) as streamed:
        declared = streamed.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            raise _too_large(what, url, f"{int(declared)} bytes announced")
        body = bytearray()
        for chunk in streamed.iter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise _too_large(what, url, f"more than {MAX_ANSWER_BYTES} bytes")
    headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")]
    return httpx.Response(streamed.status_code, headers=headers, content=bytes(body), request=streamed.request)


def _too_large(what: str, url: str, size: str) -> ApiError:
    return ApiError(f"could not {what}: {urlsplit(url).netloc} answered too much ({size}; at most "
                    f"{MAX_ANSWER_BYTES // (1024 * 1024)} MiB is read)", status=0,
                    hint="check --api-url / --ims-url: that is not the iTwin Platform's answer")


def _server_now(resp: httpx.Response, wall_clock: Callable[[], float]) -> float:
    """The server's idea of now (its Date header), so an HTTP-date Retry-After ignores local clock skew."""
    date = resp.headers.get("date")
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return wall_clock()


class _RetrySettings(TypedDict):
    """The keyword arguments of :func:`request_with_retries` an ApiTransport fixes for all its requests."""

    sleep: Callable[[float], None]
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    max_wait_s: float
    max_retries: int
    rng: Callable[[], float]


class ApiTransport:
    """An httpx client bound to the retry settings, shared by the API client and IMS token requests."""

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._owns_client = client is None
        self.client = client if client is not None else make_client()
        self._settings = _RetrySettings(
            sleep=sleep, clock=clock, wall_clock=wall_clock, max_wait_s=max_wait_s, max_retries=max_retries, rng=rng
        )

    def request(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        """See :func:`request_with_retries` (``idempotent``, ``app_email``, ``hints`` and httpx kwargs)."""
        return request_with_retries(self.client, method, url, what=what, **self._settings, **kwargs)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
