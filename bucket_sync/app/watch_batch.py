"""Watch mode's batches: the storage they go to, how the remote is compared, one engine run per batch, and
what each run finished.

Decision (README.md, "Watch mode"): a batch in which nothing succeeded and several files failed in a row
is taken for a storage outage: it is stopped early, one cheap request probes storage, and if that fails
too every file goes back to the queue (no attempt counted) and the watcher backs off (1 s doubling to
30 s). Storage being down never ends the watcher.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Iterable

from ..errors import TransientError
from ..sync.access import Approach, Comparison, upload_approach
from ..sync.engine import Engine
from ..sync.plan import Plan
from ..sync.keys import join_blob_name, key_from_blob_name
from ..sync.listener import FanOut, Listener, Tally
from ..sync.model import Direction, PlannedAction, Status, TransferResult
from ..storage.container import ContainerRef, Storage
from .watch_monitor import BatchReport, Scope, WatchMonitor
from .watch_queue import Sig

if TYPE_CHECKING:
    from .watch import WatchRequest

log = logging.getLogger("bucket_sync.watch")

REQUEST_ATTEMPTS = 4  # per storage request (backoff 0.5, 1, 2 s with jitter)


class BatchWatch(Listener):
    """Sits between one engine run and the run-wide listener: remembers what finished, spots an outage."""

    def __init__(self, prefix: str, listener: Listener, *, outage_after: int,
                 expected: dict[str, tuple[str, Sig]] | None = None, follow_symlinks: bool = False) -> None:
        self.prefix = prefix
        self.follow_symlinks = follow_symlinks  # judge a file as the rest of watch does (watch_changes.py, watch_observer.py)
        self.expected = expected or {}  # key -> (path, what it looked like when judged ready)
        self.listener = listener
        self.outage_after = outage_after
        self.tally = Tally()  # everything the engine reported: its delete guard reads it
        self.reported = Tally()  # what was passed on to the user (the batch's summary for the monitors)
        self.stop = threading.Event()
        self.done: set[str] = set()
        self.results = 0
        self.any_ok = False
        self._failed_in_row = 0
        self._lock = threading.Lock()

    def on_plan(self, files: int, total_bytes: int) -> None:
        self.listener.on_plan(files, total_bytes)

    def on_bytes(self, n: int) -> None:
        self.listener.on_bytes(n)

    def on_notice(self, key: str, message: str) -> None:
        self.listener.on_notice(key, message)

    def on_info(self, message: str) -> None:
        self.listener.on_info(message)

    def on_result(self, result: TransferResult) -> None:
        key = key_from_blob_name(self.prefix, result.key) or result.key
        with self._lock:
            self.results += 1
            if result.status in (Status.OK, Status.SKIPPED, Status.PLANNED):
                self.done.add(key)
                self.any_ok = True
                self._failed_in_row = 0
            elif result.status is Status.FAILED and self._changed_since(key):
                # Written to again while it went up (the uploader refused it): not a failure, the newer
                # version is already queued by its own event.
                log.info("%s: changed while it was uploaded; queued again", key)
                return
            elif result.status is Status.FAILED:
                self._failed_in_row += 1
                if not self.any_ok and self._failed_in_row >= self.outage_after:
                    self.stop.set()  # looks like an outage: don't grind through the rest of the batch
        self.reported.on_result(result)
        self.listener.on_result(result)

    def _changed_since(self, key: str) -> bool:
        seen = self.expected.get(key)
        return seen is not None and Sig.of(seen[0], follow_symlinks=self.follow_symlinks) != seen[1]

    def unfinished(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self.done]

    def reachable(self, storage: Storage, keys: list[str]) -> bool:
        """Did the failures come from the files, or from storage being unreachable?"""
        if self.any_ok or not keys:
            return True
        try:
            storage.get(join_blob_name(self.prefix, keys[0]), keys[0])
        except TransientError:
            return False
        return True

    def raise_if_fatal(self) -> None:
        if self.tally.fatal is not None:
            raise self.tally.fatal

    def outage_error(self) -> TransientError:
        return TransientError("storage is unreachable")

    def raise_if_unreachable(self, storage: Storage, work: Iterable[PlannedAction]) -> None:
        self.raise_if_fatal()
        if not self.reachable(storage, self.unfinished(a.key for a in work)):
            raise self.outage_error()


class BatchRunner:
    """The storage every batch goes to (opened once, for the whole run), how the remote is compared
    (decided once storage answers), and the batch in flight (what the status line counts)."""

    def __init__(self, req: WatchRequest, container: ContainerRef, listener: Listener, monitors: WatchMonitor,
                 stopping: threading.Event) -> None:
        self.req = req
        self.container = container
        self.listener = listener
        self.monitors = monitors
        self.stopping = stopping
        self.storage: Storage | None = None
        self.approach: Approach | None = None
        self.batch: BatchWatch | None = None
        self.in_flight = 0

    def open(self) -> None:
        if self.storage is None:  # fetching the first SAS can fail too (no network at boot)
            self.storage = self.container.open(concurrency=self.req.settings.concurrency,
                                               retry_attempts=REQUEST_ATTEMPTS, cancel=self.stopping)
        if self.approach is None:
            self.decide()

    @property
    def opened(self) -> Storage:
        """The storage, for what runs once :meth:`open` succeeded (the loop opens it before every step)."""
        assert self.storage is not None, "open() first"
        return self.storage

    def decide(self) -> None:
        """How to compare, before anything is sent: --delete on a SAS that cannot delete (or list) ends
        the watcher here (exit 3). Called again when storage refuses a listing the SAS did not rule out."""
        self.approach = None
        self.approach = upload_approach(self.opened.access(), deletes=self.req.delete, overwrite=False, what="watch")
        if self.approach.notice:
            self.listener.on_info(self.approach.notice)

    def can_list(self) -> bool:
        return self.approach is not None and self.approach.comparison is Comparison.LISTING

    def new_batch(self, listener: Listener, expected: dict[str, tuple[str, Sig]] | None = None) -> BatchWatch:
        batch = BatchWatch(self.req.prefix, listener, outage_after=max(4, min(16, self.req.settings.concurrency)),
                           expected=expected, follow_symlinks=self.req.follow_symlinks)
        if self.stopping.is_set():
            batch.stop.set()
        return batch

    def engine(self, batch: BatchWatch) -> Engine:
        # A tally per batch: the engine holds deletes back after any failure in *its* tally, and one old
        # failure must not block every later delete of a run that lasts for days.
        return Engine(self.opened, direction=Direction.UP, prefix=self.req.prefix, local_root=None,
                      settings=self.req.settings, listener=FanOut(batch.tally, batch), tally=batch.tally,
                      stop=batch.stop)

    def run(self, engine: Engine, batch: BatchWatch, plan: Plan, *, delete: bool, scope: Scope,
            refusal: str | None = None) -> None:
        self.batch = batch
        self.in_flight = len(plan.work) + (len(plan.deletes) if delete else 0)
        try:
            engine.run(plan, delete=delete)
        finally:
            self.batch = None
            self.in_flight = 0
        self.monitors.on_batch(BatchReport(scope, batch.reported.summary("watch"), refusal))

    def in_flight_now(self) -> int:
        """Planned in the running batch and not yet finished (safe to read from any thread, unlocked)."""
        batch = self.batch
        return max(0, self.in_flight - (batch.results if batch is not None else 0))

    def stop(self) -> None:
        """Cancel the batch in flight (it ends within the grace); later batches start stopped."""
        batch = self.batch
        if batch is not None:
            batch.stop.set()

    def close(self) -> None:
        if self.storage is not None:
            self.storage.close()
