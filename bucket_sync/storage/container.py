"""One container, reached through a refreshing SAS: what the engine, watch and remote commands talk to.

The seam between the commands and Azure: list, look up, read, write, delete, and what the SAS allows
(``access``: its ``sp=`` letters, and what storage refused since; access.py decides what to do with it).
Reads (list, look-ups, ranged GETs) are signed by ``reads`` and writes and deletes by ``source``: for a
reality data, its read and write access; for a bucket or a SAS URL, the same SAS.

Listing and look-ups go through list_http.py (plain http.client) and listing.py (folders in parallel),
ranged reads (downloads) through range_reads.py (http.client too; the SDK when a proxy is configured);
everything else through blob_ops.py (azure-storage-blob), which is built, and the SDK imported, only when
first needed: a no-op mirror from cron lists and compares, and should not pay ~0.1 s of imports every few
minutes. Errors come out as bucket_sync errors naming the operation (storage_errors.py).
"""

from __future__ import annotations

import builtins
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..errors import PermissionDeniedError
from ..retry import Backoff
from ..sas import SasSource
from ..sync.access import DELETE, LIST, READ, WRITE, Access, combined
from ..sync.keys import join_blob_name
from .list_http import API_VERSION, ConnectionFailed, ListClient, StorageHttpError, proxy_configured
from .list_pages import blob_from_headers
from .list_ahead import fewer_malloc_arenas
from .listing import Lister
from .metadata_cache import MetadataCache
from .range_reads import RangeClient
from ..sync.model import BlobExtras, RemoteBlob
from ..sync.mtime import format_mtime
from .parse_pool import ParsePool
from .errors import connection_error, lacks_permission, status_error
from ..sync.waiting import result

if TYPE_CHECKING:
    from .blob_ops import BlobOps

LIST_PAGE = 5000  # the service maximum: fewer round trips


# Probes of `check`: harmless requests whose answer says whether a permission is granted. Storage checks
# the permission before whether the blob exists, so on a name that does not exist they change nothing.
PROBE_NAME = ".bucket-sync-check-probe-does-not-exist"
PROBES = {
    LIST: ("GET", "", {"restype": "container", "comp": "list", "maxresults": "1"}, {}),
    READ: ("HEAD", "/" + PROBE_NAME, {}, {}),
    WRITE: ("PUT", "/" + PROBE_NAME, {"comp": "metadata"}, {"x-ms-meta-probe": "1", "Content-Length": "0"}),
    DELETE: ("DELETE", "/" + PROBE_NAME, {}, {}),
}


@dataclass(frozen=True)
class ContainerRef:
    """Everything needed to open a Storage on a target's container, resolved but not yet used: the SAS
    sources (``reads`` None: one SAS for everything) and how refusals name them (targets.access_labels)."""

    source: SasSource
    reads: SasSource | None = None
    origin: str = "the SAS"
    limits: str = ""

    def open(self, **options: Any) -> "Storage":  # Storage's keyword options
        return Storage(self.source, reads=self.reads, origin=self.origin, limits=self.limits, **options)


class Storage:
    def __init__(self, source: SasSource, *, reads: SasSource | None = None, concurrency: int = 16,
                 retry_attempts: int = 6, cancel: threading.Event | None = None,
                 metadata_cache_dir: Path | None = None, origin: str = "the SAS", limits: str = "") -> None:
        """``source`` signs writes and deletes (and reads, unless ``reads`` is given). ``origin`` and
        ``limits`` name the SAS in refusals (targets.access_labels). ``metadata_cache_dir``: where blob
        metadata is remembered between runs (metadata_cache.py), so listings of folders it knows can leave
        the metadata out; None: always list with metadata."""
        self.source = source
        self.reads = reads or source
        self.container_url = self.reads.current().container_url
        self._metadata_cache = MetadataCache(metadata_cache_dir, self.container_url) if metadata_cache_dir else None
        self._concurrency = concurrency
        self._retry_attempts = retry_attempts
        self._cancel = cancel
        self._origin, self._limits = origin, limits
        self._denied: set[str] = set()  # permissions storage refused during this run
        self._ops: BlobOps | None = None
        self._ops_lock = threading.Lock()
        self._list_client: ListClient | None = None
        self._range_client: RangeClient | None = None  # ranged reads (downloads), on their own connections
        if not proxy_configured(self.container_url):
            self._list_client = ListClient(self.container_url, self.reads, Backoff(attempts=retry_attempts, cancel=cancel),
                                           writes=source)
            self._range_client = RangeClient(self.container_url, self.reads,
                                             Backoff(attempts=retry_attempts, cancel=cancel))
        self.list_workers = max(2, min(concurrency, 16))
        self.lookup_workers = max(1, min(concurrency, 32))

    # -- what the SAS allows ---------------------------------------------------------------------
    def read_access(self) -> Access:
        """List and read, from the SAS that signs reads (never fetches a reality data's write access)."""
        return self._access(self.reads)

    def access(self) -> Access:
        """Everything: list and read through ``reads``, write and delete through ``source``."""
        if self.reads is self.source:
            return self._access(self.source)
        return combined(self._access(self.reads), self._access(self.source))

    def _access(self, source: SasSource) -> Access:
        granted = Access.from_sp(source.current().permissions, origin=self._origin, limits=self._limits)
        return Access(granted.granted, frozenset(self._denied), self._origin, self._limits)

    @contextmanager
    def _learning(self) -> Iterator[None]:
        """Remember a permission storage refused, so the run's later choices (and messages) know it."""
        try:
            yield
        except PermissionDeniedError as exc:
            if exc.permission:
                self._denied.add(exc.permission)
            raise

    def probe(self, letter: str) -> tuple[bool | None, str]:
        """Whether storage grants ``letter`` (l, r, w or d), by one harmless request: (True, how) granted,
        (False, how) refused for that permission, (None, what happened) when the answer says neither."""
        method, path, params, headers = PROBES[letter]
        client = self._list_client or ListClient(self.container_url, self.reads, Backoff(attempts=2, cancel=self._cancel),
                                                 writes=self.source)
        try:
            status, answer, _ = client.request(method, path, params, {"x-ms-version": API_VERSION, **headers},
                                               ok=(200, 202, 404))
        except StorageHttpError as exc:
            if lacks_permission(exc.status, exc.code):
                return False, f"refused by storage (403 {exc.code})"
            return None, f"storage answered {exc.status} {exc.code}".rstrip()
        except ConnectionFailed as exc:
            return None, f"no answer from storage ({exc})"
        finally:
            if client is not self._list_client:
                client.close()
        code = answer.get("x-ms-error-code") or ""
        if status == 404 and code == "ContainerNotFound":
            return None, "the container does not exist"
        return True, f"granted (storage answered {status}{' ' + code if code else ''})"

    def close(self) -> None:
        if self._list_client is not None:
            self._list_client.close()
        if self._range_client is not None:
            self._range_client.close()
        if self._ops is not None:
            self._ops.close()

    @property
    def ops(self) -> "BlobOps":
        with self._ops_lock:
            if self._ops is None:
                from .blob_ops import BlobOps

                self._ops = BlobOps(self.container_url, self.source, reads=self.reads, concurrency=self._concurrency,
                                    retry_attempts=self._retry_attempts, cancel=self._cancel)
            return self._ops

    # -- listing ---------------------------------------------------------------------------------
    def list(self, prefix: str) -> list[RemoteBlob]:
        """Every blob under ``prefix``, sorted by key (the diff needs one order on both sides)."""
        return list(self.iter_list(prefix))

    def iter_list(self, prefix: str, hints: Iterable[str] = (),
                  top_folder_ok: Callable[[str], bool] | None = None) -> Iterator[RemoteBlob]:
        """The same, streamed: folders are listed in parallel and handed on in key order as they arrive,
        so the diff starts before the listing ends. ``hints``: likely folder names (see listing.py)."""
        fewer_malloc_arenas()
        parser = ParsePool()
        lister = Lister(self._list_body, workers=self.list_workers, cache=self._metadata_cache, head=self._head,
                        parse=parser.parse)
        try:
            yield from lister.blobs(prefix, hints, top_folder_ok)
        finally:
            parser.close()

    def _list_body(self, starts: str | None, marker: str | None, delimiter: str | None, metadata: bool = True) -> bytes:
        """One List Blobs page (XML, parsed by listing.py), with the metadata the diff needs (unless the
        metadata cache supplies it)."""
        params = {"restype": "container", "comp": "list", "maxresults": str(LIST_PAGE)}
        if metadata:
            params["include"] = "metadata"
        if starts:
            params["prefix"] = starts
        if marker:
            params["marker"] = marker
        if delimiter:
            params["delimiter"] = delimiter
        headers = {"x-ms-version": API_VERSION, "Accept": "application/xml"}
        if self._list_client is None:
            with self._learning():
                return self.ops.list_body(params, headers)
        with self._plain_errors("list", starts or "/"):
            return self._list_client.get(params, headers)

    def _head(self, name: str) -> tuple[str, str | None, str | None] | None:
        """(ETag, mtime metadata, sha256pieces metadata) of one blob as it is now; None when it is gone."""
        blob = self.get(name, name)
        if blob is None:
            return None
        mtime = format_mtime(blob.mtime_ns) if blob.mtime_from_metadata else None
        return (blob.etag or "").strip('"'), mtime, blob.pieces

    def look_up_each(self, prefix: str, keys: Iterable[str]) -> Iterator[RemoteBlob]:
        """The blobs at ``prefix/key`` for each key that exists, in the order of ``keys``: the file-by-file
        comparison of a SAS that cannot list."""
        for _key, blob in self.look_up_pairs(prefix, keys):
            if blob is not None:
                yield blob

    def look_up_pairs(self, prefix: str, keys: Iterable[str]) -> Iterator[tuple[str, RemoteBlob | None]]:
        """(key, blob or None) for each key, in the order of ``keys``. HEADs run ``lookup_workers`` at a
        time, at most twice that many ahead of the consumer (the diff), so memory stays flat however many
        keys there are."""
        window: deque[tuple[str, Future[RemoteBlob | None]]] = deque()
        it = iter(keys)
        pool = ThreadPoolExecutor(self.lookup_workers, thread_name_prefix="lookup")

        def fill() -> None:
            while len(window) < 2 * self.lookup_workers:
                key = next(it, None)
                if key is None:
                    return
                window.append((key, pool.submit(self.get, join_blob_name(prefix, key), key)))

        try:
            fill()
            while window:
                key, future = window.popleft()
                blob = result(future)  # in slices: Ctrl+C is seen on Windows too
                fill()
                yield key, blob
        finally:
            for _key, future in window:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    @contextmanager
    def _plain_errors(self, op: str, name: str) -> Iterator[None]:
        """list_http.py's failures as bucket_sync errors (blob_ops.translate does the same for the SDK's)."""
        with self._learning():
            try:
                yield
            except StorageHttpError as exc:
                source = self.reads if op in ("list", "read") else self.source
                raise status_error(op, name, exc.status, exc.code, source=source,
                                   container_url=self.container_url) from None
            except ConnectionFailed as exc:
                raise connection_error(op, name, str(exc)) from None

    # -- blobs -------------------------------------------------------------------------------------
    def get(self, name: str, key: str) -> RemoteBlob | None:
        """One blob's properties (a HEAD), as ``key``; None when there is no blob of that name."""
        if self._list_client is None:
            with self._learning():
                return self.ops.get(name, key)
        with self._plain_errors("read", name):
            answer = self._list_client.head(name, {"x-ms-version": API_VERSION})
        return None if answer is None else blob_from_headers(key, name, answer)

    # (blob_ops.py: azure-storage-blob)
    def put(self, name: str, data: bytes, md5: bytes, mtime_ns: int, extras: BlobExtras = BlobExtras()) -> None:
        with self._learning():
            self.ops.put(name, data, md5, mtime_ns, extras)

    def stage_block(self, name: str, block_id: str, data: bytes) -> None:
        with self._learning():
            self.ops.stage_block(name, block_id, data)

    def uncommitted_blocks(self, name: str) -> dict[str, int]:
        """Blocks staged but not committed (an interrupted upload), id -> size; {} when there are none."""
        with self._learning():
            return self.ops.uncommitted_blocks(name)

    def commit(self, name: str, block_ids: builtins.list[str], md5: bytes, mtime_ns: int,  # list: our method
               extras: BlobExtras = BlobExtras(), *, digest: str | None = None) -> None:
        with self._learning():
            self.ops.commit(name, block_ids, md5, mtime_ns, extras, digest=digest)

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        """Only the mtime differs: rewrite the metadata, keep the content (and its MD5 and type)."""
        with self._learning():
            self.ops.set_mtime(name, mtime_ns)

    def delete(self, name: str) -> None:
        with self._learning():
            self.ops.delete(name)

    def stream_range(self, name: str, offset: int, length: int, etag: str | None,
                     sink: Callable[[int, bytes | memoryview], None]) -> None:
        """Hand bytes [offset, offset+length) to ``sink(position, piece)`` as they arrive (``piece`` may be a
        view of a reused buffer: consume it before returning). Over http.client (range_reads.py), unless a
        proxy is configured: then through the SDK's transport, which knows proxies."""
        if self._range_client is None:
            with self._learning():
                self.ops.stream_range(name, offset, length, etag, sink)
            return
        with self._plain_errors("read", name):
            self._range_client.stream(name, offset, length, etag, sink)


__all__ = ["ContainerRef", "Storage", "LIST_PAGE", "PROBE_NAME"]
