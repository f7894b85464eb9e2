"""Explicit bounds: bytes buffered in memory across every file and block in flight."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator

MiB = 1024 * 1024


class ByteBudget:
    """A counting semaphore in bytes. A single request larger than the whole budget is clamped to it,
    so it still runs (alone) instead of deadlocking."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._cond = threading.Condition()

    def acquire(self, n: int) -> int:
        n = min(n, self.total)
        with self._cond:
            while self._free < n:
                self._cond.wait()
            self._free -= n
        return n

    def release(self, n: int) -> None:
        n = min(n, self.total)
        with self._cond:
            self._free += n
            self._cond.notify_all()

    @contextmanager
    def hold(self, n: int) -> Iterator[None]:
        taken = self.acquire(n)
        try:
            yield
        finally:
            self.release(taken)


# Azure: at most 50,000 blocks per blob, a block at most 4000 MiB.
MAX_BLOCKS = 50_000
MAX_BLOCK_SIZE = 4000 * MiB
DEFAULT_BLOCK_SIZE = 8 * MiB


def choose_block_size(file_size: int, requested: int | None = None) -> int:
    """The requested (or default) block size, raised when the file would need more than 50,000 blocks."""
    block = requested or DEFAULT_BLOCK_SIZE
    needed = -(-file_size // MAX_BLOCKS)
    if needed > block:
        block = -(-needed // MiB) * MiB  # round up to whole MiB
    return min(block, MAX_BLOCK_SIZE)


# A download's ranges: fewer, longer requests for big files (each request costs the service a look-up of the
# blob: Azurite, 1 GiB among 2,049 blobs, spent 1.96 s of CPU serving 8 MiB ranges), but never so long
# that a file spreads over fewer than ``streams`` requests while it could use them. Memory does not grow
# with the range: a request holds one network read (download.py).
MAX_RANGE = 32 * MiB


def choose_range_size(file_size: int, requested: int | None, streams: int) -> int:
    """--block-size when given (a download's range size too), else between 8 and 32 MiB: the file split
    across ``streams`` requests, in whole MiB."""
    if requested:
        return choose_block_size(file_size, requested)
    per_stream = -(-file_size // max(1, streams))
    return max(DEFAULT_BLOCK_SIZE, min(MAX_RANGE, -(-per_stream // MiB) * MiB))


_M_MMAP_THRESHOLD = -3  # glibc mallopt() parameter
BIG_BUFFER = 4 * MiB


def return_big_buffers_to_os() -> None:
    """Have glibc mmap buffers of BIG_BUFFER or more, so each goes back to the OS when freed.

    By default glibc raises its mmap threshold after the first large free, so the 8 MiB file and block
    buffers of later transfers come from per-thread heaps that keep the memory: 16 threads uploading
    8 MiB files peaked at 185 MB RSS for a 64 MiB budget (measured), 121 MB with this. Elsewhere
    (macOS, Windows, musl) this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    # ctypes is imported here, as in storage/list_ahead.py: a no-op never transfers. The process' own symbols
    # hold libc's mallopt: ctypes.util.find_library("c") ran `ldconfig -p` in a subprocess on every run.
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, BIG_BUFFER)
    except (OSError, AttributeError):
        pass
