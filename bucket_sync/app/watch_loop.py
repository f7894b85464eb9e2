"""Watch mode's loop and its timing: the first reconcile, then changed paths as they fall due and a full
reconcile every --rescan seconds, until stopped.

Storage trouble never ends the loop: a batch that could not reach storage stays queued and the next
attempt is pushed back (``Backoff``). What does end it: ``stopping`` (SIGINT/SIGTERM), and the
authorization failures retrying cannot fix (``AuthPolicy``); the loop returns that error.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Callable

from ..errors import BucketSyncError
from ..redact import redact
from ..retry import WATCH_OUTAGE
from .watch_auth import AuthPolicy
from .watch_batch import BatchRunner
from .watch_changes import ChangeHandler
from .watch_monitor import Scope, Trouble, WatchMonitor
from .watch_observer import FolderObserver
from .watch_queue import ChangeQueue
from .watch_reconcile import Reconciler

log = logging.getLogger("bucket_sync.watch")

BATCH_LIMIT = 1000  # paths re-checked per batch: bounds memory and keeps status lines and stops prompt


class Backoff:
    """Storage-wide backoff: consecutive failed batches push the next attempt back; a success resets."""

    def __init__(self, clock: Callable[[], float], *, base_s: float = WATCH_OUTAGE.base_s,
                 max_s: float = WATCH_OUTAGE.cap_s) -> None:
        self._clock = clock
        self._policy = replace(WATCH_OUTAGE, base_s=base_s, cap_s=max_s)
        self.failures = 0
        self.until = 0.0

    def failed(self) -> float:
        self.failures += 1
        delay = self._policy.step(self.failures)
        self.until = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.until = 0.0

    def waiting(self) -> bool:
        return self._clock() < self.until


class WatchLoop:
    """Decides what to do next and when to wake up; the work itself is the reconciler's and the handler's."""

    def __init__(self, *, queue: ChangeQueue, observer: FolderObserver, runner: BatchRunner, reconciler: Reconciler,
                 changes: ChangeHandler, monitors: WatchMonitor, auth: AuthPolicy, stopping: threading.Event,
                 clock: Callable[[], float], rescan_s: float, on_ready: Callable[[], None]) -> None:
        self.queue = queue
        self.observer = observer
        self.runner = runner
        self.reconciler = reconciler
        self.changes = changes
        self.monitors = monitors
        self.auth = auth
        self.stopping = stopping
        self.clock = clock
        self.rescan_s = rescan_s
        self.on_ready = on_ready  # once, after the first reconcile
        self.backoff = Backoff(clock)

    def run(self) -> BucketSyncError | None:
        """Until ``stopping`` is set (returns None) or an error ends the watcher (returns it)."""
        first = True
        next_rescan = self.clock()
        while not self.stopping.is_set():
            now = self.clock()
            try:
                if self.observer.revive():
                    next_rescan = now  # events may have been missed
                if not self.backoff.waiting():
                    self.runner.open()
                    worked = False
                    if now >= next_rescan:
                        self.monitors.on_busy(Scope.RECONCILE)
                        self.reconciler.reconcile(initial=first)
                        if first:
                            first = False
                            self.on_ready()
                        next_rescan = self.clock() + self.rescan_s
                        worked = True
                    else:
                        due = self.queue.take_due(BATCH_LIMIT)
                        if due:
                            self.monitors.on_busy(Scope.CHANGES)
                            self.changes.handle(due)
                            worked = True
                    if worked:
                        if self.backoff.failures:
                            self.monitors.on_recovered()
                        self.backoff.succeeded()
                        self.auth.succeeded()
                        self.monitors.on_idle()
            except BucketSyncError as exc:
                self.monitors.on_idle()
                if self.stopping.is_set():
                    break
                if not self.auth.survivable(exc):
                    return exc
                delay = self.backoff.failed()
                log.warning("%s; retrying in %.0f s (changes stay queued)", redact(exc.message), delay)
                self.monitors.on_trouble(Trouble.of(exc, delay))
            self._sleep(next_rescan)
        return None

    def _sleep(self, next_rescan: float) -> None:
        now = self.clock()
        wake = [next_rescan, self.backoff.until or now + 0.5]
        due = self.queue.next_due()
        if due is not None:
            wake.append(due)
        timeout = max(0.02, min(0.5, min(wake) - now))
        self.queue.wakeup.wait(timeout)
        self.queue.wakeup.clear()
