"""Pipeline policies plugged into azure-storage-blob: per-request SAS, and our retry schedule.

Why not the SDK's own: a client built from a SAS URL keeps its token privately, so a refreshed SAS could
not reach requests already queued; and the SDK retries neither 429 nor 502. Both policies sit after the
SDK's own (which we disable), so every attempt of every request carries the freshest SAS.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Callable

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import HTTPPolicy

from ..sas import SasSource

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_BASE_URL_KEY = "bucket_sync.base_url"
_STORAGE_RETRY_OPTIONS = ("retry_total", "retry_connect", "retry_read", "retry_status", "retry_to_secondary",
                          "location_mode", "hosts", "retry_hook")


def with_token(url: str, token: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{token}"


class SasPolicy(HTTPPolicy):
    """Signs each attempt with the current SAS; after a 403, asks for a fresh SAS and resends once."""

    def __init__(self, source: SasSource) -> None:
        super().__init__()
        self._source = source

    def send(self, request):
        http = request.http_request
        base = request.context.get(_BASE_URL_KEY)
        if base is None:
            base = http.url
            request.context[_BASE_URL_KEY] = base
        sas = self._source.current()
        http.url = with_token(base, sas.token)
        response = self.next.send(request)
        if response.http_response.status_code == 403:
            fresh = self._source.refresh(sas)
            if fresh.token != sas.token:
                log.info("storage answered 403; retrying with a refreshed SAS")
                _close(response)
                _rewind(request)
                http.url = with_token(base, fresh.token)
                response = self.next.send(request)
        return response


class RetryPolicy(HTTPPolicy):
    """Exponential backoff with full jitter on 408/429/5xx and dropped connections; honours Retry-After."""

    def __init__(self, *, attempts: int = 6, base_delay: float = 0.5, max_delay: float = 20.0,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random,
                 cancel: threading.Event | None = None) -> None:
        super().__init__()
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = rng
        self._cancel = cancel

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        hinted = _parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.max_delay * 3)
        return self._rng() * min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))

    def _wait(self, seconds: float) -> None:
        if self._cancel is not None:
            self._cancel.wait(seconds)
        else:
            self._sleep(seconds)

    def send(self, request):
        # The SDK's own retry policy, which this one replaces, consumes these per-request options;
        # left in place they would reach the HTTP transport as unknown arguments.
        for option in _STORAGE_RETRY_OPTIONS:
            request.context.options.pop(option, None)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.next.send(request)
            except (ServiceRequestError, ServiceResponseError, HttpResponseError) as exc:
                # A connection dropped while the body was read surfaces as an HttpResponseError with no
                # response (azure-core's "Unable to stream download"): as transient as a refused connect.
                if not is_dropped_connection(exc) or attempt >= self.attempts or self._cancelled():
                    raise
                log.debug("storage connection error (%s); attempt %d of %d", type(exc).__name__, attempt, self.attempts)
                self._wait(self.delay(attempt))
                _rewind(request)
                continue
            status = response.http_response.status_code
            if status in RETRY_STATUSES and attempt < self.attempts and not self._cancelled():
                log.debug("storage answered %d; attempt %d of %d", status, attempt, self.attempts)
                self._wait(self.delay(attempt, response.http_response.headers.get("Retry-After")))
                _close(response)
                _rewind(request)
                continue
            # The SDK's response handlers read which location answered; with one endpoint it is primary.
            response.http_response.location_mode = "primary"
            return response

    def _cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()


def is_dropped_connection(exc: BaseException) -> bool:
    """The transport failed (no HTTP answer at all, or an answer cut off mid-body)."""
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    return isinstance(exc, HttpResponseError) and getattr(exc, "response", None) is None and not exc.status_code


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)


def _rewind(request) -> None:
    body = request.http_request.body
    if hasattr(body, "seek"):
        try:
            body.seek(0)
        except (OSError, ValueError):
            pass


def _close(response) -> None:
    try:
        response.http_response.internal_response.close()
    except Exception:  # best effort: an unread error body must not pin a pooled connection
        pass
