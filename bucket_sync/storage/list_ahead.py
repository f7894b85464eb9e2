"""How far the listing runs ahead of its consumer: pages asked for or parsed and not yet handed on.

Why: the diff takes blobs one at a time, while the listing fetches pages of up to 5,000 in many folders at
once. Holding whole folders until their turn made memory follow the tree's shape (32 top-level folders of
10,000 blobs were 260 MB; a flat folder of 200,000 was 410 MB). Here every request is admitted against one
budget, counted in blobs: a request counts the size of its folder's last page (a folder's first request,
the largest of the last folders' first pages: a full page until one is known), corrected when the page
arrives, and it stays counted until the consumer has taken the page. So what waits in memory is about
``blobs`` listed blobs, whatever the tree.

Order: requests are admitted in key order (a folder's stream carries its place in it), so the folders the
consumer needs next are listed first. The folder the consumer is taking from (the head) may always have two
pages outstanding, budget or not: it never waits for folders further on, so the listing cannot stall.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections import Counter, deque
from typing import Any, Iterator, cast

from ..sync.waiting import SLICE_S

PAGES_PER_FOLDER = 4  # outstanding at most, for a folder other than the head: the budget is shared out
_M_ARENA_MAX = -8  # glibc's mallopt parameter

log = logging.getLogger(__name__)
_arenas_set = False


def fewer_malloc_arenas() -> None:
    """Two malloc arenas for the process, under glibc, and in the bucket-sync command only.

    Why: glibc gives each thread that allocates its own arena (up to 8 per CPU), and an arena keeps what it
    held at its peak. Pages are read and parsed in up to 64 listing threads, so a 250,000-blob no-op ended
    at 141 MB resident for 23 MB of Python objects at most; with two arenas, 96 MB. The Python API leaves
    the process' allocator alone (parse_pool._main_is_ours)."""
    global _arenas_set
    if _arenas_set or not sys.platform.startswith("linux"):
        return
    _arenas_set = True
    from .parse_pool import _main_is_ours

    if not _main_is_ours():
        return
    import ctypes  # here: only a Linux command run needs it, and every listing imports this module

    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError) as exc:  # not glibc (musl has no mallopt arenas)
        log.debug("mallopt not available: %s", exc)


# What a producer hands on: a page's blobs and folders, and the cost it was admitted at (None: free).
Chunk = tuple[list[Any], list[str], int | None]

class Stopped(Exception):
    """The stream is no longer wanted (the listing ended, or its folder turned out to be absent)."""


class _End:
    pass


END = _End()


class Stream:
    """One listing (a folder, flat or one level) on its way to the consumer: chunks in key order."""

    def __init__(self, folder: str, delimiter: str | None, order: int) -> None:
        self.folder = folder
        self.delimiter = delimiter
        self.order = order  # its place in key order: lower is needed sooner
        self.chunks: queue.SimpleQueue[Chunk | BaseException | object] = queue.SimpleQueue()  # (blobs, folders, cost), END or an exception
        self.outstanding = 0  # pages admitted and not yet released
        self.estimate: int | None = None  # blobs its next page may bring (its last page's)
        self.stopped = False

    def take(self, budget: "Budget") -> Iterator[tuple[list[Any], list[str]]]:
        """The chunks as the producer hands them on, each released once the caller is done with it."""
        while True:
            try:
                item = self.chunks.get(timeout=SLICE_S)  # in slices: Ctrl+C must get through (waiting.py)
            except queue.Empty:
                continue
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            blobs, folders, cost = cast(Chunk, item)  # neither END nor an error: a chunk
            try:
                yield blobs, folders
            finally:
                if cost is not None:
                    budget.release(self, cost)


class Budget:
    def __init__(self, blobs: int, first_estimate: int) -> None:
        self.limit = blobs
        self._cond = threading.Condition()
        self.used = 0  # blobs of pages admitted and not released (estimated until they arrive)
        self.pages = 0
        self.most_pages = 0  # the most pages outstanding at once (tests read it)
        self.head: Stream | None = None
        self.closed = False
        self._waiting: Counter[int] = Counter()  # order -> requests waiting
        self._firsts: deque[int] = deque(maxlen=16)  # the sizes of the last folders' first pages
        self._first_estimate = first_estimate

    def estimate(self, stream: Stream) -> int:
        if stream.estimate is not None:
            return stream.estimate
        with self._cond:
            return max(1, max(self._firsts)) if self._firsts else self._first_estimate

    def admit(self, stream: Stream, cost: int) -> None:
        """Wait until a request of ``cost`` blobs may go (Stopped when the stream is no longer wanted)."""
        with self._cond:
            self._waiting[stream.order] += 1
            try:
                while not self._may(stream, cost):
                    self._cond.wait(SLICE_S)
            finally:
                self._waiting[stream.order] -= 1
                if not self._waiting[stream.order]:
                    del self._waiting[stream.order]
            self.used += cost
            self.pages += 1
            self.most_pages = max(self.most_pages, self.pages)
            stream.outstanding += 1

    def _may(self, stream: Stream, cost: int) -> bool:
        if self.closed or stream.stopped:
            raise Stopped
        if stream is self.head and stream.outstanding < 2:
            return True
        if self.used + cost > self.limit:
            return False
        if stream is not self.head and stream.outstanding >= PAGES_PER_FOLDER:
            return False
        return min(self._waiting) >= stream.order  # nobody needed sooner is waiting

    def arrived(self, stream: Stream, cost: int, actual: int, first: bool) -> int:
        """A page came back with ``actual`` entries: count those instead of the estimate."""
        with self._cond:
            self.used += actual - cost
            stream.estimate = actual
            if first and stream.delimiter is None:  # a level's first page says little of its folders'
                self._firsts.append(actual)
            if actual < cost:
                self._cond.notify_all()
        return actual

    def release(self, stream: Stream, cost: int) -> None:
        with self._cond:
            self.used -= cost
            self.pages -= 1
            stream.outstanding -= 1
            self._cond.notify_all()

    def lead(self, stream: Stream | None) -> None:
        """The consumer now takes from ``stream``."""
        with self._cond:
            self.head = stream
            self._cond.notify_all()

    def stop(self, stream: Stream) -> None:
        """No more of ``stream``: its producer ends at its next request, and what it had listed is let go."""
        with self._cond:
            stream.stopped = True
            self._cond.notify_all()
        self.drain(stream)

    def drain(self, stream: Stream) -> None:
        while True:
            try:
                item = stream.chunks.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, tuple) and item[2] is not None:
                self.release(stream, item[2])

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
