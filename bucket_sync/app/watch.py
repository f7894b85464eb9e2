"""watch: reconcile once like upload, then keep the remote up to date from filesystem events until stopped.

One long-lived Storage (its SAS policy refreshes the SAS, the resolver refreshes the token) serves the
whole run. Events feed a ChangeQueue; due paths are re-checked and go, in batches, through the same
Engine plan/run as upload. Storage trouble never ends the run: a batch that could not reach storage is
kept and retried with backoff. What does end it: SIGINT/SIGTERM (exit 0), and authorization failures that
retrying cannot fix (see ``AuthPolicy``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import BucketSyncError, PermissionDeniedError, UnsafeBlobNameError
from ..redact import redact
from ..sync.access import LIST, Approach, Comparison, upload_approach
from ..sync.diff import DiffPolicy
from ..sync.engine import Engine, Plan, TransferSettings
from ..sync.events import FanOut, Listener, Summary, Tally
from ..sync.filters import PathFilter
from ..sync.keys import join_blob_name, local_path_for
from ..sync.model import Action, Direction, LocalFile, Op, PlannedAction, Reason, Status, TransferResult
from ..sync.scan import Skipped, scan_tree
from ..storage.container import ContainerRef, Storage
from .watch_batch import AuthPolicy, BatchWatch, QuietSkips, lookup_remote, refuse_emptying, remote_under
from .watch_events import Backoff, ChangeQueue, Kind, Pending, Sig, Verdict, retry_delay, verdict
from .watch_monitor import BatchReport, Scope, Trouble, WatchMonitor, WatchSnapshot
from .watch_observer import QueueingHandler, healthy, start_observer, stop_quietly

log = logging.getLogger("bucket_sync.watch")

BATCH_LIMIT = 1000  # paths re-checked per batch: bounds memory and keeps status lines and stops prompt
REQUEST_ATTEMPTS = 4  # per storage request (backoff 0.5, 1, 2 s with jitter)
FILE_ATTEMPTS = 2  # per file within a batch
MAX_ATTEMPTS = 5  # failed uploads of one unchanged file while storage works, before waiting for a change


@dataclass(frozen=True)
class WatchRequest:
    local_dir: str
    prefix: str
    settings: TransferSettings
    filters: PathFilter = PathFilter()
    checksum: bool = False
    follow_symlinks: bool = False
    delete: bool = False
    debounce_s: float = 1.0
    rescan_s: float = 600.0
    polling: bool = False
    status_s: float = 60.0


class Watcher:
    def __init__(self, req: WatchRequest, container: ContainerRef, listener: Listener, *,
                 status: Callable[[dict], None], clock: Callable[[], float] = time.monotonic,
                 monitors: WatchMonitor | None = None) -> None:
        # The watcher retries whole batches for as long as it runs, so each request and file gives up
        # sooner than in a one-shot upload: an outage is noticed in seconds and the queue simply waits.
        self.req = dataclasses.replace(req, settings=dataclasses.replace(req.settings, file_attempts=FILE_ATTEMPTS))
        self.root = os.path.abspath(req.local_dir)
        self.container = container
        self.source = container.source
        self.renderer = listener
        self.status_out = status
        self.clock = clock
        self.tally = Tally()
        # Health, metrics, systemd and alerts listen (watch_monitor.py): the watcher only reports to them.
        self.monitors = monitors or WatchMonitor()
        self.listener = FanOut(self.tally, listener, self.monitors)
        self.stopping = threading.Event()
        self.queue = ChangeQueue(debounce_s=req.debounce_s, clock=clock)
        self.backoff = Backoff(clock)
        self.auth = AuthPolicy(container.source, clock)
        self.approach: Approach | None = None  # how the remote is compared: decided once storage answers
        self.batch: BatchWatch | None = None
        self.in_flight = 0
        self.mode = ""
        self._poll_interval = max(1.0, min(req.debounce_s, 5.0))
        self._root_missing = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """From a signal handler: start nothing new, cancel what is in flight (it ends within the grace)."""
        self.stopping.set()
        batch = self.batch
        if batch is not None:
            batch.stop.set()
        self.queue.wakeup.set()

    def run(self) -> Summary:
        self.storage: Storage | None = None
        handler = QueueingHandler(self.root, self.queue, self.req.filters, follow_symlinks=self.req.follow_symlinks)
        # Watch first, then reconcile: whatever changes during the first scan is queued, not lost.
        self.observer, self.mode = start_observer(self.root, handler, polling=self.req.polling,
                                                  poll_interval_s=self._poll_interval)
        fatal: BucketSyncError | None = None
        reporter = threading.Thread(target=self._report_status, name="watch-status", daemon=True)
        reporter.start()
        self.monitors.on_start(self.snapshot)
        try:
            fatal = self._loop(handler)
        finally:
            self.stopping.set()  # also ends the status reporter
            self.observer.stop()
            self.observer.join(timeout=2)
            if self.storage is not None:
                self.storage.close()
        summary = self.tally.summary("watch")
        if fatal is not None:
            log.error("error: %s", redact(fatal.message))
            if fatal.hint:
                log.error("  hint: %s", redact(fatal.hint))
            summary = dataclasses.replace(summary, exit_code=int(fatal.exit_code))
            self.monitors.on_stop(summary, redact(fatal.message))
            return summary
        summary = dataclasses.replace(summary, exit_code=0)  # a clean stop is success (README.md, "Exit codes")
        self.monitors.on_stop(summary, None)
        return summary

    def _loop(self, handler) -> BucketSyncError | None:
        first = True
        next_rescan = self.clock()
        while not self.stopping.is_set():
            now = self.clock()
            try:
                if self._revive_observer(handler):
                    next_rescan = now  # events may have been missed
                if not self.backoff.waiting():
                    if self.storage is None:  # fetching the first SAS can fail too (no network at boot)
                        self.storage = self.container.open(concurrency=self.req.settings.concurrency,
                                                           retry_attempts=REQUEST_ATTEMPTS, cancel=self.stopping)
                    if self.approach is None:
                        self._decide()
                    worked = False
                    if now >= next_rescan:
                        self.monitors.on_busy(Scope.RECONCILE)
                        self._reconcile(initial=first)
                        if first:
                            first = False
                            self._status("watching")
                            self.monitors.on_ready()
                        next_rescan = self.clock() + self.req.rescan_s
                        worked = True
                    else:
                        due = self.queue.take_due(BATCH_LIMIT)
                        if due:
                            self.monitors.on_busy(Scope.CHANGES)
                            self._handle(due)
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

    def _revive_observer(self, handler: QueueingHandler) -> bool:
        """Restart a watcher that died (inotify limit hit while adding a new folder, LOCAL_DIR deleted and
        created again); start_observer falls back to polling if native watching cannot start."""
        if healthy(self.observer):
            return False
        if not os.path.isdir(self.root):
            if not self._root_missing:
                log.warning("%s is missing; waiting for it to come back (nothing is deleted meanwhile)", self.root)
            self._root_missing = True
            return False
        self._root_missing = False
        log.warning("the file watcher stopped; restarting it and rescanning")
        stop_quietly(self.observer)
        self.observer, self.mode = start_observer(self.root, handler, polling=self.req.polling or self.mode == "polling",
                                                  poll_interval_s=self._poll_interval)
        return True

    # -- status ------------------------------------------------------------------------------------
    def _report_status(self) -> None:
        # A thread of its own: a batch of thousands of files must not silence the status line.
        while not self.stopping.wait(self.req.status_s):
            self._status("status")

    def _status(self, state: str) -> None:
        self.status_out(self.snapshot().status_event(state))

    def snapshot(self) -> WatchSnapshot:
        """The state monitors pull (from any thread: every field read here is safe to read unlocked)."""
        t = self.tally
        batch = self.batch
        in_flight = max(0, self.in_flight - (batch.results if batch is not None else 0))
        return WatchSnapshot(mode=self.mode, queued=len(self.queue), in_flight=in_flight,
                             uploaded=t.count(Op.UPLOAD, Status.OK), deleted=t.count(Op.DELETE, Status.OK),
                             failed=t.count(None, Status.FAILED), queued_since=self.queue.busy_since)

    # -- full reconcile -----------------------------------------------------------------------------
    def _reconcile(self, *, initial: bool) -> None:
        """Scan and list everything, like upload (deleting extras with --delete); changing files wait."""
        req = self.req
        on_skip = self._report_skip if initial else (lambda s: None)
        if not os.path.isdir(self.root):
            log.warning("%s is missing or not a folder; nothing uploaded or deleted until it is back", self.root)
            return
        sources = scan_tree(self.root, filters=req.filters, follow_symlinks=req.follow_symlinks, on_skip=on_skip)
        dests = None
        if self._can_list():
            try:
                dests = [b for b in self.storage.list(req.prefix) if req.filters.allows(b.key)]
            except PermissionDeniedError as exc:
                if exc.permission != LIST:
                    raise
                # sp= did not rule listing out, storage did: decide again with what it said.
                self.approach = None
                self._decide()
        if dests is None:  # file by file: the SAS cannot list
            sources = list(sources)
            dests = list(self.storage.look_up_each(req.prefix, (f.key for f in sources)))
        listener = self.listener if initial else QuietSkips(self.listener)
        batch = self._new_batch(listener)
        engine = self._engine(batch)
        plan = engine.plan(sources, dests, DiffPolicy(Action.UPLOAD, delete_extras=req.delete, checksum=req.checksum))
        recent_ns = time.time_ns() - int(req.debounce_s * 1e9)
        work = []
        for action in plan.work:
            src = action.source
            if action.key in self.queue or (isinstance(src, LocalFile) and src.mtime_ns > recent_ns):
                self.queue.touch(action.key, Sig(Kind.FILE, src.size, src.mtime_ns))  # still changing
            else:
                work.append(action)
        plan.work = work
        batch.expected = {a.key: (a.source.path, Sig(Kind.FILE, a.size, a.source.mtime_ns)) for a in work
                          if isinstance(a.source, LocalFile)}
        plan.deletes = [a for a in plan.deletes if a.key not in self.queue]
        refusal = refuse_emptying(self.root, plan)
        self._run(engine, batch, plan, delete=req.delete, scope=Scope.RECONCILE, refusal=refusal)
        for key in batch.unfinished(a.key for a in plan.work):
            self.queue.touch(key, Sig.of(self._local_path(key), follow_symlinks=req.follow_symlinks),
                             delay=retry_delay(1))
        batch.raise_if_unreachable(self.storage, plan.work)

    def _report_skip(self, skipped: Skipped) -> None:
        self.listener.on_result(TransferResult(Op.UPLOAD, join_blob_name(self.req.prefix, skipped.key), 0,
                                               Status.SKIPPED, error=skipped.why))

    # -- changed paths ------------------------------------------------------------------------------
    def _handle(self, due: list[Pending]) -> None:
        req = self.req
        now = self.clock()
        ready: list[tuple[Pending, LocalFile]] = []
        gone: list[Pending] = []
        for p in due:
            path = self._local_path(p.key)
            sig = Sig.of(path, follow_symlinks=req.follow_symlinks)
            v = verdict(p, sig, now, debounce_s=req.debounce_s, open_grace_s=self.queue.open_grace_s)
            if v is Verdict.WAIT:
                self.queue.requeue(p, delay=req.debounce_s, sig=sig, changed=sig != p.sig)
            elif v is Verdict.READY:
                ready.append((p, LocalFile(p.key, path, sig.size, sig.mtime_ns)))
            elif v is Verdict.GONE:
                gone.append(p)
            elif v is Verdict.FOLDER:
                for f in scan_tree(path, filters=req.filters, follow_symlinks=req.follow_symlinks,
                                   on_skip=self._report_skip, base_key=p.key):
                    self.queue.touch(f.key, Sig(Kind.FILE, f.size, f.mtime_ns))
            elif v is Verdict.SKIP:
                why = "symbolic link (use --follow-symlinks to follow it)" if sig.kind is Kind.LINK else "not a regular file"
                self._report_skip(Skipped(p.key, why))
        try:
            if ready:
                self._upload(ready)
        finally:
            if gone:
                self._delete_gone(gone)

    def _upload(self, ready: list[tuple[Pending, LocalFile]]) -> None:
        ready.sort(key=lambda t: t[1].key)
        files = [f for _, f in ready]
        pending = {p.key: p for p, _ in ready}
        try:
            dests = lookup_remote(self.storage, self.req.prefix, [f.key for f in files], can_list=self._can_list())
        except BucketSyncError:
            for p in pending.values():
                self.queue.requeue(p, delay=0)
            raise
        batch = self._new_batch(self.listener, expected={f.key: (f.path, Sig(Kind.FILE, f.size, f.mtime_ns)) for f in files})
        engine = self._engine(batch)
        plan = engine.plan(iter(files), iter(dests), DiffPolicy(Action.UPLOAD, checksum=self.req.checksum))
        self._run(engine, batch, plan, delete=False, scope=Scope.CHANGES)
        unfinished = list(batch.unfinished(a.key for a in plan.work))
        if not unfinished:
            return
        reachable = batch.reachable(self.storage, unfinished)
        for key in unfinished:
            p = pending[key]
            if reachable and not self.stopping.is_set():
                p.attempts += 1
                if p.attempts >= MAX_ATTEMPTS:
                    log.warning("%s: failed %d times; waiting for it to change (or the next full rescan)", key, p.attempts)
                    continue
            self.queue.requeue(p, delay=retry_delay(p.attempts + 1) if reachable else 0)
        batch.raise_if_fatal()
        if not reachable:
            raise batch.outage_error()

    def _delete_gone(self, gone: list[Pending]) -> None:
        if not self.req.delete:
            for p in gone:
                log.info("%s: removed locally; kept in the bucket (no --delete)", p.key)
            return
        if not os.path.isdir(self.root):
            log.warning("%s is missing: deletions are not propagated until it is back", self.root)
            return
        try:
            blobs = remote_under(self.storage, self.req.prefix, [(p.key, p.was_dir) for p in gone])
        except BucketSyncError:
            for p in gone:
                self.queue.requeue(p, delay=0)
            raise
        actions = [PlannedAction(Action.DELETE, Reason.EXTRA, b.key, None, b) for b in blobs
                   if self.req.filters.allows(b.key)
                   and not self._exists_locally(b.key)]
        if not actions:
            return
        batch = self._new_batch(self.listener)
        self._run(self._engine(batch), batch, Plan(deletes=actions), delete=True, scope=Scope.DELETIONS)
        if batch.unfinished(a.key for a in actions):
            for p in gone:
                self.queue.requeue(p, delay=retry_delay(2))
        batch.raise_if_fatal()

    def _decide(self) -> None:
        """How to compare, before anything is sent: --delete on a SAS that cannot delete (or list) ends
        the watcher here (exit 3)."""
        self.approach = upload_approach(self.storage.access(), deletes=self.req.delete, overwrite=False, what="watch")
        if self.approach.notice:
            self.listener.on_info(self.approach.notice)

    def _local_path(self, key: str) -> str:
        """Where ``key`` lives locally: keys.local_path_for, the one rule (on Windows a key such as 'a:b' is
        the file 'a：b', never an alternate data stream of 'a'). Keys from the local side always have one."""
        return local_path_for(self.root, key)

    def _exists_locally(self, key: str) -> bool:
        """A remote name no local file can have (a backslash, '..') has no local twin."""
        try:
            return os.path.lexists(local_path_for(self.root, key))
        except UnsafeBlobNameError:
            return False

    def _can_list(self) -> bool:
        return self.approach is not None and self.approach.comparison is Comparison.LISTING

    # -- engine plumbing -------------------------------------------------------------------------
    def _new_batch(self, listener: Listener, expected: dict | None = None) -> BatchWatch:
        batch = BatchWatch(self.req.prefix, listener, outage_after=max(4, min(16, self.req.settings.concurrency)),
                           expected=expected, follow_symlinks=self.req.follow_symlinks)
        if self.stopping.is_set():
            batch.stop.set()
        return batch

    def _engine(self, batch: BatchWatch) -> Engine:
        # A tally per batch: the engine holds deletes back after any failure in *its* tally, and one old
        # failure must not block every later delete of a run that lasts for days.
        return Engine(self.storage, direction=Direction.UP, prefix=self.req.prefix, local_root=None,
                      settings=self.req.settings, listener=FanOut(batch.tally, batch), tally=batch.tally,
                      stop=batch.stop)

    def _run(self, engine: Engine, batch: BatchWatch, plan: Plan, *, delete: bool, scope: Scope,
             refusal: str | None = None) -> None:
        self.batch = batch
        self.in_flight = len(plan.work) + (len(plan.deletes) if delete else 0)
        try:
            engine.run(plan, delete=delete)
        finally:
            self.batch = None
            self.in_flight = 0
        self.monitors.on_batch(BatchReport(scope, batch.reported.summary("watch"), refusal))


def serve(watcher: Watcher, *, grace_s: float, finish: Callable[[Summary], None]) -> Summary:
    """Run ``watcher`` until SIGINT/SIGTERM. After the signal, in-flight transfers get ``grace_s`` seconds;
    a transfer stuck past that (a hung connection) is abandoned: the summary is written and the process
    exits 0 (the kernel releases the pair lock with the process)."""

    def force_exit() -> None:
        log.warning("in-flight transfers did not finish within %.0f s; exiting anyway", grace_s)
        try:
            finish(dataclasses.replace(watcher.tally.summary("watch"), exit_code=0))
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)

    timers: list[threading.Timer] = []

    def on_signal(signum, _frame) -> None:
        if watcher.stopping.is_set():
            return
        log.warning("%s: stopping; in-flight transfers get %.0f s to finish", signal.Signals(signum).name, grace_s)
        watcher.stop()
        timer = threading.Timer(grace_s, force_exit)
        timer.daemon = True
        timer.start()
        timers.append(timer)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return watcher.run()
    finally:
        for timer in timers:
            timer.cancel()  # stopped in time: the caller writes the summary, once
        for sig, handler in previous.items():
            signal.signal(sig, handler)
