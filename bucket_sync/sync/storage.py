"""One container, reached through a refreshing SAS: what the engine, watch and remote commands talk to.

Listing goes through list_http.py (plain http.client) and listing.py (folders in parallel); everything else
through blob_ops.py (azure-storage-blob), which is built, and the SDK imported, only when first needed: a
no-op mirror from cron lists and compares, and should not pay ~0.1 s of imports every few minutes.
Errors come out as bucket_sync errors naming the operation (storage_errors.py).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..sas import SasSource
from .backoff import Backoff
from .list_http import API_VERSION, ConnectionFailed, ListClient, StorageHttpError, proxy_configured
from .listing import Lister
from .metadata_cache import MetadataCache
from .model import RemoteBlob
from .mtime import format_mtime
from .storage_errors import connection_error, status_error

if TYPE_CHECKING:
    from .blob_ops import BlobOps

LIST_PAGE = 5000  # the service maximum: fewer round trips


class Storage:
    def __init__(self, source: SasSource, *, concurrency: int = 16, retry_attempts: int = 6,
                 cancel: threading.Event | None = None, metadata_cache_dir: Path | None = None) -> None:
        """``metadata_cache_dir``: where blob metadata is remembered between runs (metadata_cache.py), so
        listings of folders it knows can leave the metadata out; None: always list with metadata."""
        self.source = source
        self.container_url = source.current().container_url
        self._metadata_cache = MetadataCache(metadata_cache_dir, self.container_url) if metadata_cache_dir else None
        self._concurrency = concurrency
        self._retry_attempts = retry_attempts
        self._cancel = cancel
        self._ops: BlobOps | None = None
        self._ops_lock = threading.Lock()
        self._list_client: ListClient | None = None
        if not proxy_configured(self.container_url, os.environ):
            self._list_client = ListClient(self.container_url, source, Backoff(attempts=retry_attempts, cancel=cancel))
        self.list_workers = max(2, min(concurrency, 16))

    def close(self) -> None:
        if self._list_client is not None:
            self._list_client.close()
        if self._ops is not None:
            self._ops.close()

    @property
    def ops(self) -> "BlobOps":
        with self._ops_lock:
            if self._ops is None:
                from .blob_ops import BlobOps

                self._ops = BlobOps(self.container_url, self.source, concurrency=self._concurrency,
                                    retry_attempts=self._retry_attempts, cancel=self._cancel)
            return self._ops

    # -- listing ---------------------------------------------------------------------------------
    def list(self, prefix: str) -> list[RemoteBlob]:
        """Every blob under ``prefix``, sorted by key (the diff needs one order on both sides)."""
        return list(self.iter_list(prefix))

    def iter_list(self, prefix: str, hints: Iterable[str] = ()) -> Iterator[RemoteBlob]:
        """The same, streamed: folders are listed in parallel and handed on in key order as they arrive,
        so the diff starts before the listing ends. ``hints``: likely folder names (see listing.py)."""
        lister = Lister(self._list_body, workers=self.list_workers, cache=self._metadata_cache, head=self._head)
        yield from lister.blobs(prefix, hints)

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
            return self.ops.list_body(params, headers)
        with self._plain_errors("list", starts or "/"):
            return self._list_client.get(params, headers)

    def _head(self, name: str) -> tuple[str, str | None] | None:
        """(ETag, mtime metadata) of one blob as it is now; None when it is gone."""
        if self._list_client is None:
            blob = self.ops.get(name, name)
            if blob is None:
                return None
            return (blob.etag or "").strip('"'), format_mtime(blob.mtime_ns) if blob.mtime_from_metadata else None
        with self._plain_errors("read", name):
            answer = self._list_client.head(name, {"x-ms-version": API_VERSION})
        if answer is None:
            return None
        return (answer.get("ETag") or "").strip('"'), answer.get("x-ms-meta-mtime") or answer.get("x-ms-meta-Mtime")

    @contextmanager
    def _plain_errors(self, op: str, name: str) -> Iterator[None]:
        """list_http.py's failures as bucket_sync errors (blob_ops.translate does the same for the SDK's)."""
        try:
            yield
        except StorageHttpError as exc:
            raise status_error(op, name, exc.status, exc.code, source=self.source,
                               container_url=self.container_url) from None
        except ConnectionFailed as exc:
            raise connection_error(op, name, str(exc)) from None

    # -- blobs (blob_ops.py) -------------------------------------------------------------------------
    def get(self, name: str, key: str) -> RemoteBlob | None:
        return self.ops.get(name, key)

    def put(self, name: str, data: bytes, md5: bytes, mtime_ns: int) -> None:
        self.ops.put(name, data, md5, mtime_ns)

    def stage_block(self, name: str, block_id: str, data: bytes) -> None:
        self.ops.stage_block(name, block_id, data)

    def uncommitted_blocks(self, name: str) -> dict[str, int]:
        """Blocks staged but not committed (an interrupted upload), id -> size; {} when there are none."""
        return self.ops.uncommitted_blocks(name)

    def commit(self, name: str, block_ids: list[str], md5: bytes, mtime_ns: int) -> None:
        self.ops.commit(name, block_ids, md5, mtime_ns)

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        """Only the mtime differs: rewrite the metadata, keep the content (and its MD5 and type)."""
        self.ops.set_mtime(name, mtime_ns)

    def delete(self, name: str) -> None:
        self.ops.delete(name)

    def stream_range(self, name: str, offset: int, length: int, etag: str | None,
                     sink: Callable[[int, bytes], None]) -> None:
        """Hand bytes [offset, offset+length) to ``sink(position, piece)`` as they arrive."""
        self.ops.stream_range(name, offset, length, etag, sink)


__all__ = ["Storage", "LIST_PAGE"]
