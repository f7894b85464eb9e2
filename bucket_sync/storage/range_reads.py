"""Ranged GETs over http.client, streamed into the caller's sink: the download path when no proxy applies.

Why not the SDK's pipeline: per 1 GiB it cost ~1 s of CPU on top of the copy (requests and urllib3
wrap every 1 MiB read in generators and joined pieces; azure-core runs its policies per request), and for
small files ~2 ms of CPU per file, more than the file itself. The rules are list_http.py's (it owns the
connections): every attempt signed with the current SAS, one refresh after a 403 unless storage says the
permission is missing, the backoff.py schedule for 408/429/5xx and dropped connections. A connection that
drops mid-body resumes from the next byte not yet handed on (the range stays pinned to the ETag, so the
two halves are of one version), instead of fetching the range again.
"""

from __future__ import annotations

import http.client
import logging
from typing import Callable
from urllib.parse import quote

from ..errors import TransientError
from .list_http import API_VERSION, ConnectionFailed, ListClient

log = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024  # one network read, what a request buffers (download.py's budget counts it)


class _Dropped(Exception):
    """The connection failed (before or during the body): retried from the next byte not handed on."""

    def __init__(self, detail: str, got: int = 0) -> None:
        super().__init__(detail)
        self.got = got


class RangeClient(ListClient):
    """ListClient's connections and signing, plus ranged GETs whose body is streamed, never held."""

    def _buffer(self, length: int) -> memoryview:
        """This thread's read buffer (READ_SIZE at most, grown on demand, kept): a fresh 1 MiB buffer per
        range was zeroed and page-faulted in each time, ~5% of a large download's CPU (perf)."""
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < min(length, READ_SIZE):
            buffer = memoryview(bytearray(min(length, READ_SIZE)))
            self._local.buffer = buffer
        return buffer

    def stream(self, name: str, offset: int, length: int, etag: str | None,
               sink: Callable[[int, memoryview], None]) -> None:
        """Hand bytes [offset, offset+length) of blob ``name`` to ``sink(position, piece)`` in order.

        ``piece`` is a view of a buffer reused for the next read: the sink must consume it before it
        returns. StorageHttpError or ConnectionFailed once retries are spent; TransientError when storage
        sends other bytes than the ones asked for."""
        target = f"{self._path}/{quote(name, safe='/~')}?"
        buffer = self._buffer(length)
        got = 0
        attempt = 0
        refreshed = False
        while got < length:
            attempt += 1
            sas = self._source.current()
            headers = {"x-ms-version": API_VERSION, "x-ms-range": f"bytes={offset + got}-{offset + length - 1}"}
            if etag:
                headers["If-Match"] = etag
            try:
                response = self._open_body(target + sas.token, headers)
            except _Dropped as exc:
                if not self._backoff.may_retry(attempt):
                    raise ConnectionFailed(str(exc)) from None
                log.debug("storage connection error (%s); attempt %d of %d", exc, attempt, self._backoff.attempts)
                self._backoff.wait(self._backoff.delay(attempt))
                continue
            status = response.status
            if status not in (200, 206):
                answer = response.headers
                self._finish(response)
                attempt, refreshed = self._after_error(self._source, sas, status, answer, attempt, refreshed)
                continue
            try:
                _check_start(name, response, status, offset + got)
            except TransientError:
                self._drop()
                raise
            try:
                got = self._drain(response, buffer, offset, got, length, sink, name)
            except _Dropped as exc:
                got = exc.got
                if not self._backoff.may_retry(attempt):
                    raise ConnectionFailed(str(exc)) from None
                log.debug("storage connection dropped mid-body at %d of %d (%s); resuming", got, length, exc)
                self._backoff.wait(self._backoff.delay(attempt))

    def _open_body(self, target: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        try:
            conn = self._connection()
            conn.request("GET", target, headers=headers)
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise _Dropped(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    def _drain(self, response: http.client.HTTPResponse, buffer: memoryview, offset: int, got: int, length: int,
               sink: Callable[[int, memoryview], None], name: str) -> int:
        """Stream the body to ``sink``; how many bytes of the range are handed on in all."""
        if response.length is not None and response.length > length - got:
            self._drop()
            raise TransientError(f"{name}: storage sent more than the {length} bytes asked for")
        complete = False
        try:
            while got < length:
                try:
                    n = response.readinto(buffer[:min(len(buffer), length - got)])
                except (OSError, http.client.HTTPException) as exc:
                    raise _Dropped(f"{type(exc).__name__}: {exc}".rstrip(": "), got) from None
                if not n:
                    raise _Dropped(f"the answer ended after {got} of {length} bytes", got)
                sink(offset + got, buffer[:n])
                got += n
            complete = response.length == 0 and not response.will_close
        finally:
            if complete:
                response.close()  # the body is read to its end: the connection is reused
            else:
                self._drop()  # a body cut short (or a sink that failed) leaves the connection unusable
        return got

    def _finish(self, response: http.client.HTTPResponse) -> None:
        try:
            response.read()
        except (OSError, http.client.HTTPException):
            self._drop()
            return
        if response.will_close:
            self._drop()


def _check_start(name: str, response: http.client.HTTPResponse, status: int, start: int) -> None:
    """Storage answers a ranged GET with 206 and the range it sends; 200 means the whole blob from byte 0."""
    if status == 200:
        sent_from = 0
    else:
        content_range = response.headers.get("Content-Range") or ""  # bytes <first>-<last>/<size>
        try:
            sent_from = int(content_range.split()[1].split("-")[0])
        except (IndexError, ValueError):
            sent_from = -1
    if sent_from != start:
        raise TransientError(f"{name}: storage sent bytes from {sent_from}, not the {start} asked for")


__all__ = ["RangeClient", "READ_SIZE"]
