"""Positional writes and reads that work everywhere: ``os.pwrite`` / ``os.pread`` where the platform has them
(Linux, macOS, BSD), else a lock per file descriptor around ``os.lseek`` + ``os.write`` / ``os.read``
(Windows), so several threads can write ranges of one file, and read it back, at the same time.

Same contract as the os functions: at most ``len(data)`` bytes written (or ``n`` read), the count written
(or the bytes read) returned, a short count possible, so callers loop. The file offset of ``fd`` is left
unspecified by the fallback: a descriptor used here must only be used through these two functions.

``BINARY`` is ``os.O_BINARY`` on Windows (0 elsewhere): ``os.open`` there defaults to text mode, which
would turn every ``\\n`` written into ``\\r\\n``; a descriptor written here must be opened with it.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

BINARY: int = getattr(os, "O_BINARY", 0)

_locks: dict[int, threading.Lock] = {}  # fd -> its lock (a reused fd number reuses a lock: harmless)
_locks_lock = threading.Lock()


def _lock_for(fd: int) -> threading.Lock:
    lock = _locks.get(fd)
    if lock is None:
        with _locks_lock:
            lock = _locks.setdefault(fd, threading.Lock())
    return lock


def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    """Write ``data`` at ``offset`` of ``fd``; the number of bytes written (possibly fewer)."""
    # looked up per call, so tests can take it away
    native: Callable[[int, bytes | bytearray | memoryview, int], int] | None = getattr(os, "pwrite", None)
    if native is not None:
        return native(fd, data, offset)
    with _lock_for(fd):
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, data)


def pread(fd: int, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes of ``fd`` from ``offset`` (fewer at the end of the file, b"" past it)."""
    native: Callable[[int, int, int], bytes] | None = getattr(os, "pread", None)
    if native is not None:
        return native(fd, n, offset)
    with _lock_for(fd):
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, n)


def pread_into(fd: int, buffer: bytearray | memoryview, offset: int) -> int:
    """Read into ``buffer`` from ``offset`` of ``fd``; the number of bytes read (fewer at the end of the
    file). ``os.preadv`` where it exists fills a buffer the caller reuses: no allocation (and no page
    faults) per read; elsewhere a ``pread`` copied in."""
    if hasattr(os, "preadv"):  # not on Windows
        return os.preadv(fd, [buffer], offset)
    data = pread(fd, len(buffer), offset)
    memoryview(buffer)[:len(data)] = data
    return len(data)
