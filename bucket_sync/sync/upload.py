"""Upload one local file: a single Put Blob when small, else staged blocks with deterministic ids.

Block ids derive from the file's size, mtime and the block size, so re-running an interrupted upload of an
unchanged file finds the blocks already staged (``get_block_list("uncommitted")``) and commits them
instead of sending them again; a changed file gets new ids and starts over. The whole-file MD5 is computed
while reading (each block is read once) and set as Content-MD5 on commit, with the piece digest of the same
bytes (piece_digest.py: each block's SHA-256, hashed by the thread that sends it) that lets a download of
the blob verify it on every core.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from concurrent.futures import Executor, Future, wait
from typing import BinaryIO, Callable

from ..errors import BucketSyncError, LocalFileError
from .bandwidth import RateLimiter, Unlimited
from .budget import ByteBudget, choose_block_size
from .model import BlobExtras, LocalFile
from .piece_digest import digest_of
from .remote import Remote

BLOCK_ID_VERSION = "bs1"


def block_id(fingerprint: str, index: int) -> str:
    # Equal length for every block of a blob, as Azure requires.
    return f"{BLOCK_ID_VERSION}-{fingerprint}-{index:06d}"


def file_fingerprint(f: LocalFile, block_size: int) -> str:
    raw = f"{f.size}:{f.mtime_ns}:{block_size}".encode()
    return base64.b32encode(hashlib.sha256(raw).digest()[:10]).decode().lower()


def check_unchanged(f: LocalFile, st: os.stat_result, when: str) -> None:
    if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
        raise LocalFileError(f"{f.key}: the file changed {when}; not uploaded, the next run will retry it")


def check_still_there(f: LocalFile, fh: BinaryIO, when: str) -> None:
    """The open file is unchanged and still the one at ``f.path``: an open handle keeps reading a file
    that was deleted or replaced (editors save by rename), which fstat alone cannot tell."""
    st = os.fstat(fh.fileno())
    check_unchanged(f, st, when)
    try:
        now = os.stat(f.path)
    except FileNotFoundError:
        raise LocalFileError(f"{f.key}: the file vanished {when}; not uploaded") from None
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        raise LocalFileError(f"{f.key}: the file was replaced {when}; not uploaded, the next run will retry it")


def file_md5(path: str, chunk: int = 4 * 1024 * 1024) -> bytes:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            h.update(data)
    return h.digest()


class Uploader:
    def __init__(self, storage: Remote, block_pool: Executor, budget: ByteBudget, *,
                 block_size: int | None, on_bytes: Callable[[int], None], cancel: threading.Event,
                 limiter: RateLimiter | Unlimited = Unlimited(), extras: BlobExtras = BlobExtras()) -> None:
        self.storage = storage
        self.extras = extras
        self.limiter = limiter
        self.block_pool = block_pool
        self.budget = budget
        self.block_size = block_size
        self.on_bytes = on_bytes
        self.cancel = cancel

    def upload(self, f: LocalFile, name: str) -> int:
        """Upload ``f`` as blob ``name``; return the bytes actually sent."""
        block_size = choose_block_size(f.size, self.block_size)
        try:
            if f.size <= block_size:
                return self._single(f, name)
            return self._blocks(f, name, block_size)
        except FileNotFoundError:
            raise LocalFileError(f"{f.key}: the file vanished before it could be uploaded") from None
        except PermissionError:
            raise LocalFileError(f"{f.key}: permission denied reading the file", hint="check the file's permissions") from None
        except OSError as exc:
            raise LocalFileError(f"{f.key}: cannot read: {exc.strerror or exc}") from None

    def _single(self, f: LocalFile, name: str) -> int:
        with self.budget.hold(f.size):
            with open(f.path, "rb") as fh:
                check_unchanged(f, os.fstat(fh.fileno()), "since the scan")
                data = fh.read(f.size + 1)
                check_still_there(f, fh, "while it was read")
            if len(data) != f.size:
                raise LocalFileError(f"{f.key}: the file changed size while it was read; the next run will retry it")
            md5 = hashlib.md5(data).digest()
            self.limiter.consume(len(data))
            if self.cancel.is_set():  # stopped while --bwlimit held it back
                raise BucketSyncError(f"{f.key}: interrupted before it was sent; the next run uploads it")
            self.storage.put(name, data, md5, f.mtime_ns, self.extras)
        self.on_bytes(f.size)
        return f.size

    def _blocks(self, f: LocalFile, name: str, block_size: int) -> int:
        fingerprint = file_fingerprint(f, block_size)
        count = -(-f.size // block_size)
        ids = [block_id(fingerprint, i) for i in range(count)]
        staged = self.storage.uncommitted_blocks(name)
        md5 = hashlib.md5()
        pieces = [b""] * count  # each block's SHA-256, filled in by whoever has its bytes
        futures: list[Future[None]] = []
        failed = threading.Event()
        sent = 0
        with open(f.path, "rb") as fh:
            check_unchanged(f, os.fstat(fh.fileno()), "since the scan")
            for i in range(count):
                if failed.is_set() or self.cancel.is_set():
                    break
                length = min(block_size, f.size - i * block_size)
                taken = self.budget.acquire(length)
                try:
                    data = fh.read(length)
                except BaseException:
                    self.budget.release(taken)
                    raise
                if len(data) != length:
                    self.budget.release(taken)
                    raise LocalFileError(f"{f.key}: the file shrank while it was read; the next run will retry it")
                md5.update(data)
                if staged.get(ids[i]) == length:
                    pieces[i] = hashlib.sha256(data).digest()
                    self.budget.release(taken)
                    self.on_bytes(length)  # already there from an interrupted run: progress, not traffic
                    continue
                sent += length
                futures.append(self.block_pool.submit(self._stage, name, ids[i], data, taken, failed, pieces, i))
            wait(futures)
            for fut in futures:
                error = fut.exception()
                if error is not None:
                    raise error
            if self.cancel.is_set():
                raise BucketSyncError(f"{f.key}: interrupted; staged blocks are kept and the next run resumes")
            check_still_there(f, fh, "while it was read")
        if not all(pieces):  # every block was sent or found staged, so this cannot happen: never trust it
            raise BucketSyncError(f"{f.key}: internal error: a block's digest is missing; not committed")
        whole = md5.digest()
        self.storage.commit(name, ids, whole, f.mtime_ns, self.extras,
                            digest=digest_of(block_size, whole, pieces).text())
        return sent

    def _stage(self, name: str, bid: str, data: bytes, taken: int, failed: threading.Event,
               pieces: list[bytes], index: int) -> None:
        try:
            if failed.is_set() or self.cancel.is_set():
                return
            pieces[index] = hashlib.sha256(data).digest()  # the GIL is let go: blocks hash in parallel
            self.limiter.consume(len(data))
            if self.cancel.is_set():
                return
            self.storage.stage_block(name, bid, data)
            self.on_bytes(len(data))
        except BaseException:
            failed.set()
            raise
        finally:
            self.budget.release(taken)
