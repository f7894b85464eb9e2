"""List Blobs pages and HEADs over the standard library's http.client: a run that only lists imports no
HTTP stack.

Why: importing azure-core and requests costs ~0.1 s, which a cron job's no-op mirror (it only lists) paid
every few minutes: on 20,000 unchanged files that was a sixth of the run. The rules are the SDK path's
(policies.py): every attempt signed with the current SAS, one refresh after a 403, the retry.STORAGE schedule
for 408/429/5xx and dropped connections. http.client knows nothing of proxies, so when one is configured
for the storage host (the environment, or the system's settings), Storage lists through the SDK's
transport instead (see proxy_configured).
"""

from __future__ import annotations

import http.client
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Mapping
from urllib.parse import quote, urlencode, urlsplit

from ..retry import RETRY_STATUSES, Backoff
from ..sas import ContainerSas, SasSource
from .errors import refresh_may_cure

if TYPE_CHECKING:
    import ssl

log = logging.getLogger(__name__)

# The storage REST version our own requests (listing, ranged reads) speak: the SDK's default (a test checks).
API_VERSION = "2026-10-06"


class StorageHttpError(Exception):
    """Storage answered something other than 200 (after retries)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"storage answered {status} {code}".rstrip())
        self.status = status
        self.code = code


class ConnectionFailed(Exception):
    """No answer, or an answer cut off mid-body (after retries)."""


# Where getproxies() reads more than the environment (the Windows registry, macOS' System Configuration).
SYSTEM_PROXY_SETTINGS = os.name == "nt" or sys.platform == "darwin"


def proxy_configured(url: str) -> bool:
    """Whether a proxy applies to ``url`` as the SDK's transport (requests) decides it: the proxies of
    ``urllib.request.getproxies()`` (the environment; on Windows also Internet Settings in the registry, on
    macOS the System Configuration), less what ``urllib.request.proxy_bypass`` exempts (NO_PROXY, the
    registry's ProxyOverride, macOS' exceptions). Errs towards yes: then the SDK's transport, which knows
    proxies, does the listing."""
    if not SYSTEM_PROXY_SETTINGS and not any(k.lower().endswith("_proxy") for k in os.environ):
        return False  # the common case, decided without importing urllib.request (a few ms a run)
    import urllib.request

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        proxies = urllib.request.getproxies()
    except Exception:  # noqa: BLE001 - an unreadable registry or System Configuration: let the SDK's transport decide
        return True
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    try:
        return not urllib.request.proxy_bypass(parts.hostname or "")
    except Exception:  # noqa: BLE001 - the same platform lookups as above, and the same answer when they fail
        return True


class ListClient:
    """Requests against one container, one keep-alive connection per thread. Reads (GET, HEAD) are signed
    by ``source``, anything else (the probes of `check`) by ``writes`` (as in policies.SasPolicy)."""

    def __init__(self, container_url: str, source: SasSource, backoff: Backoff, *, timeout: float = 120.0,
                 writes: SasSource | None = None) -> None:
        parts = urlsplit(container_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path  # already percent-encoded, as the SAS URL carried it
        self._source = source
        self._writes = writes or source
        self._backoff = backoff
        self._timeout = timeout
        self._local = threading.local()
        self._open: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def get(self, params: Mapping[str, str], headers: Mapping[str, str]) -> bytes:
        """The body of a 200 answer to a GET on the container; StorageHttpError or ConnectionFailed once
        retries are spent."""
        return self.request("GET", "", params, headers)[2]

    def head(self, name: str, headers: Mapping[str, str]) -> http.client.HTTPMessage | None:
        """A blob's properties and metadata (the response headers, looked up case-insensitively); None when
        it does not exist."""
        status, answer, _ = self.request("HEAD", "/" + quote(name, safe="/~"), {}, headers, ok=(200, 404))
        return None if status == 404 else answer

    def request(self, method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str], *,
                ok: tuple[int, ...] = (200,)) -> tuple[int, http.client.HTTPMessage, bytes]:
        """(status, headers, body) of an answer in ``ok``, after the retries and one SAS refresh."""
        query = urlencode(params, quote_via=quote)
        target = f"{self._path}{path}?{query}&" if query else f"{self._path}{path}?"
        attempt = 0
        refreshed = False
        source = self._source if method in ("GET", "HEAD") else self._writes
        while True:
            attempt += 1
            sas = source.current()
            try:
                status, answer, body = self._send(method, target + sas.token, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if not self._backoff.may_retry(attempt):
                    raise ConnectionFailed(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
                log.debug("storage connection error (%s); attempt %d of %d", type(exc).__name__, attempt,
                          self._backoff.attempts)
                self._backoff.wait(self._backoff.delay(attempt))
                continue
            if status not in ok:
                attempt, refreshed = self._after_error(source, sas, status, answer, attempt, refreshed)
                continue
            return status, answer, body

    def _after_error(self, source: SasSource, sas: ContainerSas, status: int, answer: http.client.HTTPMessage,
                     attempt: int, refreshed: bool) -> tuple[int, bool]:
        """After an answer that is not a success: the (attempt, refreshed) to try again with, or
        StorageHttpError. A 403 a fresh SAS may cure is resent once with it (not counted as a retry, as in
        policies.SasPolicy); a status worth retrying waits out the backoff first. Ranged reads share it."""
        if not refreshed and refresh_may_cure(status, answer.get("x-ms-error-code")):
            fresh = source.refresh(sas)
            if fresh.token != sas.token:
                log.info("storage answered 403; retrying with a refreshed SAS")
                return attempt - 1, True
        if status in RETRY_STATUSES and self._backoff.may_retry(attempt):
            log.debug("storage answered %d; attempt %d of %d", status, attempt, self._backoff.attempts)
            self._backoff.wait(self._backoff.delay(attempt, answer.get("Retry-After")))
            return attempt, refreshed
        raise StorageHttpError(status, answer.get("x-ms-error-code") or "")

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()

    # -- connections -------------------------------------------------------------------------------
    def _send(self, method: str, target: str, headers: Mapping[str, str]) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = self._connection()
        conn.request(method, target, headers=dict(headers))
        response = conn.getresponse()
        body = response.read()
        if response.will_close:
            self._drop()
        return response.status, response.headers, body

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                                   context=self._ssl_context())
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)

    def _ssl_context(self) -> ssl.SSLContext:
        # The CA bundle the SDK path (requests) trusts: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, else certifi's.
        with self._lock:
            if self._ssl is None:
                import ssl

                cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                if not cafile:
                    try:
                        import certifi

                        cafile = certifi.where()
                    except ImportError:
                        cafile = None
                self._ssl = ssl.create_default_context(cafile=cafile)
            return self._ssl
