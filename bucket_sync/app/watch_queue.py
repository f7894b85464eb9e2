"""Watch mode's pending-change queue: filesystem events become debounced, stability-checked work.

Events are hints (watchdog's own advice): a path that saw an event is re-checked once it has been quiet
for the debounce window, and only the state found then counts. A file is *ready* when its size and mtime
are the same as at its last event (nothing wrote to it for a whole window) and, when the observer reports
close-for-write (inotify), no write was seen since the last close. Everything here takes the clock as an
argument, so the unit tests drive it without sleeping.
"""

from __future__ import annotations

import heapq
import os
import stat
import threading
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from ..retry import WATCH_OUTAGE


class Kind(Enum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"
    OTHER = "other"  # device, socket, pipe
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Sig:
    """What a path looked like at one moment: enough to tell that a file is still being written."""

    kind: Kind
    size: int = 0
    mtime_ns: int = 0

    @classmethod
    def of(cls, path: str, *, follow_symlinks: bool = False) -> "Sig":
        try:
            st = os.stat(path) if follow_symlinks else os.lstat(path)
        except FileNotFoundError:
            return cls(Kind.MISSING)
        except NotADirectoryError:
            return cls(Kind.MISSING)
        except OSError:
            return cls(Kind.OTHER)  # unreadable: the upload reports why
        mode = st.st_mode
        if stat.S_ISREG(mode):
            return cls(Kind.FILE, st.st_size, st.st_mtime_ns)
        if stat.S_ISDIR(mode):
            return cls(Kind.DIR)
        if stat.S_ISLNK(mode):
            return cls(Kind.LINK)
        return cls(Kind.OTHER)


class Verdict(Enum):
    READY = "ready"  # a stable regular file: upload (the diff may still skip it)
    WAIT = "wait"  # changed during the window, or written and not yet closed: check again later
    GONE = "gone"  # nothing there now: a deletion (acted on only with --delete)
    FOLDER = "folder"  # a folder (created or moved in): scan it
    SKIP = "skip"  # a symbolic link or special file: reported, not uploaded


@dataclass
class Pending:
    key: str
    sig: Sig  # as seen at the last event or check
    changed_at: float  # clock time of the last event, or of the last check that saw a change
    due: float
    dirty: bool = False  # a write was seen and no close-for-write since (inotify only)
    was_dir: bool = False  # an event said this path was a folder: a deletion covers everything under it
    attempts: int = 0  # failed uploads in a row (for the retry backoff and the give-up limit)


def verdict(p: Pending, now_sig: Sig, now: float, *, debounce_s: float, open_grace_s: float) -> Verdict:
    """Decide what a due path is, given what it looks like now."""
    if now_sig.kind is Kind.MISSING:
        return Verdict.GONE
    if now_sig.kind is Kind.DIR:
        return Verdict.FOLDER
    if now_sig.kind in (Kind.LINK, Kind.OTHER):
        return Verdict.SKIP
    if now_sig != p.sig or now - p.changed_at < debounce_s:
        return Verdict.WAIT
    if p.dirty and now - p.changed_at < open_grace_s:
        # Written and never closed: a writer that pauses longer than the debounce window. Held until the
        # close arrives, or the grace runs out (a missed close event must not hold a file for ever).
        return Verdict.WAIT
    return Verdict.READY


class ChangeQueue:
    """Paths waiting for their re-check, keyed by blob key; thread-safe (the observer thread feeds it).

    Many events on one path collapse into one entry; each event pushes its due time back by the debounce
    window. A heap of (due, key) finds what is due; stale heap entries are skipped when popped.
    """

    def __init__(self, *, debounce_s: float, clock: Callable[[], float], open_grace_s: float | None = None) -> None:
        self.debounce_s = debounce_s
        self.open_grace_s = open_grace_s if open_grace_s is not None else max(30.0, 10 * debounce_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, Pending] = {}
        self._heap: list[tuple[float, str]] = []
        self.wakeup = threading.Event()
        # Clock time the queue last went from empty to non-empty (None while empty): /healthz measures
        # "fallen behind" from here, not from the last upload, which may be a quiet week ago.
        self.busy_since: float | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def touch(self, key: str, sig: Sig, *, wrote: bool = False, closed: bool = False, was_dir: bool = False,
              delay: float | None = None) -> None:
        """An event on ``key`` (or a scan found it): check it again after the debounce window."""
        now = self._clock()
        due = now + (self.debounce_s if delay is None else delay)
        with self._lock:
            p = self._items.get(key)
            if p is None:
                if not self._items:
                    self.busy_since = now
                p = self._items[key] = Pending(key, sig, now, due)
            else:
                if sig != p.sig:
                    p.changed_at = now
                    p.attempts = 0  # a new version of the file: a fresh set of upload attempts
                p.sig = sig
                p.due = due
            if wrote:
                p.changed_at = now
                p.dirty = True
            if closed:
                p.changed_at = now
                p.dirty = False
            p.was_dir = p.was_dir or was_dir
            heapq.heappush(self._heap, (p.due, key))
        self.wakeup.set()

    def requeue(self, p: Pending, *, delay: float, sig: Sig | None = None, changed: bool = False) -> None:
        """Put a checked entry back (still changing, or its upload failed), unless a newer event did."""
        now = self._clock()
        with self._lock:
            newer = self._items.get(p.key)
            if newer is not None:  # an event arrived while it was being handled: that entry wins
                newer.was_dir = newer.was_dir or p.was_dir
                return
            if sig is not None:
                p.sig = sig
            if changed:
                p.changed_at = now
            p.due = now + delay
            if not self._items:
                self.busy_since = now
            self._items[p.key] = p
            heapq.heappush(self._heap, (p.due, p.key))

    def take_due(self, limit: int = 1000) -> list[Pending]:
        """Remove and return up to ``limit`` entries whose due time has come, earliest first."""
        now = self._clock()
        out: list[Pending] = []
        with self._lock:
            while self._heap and len(out) < limit:
                due, key = self._heap[0]
                if due > now:
                    break
                heapq.heappop(self._heap)
                p = self._items.get(key)
                if p is None or p.due != due:
                    continue  # superseded by a later event
                del self._items[key]
                out.append(p)
            if not self._items:
                self.busy_since = None
        return out

    def next_due(self) -> float | None:
        with self._lock:
            while self._heap:
                due, key = self._heap[0]
                p = self._items.get(key)
                if p is not None and p.due == due:
                    return due
                heapq.heappop(self._heap)
        return None


def retry_delay(attempts: int) -> float:
    """Backoff for a failed upload or an unreachable storage: 1, 2, 4 ... seconds, capped (retry.WATCH_OUTAGE)."""
    return WATCH_OUTAGE.step(attempts)
