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
from typing import Callable

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy
from azure.core.pipeline.transport import HttpRequest, HttpResponse

from ..retry import RETRY_STATUSES, STORAGE, Backoff
from ..sas import SasSource
from .errors import refresh_may_cure

READ_METHODS = frozenset({"GET", "HEAD"})

log = logging.getLogger(__name__)

_BASE_URL_KEY = "bucket_sync.base_url"
# The request and response types of azure-storage-blob's pipeline (azure-core's transport classes).
Request = PipelineRequest[HttpRequest]
Response = PipelineResponse[HttpRequest, HttpResponse]

_STORAGE_RETRY_OPTIONS = ("retry_total", "retry_connect", "retry_read", "retry_status", "retry_to_secondary",
                          "location_mode", "hosts", "retry_hook")


def with_token(url: str, token: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{token}"


class SasPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """Signs each attempt with the current SAS; after a 403, asks for a fresh SAS and resends once.

    Reads (GET, HEAD) are signed by ``reads`` and the rest by ``source``: a reality data is read through
    its read access and written through its write access. A 403 that says the SAS lacks the permission
    (AuthorizationPermissionMismatch) is not an expiry: no refresh, the error goes up as it is."""

    def __init__(self, source: SasSource, reads: SasSource | None = None) -> None:
        super().__init__()
        self._source = source
        self._reads = reads or source

    def send(self, request: Request) -> Response:
        http = request.http_request
        base = request.context.get(_BASE_URL_KEY)
        if base is None:
            base = http.url
            request.context[_BASE_URL_KEY] = base
        source = self._reads if http.method in READ_METHODS else self._source
        sas = source.current()
        http.url = with_token(base, sas.token)
        response = self.next.send(request)
        answer = response.http_response
        if refresh_may_cure(answer.status_code, answer.headers.get("x-ms-error-code")):
            fresh = source.refresh(sas)
            if fresh.token != sas.token:
                log.info("storage answered 403; retrying with a refreshed SAS")
                _close(response)
                _rewind(request)
                http.url = with_token(base, fresh.token)
                response = self.next.send(request)
        return response


class RetryPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """retry.STORAGE as an azure-core policy: 408/429/5xx and dropped connections are retried."""

    def __init__(self, *, attempts: int | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random, cancel: threading.Event | None = None) -> None:
        super().__init__()
        self.backoff = Backoff(STORAGE, attempts=attempts, sleep=sleep, rng=rng, cancel=cancel)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        return self.backoff.delay(attempt, retry_after)

    def send(self, request: Request) -> Response:
        # The SDK's own retry policy, which this one replaces, consumes these per-request options;
        # left in place they would reach the HTTP transport as unknown arguments.
        for option in _STORAGE_RETRY_OPTIONS:
            request.context.options.pop(option, None)
        backoff = self.backoff
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.next.send(request)
            except (ServiceRequestError, ServiceResponseError, HttpResponseError) as exc:
                # A connection dropped while the body was read surfaces as an HttpResponseError with no
                # response (azure-core's "Unable to stream download"): as transient as a refused connect.
                if not is_dropped_connection(exc) or not backoff.may_retry(attempt):
                    raise
                log.debug("storage connection error (%s); attempt %d of %d", type(exc).__name__, attempt, backoff.attempts)
                backoff.wait(backoff.delay(attempt))
                _rewind(request)
                continue
            status = response.http_response.status_code
            if status in RETRY_STATUSES and backoff.may_retry(attempt):
                log.debug("storage answered %d; attempt %d of %d", status, attempt, backoff.attempts)
                backoff.wait(backoff.delay(attempt, response.http_response.headers.get("Retry-After")))
                _close(response)
                _rewind(request)
                continue
            # The SDK's response handlers read which location answered; with one endpoint it is primary.
            response.http_response.location_mode = "primary"  # type: ignore[attr-defined]  # ad hoc, as the SDK sets it
            return response


def is_dropped_connection(exc: BaseException) -> bool:
    """The transport failed (no HTTP answer at all, or an answer cut off mid-body)."""
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    return isinstance(exc, HttpResponseError) and getattr(exc, "response", None) is None and not exc.status_code


def _rewind(request: Request) -> None:
    body: object = request.http_request.body  # uploads put a stream here, beyond azure-core's declared types
    if hasattr(body, "seek"):
        try:
            body.seek(0)
        except (OSError, ValueError):
            pass


def _close(response: Response) -> None:
    try:
        response.http_response.internal_response.close()
    except Exception:  # noqa: BLE001 - best effort: an unread error body must not pin a pooled connection
        pass
