"""Download one blob: into ``<name>.bucket-sync-partial``, MD5-checked, mtime set, then renamed.

A file never appears under its final name until it is complete and verified; a killed run leaves at most a
partial file, which the next run overwrites. Large blobs are fetched as ranges in parallel, all pinned to
the ETag seen in the listing, so a blob that changes mid-download fails instead of mixing two versions.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from concurrent.futures import Executor, Future, wait
from typing import Callable

from ..errors import BucketSyncError, LocalFileError
from .bandwidth import RateLimiter, Unlimited
from .budget import ByteBudget, choose_block_size
from .keys import local_path_for
from .model import RemoteBlob
from .scan import PARTIAL_SUFFIX
from .storage import Storage
from .upload import file_md5


# azure-storage-blob materialises a ranged GET as a list of pieces, then their join, then a copy for
# readall(): each byte in flight costs about three in memory, and the budget has to count that.
IN_MEMORY_COPIES = 3


class Downloader:
    def __init__(self, storage: Storage, chunk_pool: Executor, budget: ByteBudget, *,
                 chunk_size: int | None, on_bytes: Callable[[int], None], cancel: threading.Event,
                 limiter: RateLimiter | Unlimited = Unlimited()) -> None:
        self.storage = storage
        self.limiter = limiter
        self.chunk_pool = chunk_pool
        self.budget = budget
        self.chunk_size = chunk_size
        self.on_bytes = on_bytes
        self.cancel = cancel

    def download(self, blob: RemoteBlob, root: str) -> int:
        path = local_path_for(root, blob.key)  # raises UnsafeBlobNameError for hostile names
        partial = path + PARTIAL_SUFFIX
        try:
            if os.path.isdir(path):
                raise LocalFileError(f"{blob.key}: a folder is in the way of the downloaded file")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            chunk = choose_block_size(blob.size, self.chunk_size)
            if blob.size <= chunk:
                digest = self._single(blob, partial)
            else:
                self._ranges(blob, partial, chunk)
                digest = file_md5(partial) if blob.md5 else None
            if blob.md5 and digest != blob.md5:
                raise BucketSyncError(f"{blob.key}: downloaded content does not match the blob's Content-MD5; not kept")
            os.utime(partial, ns=(blob.mtime_ns, blob.mtime_ns))
            os.replace(partial, path)
        except BaseException as exc:
            _remove_quietly(partial)
            if isinstance(exc, OSError):
                raise _local_error(blob.key, exc) from None
            raise
        return blob.size

    def _single(self, blob: RemoteBlob, partial: str) -> bytes:
        with self.budget.hold(blob.size * IN_MEMORY_COPIES):
            self.limiter.consume(blob.size)
            data = self.storage.read_range(blob.name, 0, blob.size, blob.etag) if blob.size else b""
            with open(partial, "wb") as fh:
                fh.write(data)
        self.on_bytes(blob.size)
        return hashlib.md5(data).digest()

    def _ranges(self, blob: RemoteBlob, partial: str, chunk: int) -> None:
        failed = threading.Event()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, blob.size)
            futures: list[Future] = []
            for offset in range(0, blob.size, chunk):
                if failed.is_set() or self.cancel.is_set():
                    break
                length = min(chunk, blob.size - offset)
                taken = self.budget.acquire(length * IN_MEMORY_COPIES)  # bounds chunks queued and in flight
                futures.append(self.chunk_pool.submit(self._fetch, blob, fd, offset, length, taken, failed))
            wait(futures)
            for fut in futures:
                if fut.exception() is not None:
                    raise fut.exception()
            if self.cancel.is_set():
                raise BucketSyncError(f"{blob.key}: interrupted")
        finally:
            os.close(fd)

    def _fetch(self, blob: RemoteBlob, fd: int, offset: int, length: int, taken: int, failed: threading.Event) -> None:
        try:
            if failed.is_set() or self.cancel.is_set():
                return
            self.limiter.consume(length)
            data = self.storage.read_range(blob.name, offset, length, blob.etag)
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
            self.on_bytes(length)
        except BaseException:
            failed.set()
            raise
        finally:
            self.budget.release(taken)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _local_error(key: str, exc: OSError) -> LocalFileError:
    if exc.errno == errno.ENOSPC:
        return LocalFileError(f"{key}: disk full while writing; nothing was left under the final name",
                              hint="free some space and run again")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LocalFileError(f"{key}: permission denied writing {exc.filename or 'the file'}")
    return LocalFileError(f"{key}: cannot write locally: {exc.strerror or exc}")
