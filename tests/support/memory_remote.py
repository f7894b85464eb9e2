"""A container in memory: ``bucket_sync.sync.remote.Remote`` (what the engine writes and reads through),
plus the listing and look-ups the planner's callers use, with the same observable rules as Azure Blob
Storage on the points the engine relies on (tests/functional/test_remote_conformance.py runs one suite
against this and against ``Storage`` on Azurite):

- a blob carries its Content-MD5 and the ``mtime`` (and ``sha256pieces``) metadata as text (sync/mtime.py's
  format), so a listing gives back what a real one would, including ``mtime_from_metadata``;
- staged blocks stay uncommitted until ``commit`` names them; committing clears the other staged ones;
- every write (content or metadata) gives the blob a new ETag; a ranged read pinned to an old one fails
  as a 412 does (TransientError);
- deleting a blob that is not there succeeds.

It lives in tests/support, not in the package: nothing a user runs needs it (the Python API takes a
remote location, not a Remote), and the rules it copies are the tests' claims about storage.

Faults: ``fail(op, error, after=n, times=k)`` makes the (n+1)th and next k-1 calls of ``op`` raise
``error``; ``calls`` counts every call by operation (how many blocks a resumed upload sent, say).
``open()`` returns the remote itself, so it also stands in for a ``ContainerRef`` in run_sync.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from bucket_sync.errors import StorageError, TransientError
from bucket_sync.sync.access import Access
from bucket_sync.sync.keys import join_blob_name, key_from_blob_name
from bucket_sync.sync.blob_metadata import metadata_for
from bucket_sync.sync.model import BlobExtras, RemoteBlob
from bucket_sync.sync.mtime import format_mtime, parse_mtime
from bucket_sync.sync.piece_digest import PIECES_KEY

PIECE = 64 * 1024  # a ranged read reaches its sink in pieces, as a network read does
EPOCH_NS = 1_700_000_000 * 1_000_000_000  # Last-Modified of the first write; one second more per write


@dataclass
class _Blob:
    data: bytes
    md5: bytes | None
    metadata: dict[str, str]
    etag: str
    last_modified_ns: int
    content_type: str | None = None


@dataclass
class _Fault:
    error: BaseException
    after: int
    times: int
    seen: int = 0


@dataclass
class MemoryRemote:
    sp: str = "racwdl"  # what its "SAS" grants (access()); storage itself refuses nothing
    blobs: dict[str, _Blob] = field(default_factory=dict)
    staged: dict[str, dict[str, bytes]] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    closed: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = {}
        self._writes = itertools.count(1)

    # -- test controls -----------------------------------------------------------------------------
    def fail(self, op: str, error: BaseException, *, after: int = 0, times: int = 1) -> None:
        self._faults.setdefault(op, []).append(_Fault(error, after, times))

    def content(self, name: str) -> bytes:
        return self.blobs[name].data

    def names(self) -> list[str]:
        return sorted(self.blobs)

    def _call(self, op: str) -> None:
        with self._lock:
            self.calls[op] += 1
            for fault in self._faults.get(op, []):
                fault.seen += 1
                if fault.after < fault.seen <= fault.after + fault.times:
                    raise fault.error

    def _stamp(self) -> tuple[str, int]:
        n = next(self._writes)
        return f'"0x{0x8DC000000000000 + n:X}"', EPOCH_NS + n * 1_000_000_000

    # -- what a ContainerRef and a Storage also offer ---------------------------------------------------
    def open(self, **_options) -> "MemoryRemote":
        return self

    def close(self) -> None:
        self.closed = True

    def access(self) -> Access:
        return Access.from_sp(self.sp)

    read_access = access

    # -- listing and look-ups (planning) ---------------------------------------------------------
    def get(self, name: str, key: str) -> RemoteBlob | None:
        self._call("get")
        with self._lock:
            blob = self.blobs.get(name)
            return None if blob is None else _remote_blob(key, name, blob)

    def iter_list(self, prefix: str, hints: Iterable[str] = (),
                  top_folder_ok: Callable[[str], bool] | None = None) -> Iterator[RemoteBlob]:
        self._call("list")
        with self._lock:
            found = []
            for name in sorted(self.blobs):
                key = key_from_blob_name(prefix, name)
                if key is None or (top_folder_ok is not None and "/" in key and not top_folder_ok(key.split("/", 1)[0])):
                    continue
                found.append(_remote_blob(key, name, self.blobs[name]))
        # Sorted by key, as the diff needs (the names share the prefix, so their order is the keys').
        yield from found

    def list(self, prefix: str) -> list[RemoteBlob]:
        return list(self.iter_list(prefix))

    def look_up_pairs(self, prefix: str, keys: Iterable[str]) -> Iterator[tuple[str, RemoteBlob | None]]:
        for key in keys:
            yield key, self.get(join_blob_name(prefix, key), key)

    def look_up_each(self, prefix: str, keys: Iterable[str]) -> Iterator[RemoteBlob]:
        for _key, blob in self.look_up_pairs(prefix, keys):
            if blob is not None:
                yield blob

    # -- Remote: writes ----------------------------------------------------------------------------
    def put(self, name: str, data: bytes, md5: bytes, mtime_ns: int, extras: BlobExtras = BlobExtras()) -> None:
        self._call("put")
        with self._lock:
            etag, now = self._stamp()
            self.blobs[name] = _Blob(bytes(data), md5, metadata_for(mtime_ns, extras), etag, now, extras.content_type)
            self.staged.pop(name, None)  # Put Blob discards uncommitted blocks

    def stage_block(self, name: str, block_id: str, data: bytes) -> None:
        self._call("stage_block")
        with self._lock:
            self.staged.setdefault(name, {})[block_id] = bytes(data)

    def uncommitted_blocks(self, name: str) -> dict[str, int]:
        self._call("uncommitted_blocks")
        with self._lock:
            return {bid: len(data) for bid, data in self.staged.get(name, {}).items()}

    def commit(self, name: str, block_ids: list[str], md5: bytes, mtime_ns: int,
               extras: BlobExtras = BlobExtras(), *, digest: str | None = None) -> None:
        self._call("commit")
        with self._lock:
            staged = self.staged.get(name, {})
            missing = [b for b in block_ids if b not in staged]
            if missing:
                raise StorageError(f"write {name!r}: storage answered 400 InvalidBlockList")
            etag, now = self._stamp()
            data = b"".join(staged[b] for b in block_ids)
            self.blobs[name] = _Blob(data, md5, metadata_for(mtime_ns, extras, digest), etag, now, extras.content_type)
            del self.staged[name]

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        self._call("set_mtime")
        with self._lock:
            blob = self.blobs.get(name)
            if blob is None:
                raise StorageError(f"metadata {name!r}: not found (BlobNotFound)")
            blob.metadata = {**blob.metadata, "mtime": format_mtime(mtime_ns)}
            blob.etag, blob.last_modified_ns = self._stamp()

    def delete(self, name: str) -> None:
        self._call("delete")
        with self._lock:
            self.blobs.pop(name, None)  # absent: the goal is reached
            self.staged.pop(name, None)

    # -- Remote: reads -------------------------------------------------------------------------------
    def stream_range(self, name: str, offset: int, length: int, etag: str | None,
                     sink: Callable[[int, bytes], None]) -> None:
        self._call("stream_range")
        with self._lock:
            blob = self.blobs.get(name)
            if blob is None:
                raise StorageError(f"read {name!r}: not found (BlobNotFound)")
            if etag and etag != blob.etag:
                raise TransientError(f"read {name!r}: the blob changed while it was being read; it will be retried")
            data = blob.data[offset:offset + length]
        if len(data) != length:
            raise StorageError(f"read {name!r}: storage answered 416 InvalidRange")
        for at in range(0, length, PIECE):
            sink(offset + at, data[at:at + PIECE])


def _remote_blob(key: str, name: str, blob: _Blob) -> RemoteBlob:
    mtime = parse_mtime(blob.metadata.get("mtime"))
    return RemoteBlob(key=key, name=name, size=len(blob.data),
                      mtime_ns=mtime if mtime is not None else blob.last_modified_ns,
                      md5=blob.md5, etag=blob.etag, mtime_from_metadata=mtime is not None,
                      pieces=blob.metadata.get(PIECES_KEY))


__all__ = ["MemoryRemote"]
