"""watch: reconcile once like upload, then keep the remote up to date from filesystem events until stopped.

One long-lived Storage (its SAS policy refreshes the SAS, the resolver refreshes the token) serves the
whole run. Events feed a ChangeQueue; due paths are re-checked and go, in batches, through the same
Engine plan/run as upload. Storage trouble never ends the run: a batch that could not reach storage is
kept and retried with backoff. What does end it: SIGINT/SIGTERM (exit 0), and authorization failures that
retrying cannot fix (see ``AuthPolicy``).

The ``Watcher`` only wires the parts together and turns the end of the loop into the run's summary:

- watch_observer.FolderObserver: the filesystem observer (started first, revived when it dies);
- watch_loop.WatchLoop: what to do next and when (reconcile, due changes, backoff, sleep);
- watch_reconcile.Reconciler: the full reconcile; watch_changes.ChangeHandler: the changed paths;
- watch_batch.BatchRunner: storage, how the remote is compared, and the engine run of each batch;
- watch_status.StatusReporter: the snapshot monitors pull and the status events.
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
from types import FrameType
from typing import Any, Callable

from ..redact import redact
from ..sync.filters import PathFilter
from ..sync.keys import join_blob_name
from ..sync.listener import FanOut, Listener, Summary, Tally
from ..sync.model import Action, Status, TransferResult
from ..sync.scan import Skipped
from ..sync.settings import TransferSettings
from ..storage.container import ContainerRef
from .watch_auth import AuthPolicy
from .watch_batch import BatchRunner
from .watch_changes import ChangeHandler
from .watch_loop import WatchLoop
from .watch_monitor import WatchMonitor, WatchSnapshot
from .watch_observer import FolderObserver, QueueingHandler
from .watch_queue import ChangeQueue
from .watch_reconcile import Reconciler
from .watch_status import StatusReporter
from .run_log import log_error

log = logging.getLogger("bucket_sync.watch")

FILE_ATTEMPTS = 2  # per file within a batch


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
                 status: Callable[[dict[str, Any]], None], clock: Callable[[], float] = time.monotonic,
                 monitors: WatchMonitor | None = None) -> None:
        # The watcher retries whole batches for as long as it runs, so each request and file gives up
        # sooner than in a one-shot upload: an outage is noticed in seconds and the queue simply waits.
        self.req = req = dataclasses.replace(req, settings=dataclasses.replace(req.settings, file_attempts=FILE_ATTEMPTS))
        root = os.path.abspath(req.local_dir)
        self.tally = Tally()
        # Health, metrics, systemd and alerts listen (watch_monitor.py): the watcher only reports to them.
        self.monitors = monitors or WatchMonitor()
        self.listener = FanOut(self.tally, listener, self.monitors)
        self.stopping = threading.Event()
        self.queue = ChangeQueue(debounce_s=req.debounce_s, clock=clock)
        self.runner = BatchRunner(req, container, self.listener, self.monitors, self.stopping)
        handler = QueueingHandler(root, self.queue, req.filters, follow_symlinks=req.follow_symlinks)
        self.observer = FolderObserver(root, handler, polling=req.polling,
                                       poll_interval_s=max(1.0, min(req.debounce_s, 5.0)))
        self.reporter = StatusReporter(status, req.status_s, tally=self.tally, queue=self.queue, runner=self.runner,
                                     observer=self.observer, stopping=self.stopping)
        self.loop = WatchLoop(
            queue=self.queue, observer=self.observer, runner=self.runner,
            reconciler=Reconciler(req, root, self.queue, self.runner, self.listener, self._report_skip),
            changes=ChangeHandler(req, root, self.queue, self.runner, self.listener, self._report_skip,
                                  stopping=self.stopping, clock=clock),
            monitors=self.monitors, auth=AuthPolicy(container.source, clock), stopping=self.stopping, clock=clock,
            rescan_s=req.rescan_s, on_ready=self._ready)

    def stop(self) -> None:
        """From a signal handler: start nothing new, cancel what is in flight (it ends within the grace)."""
        self.stopping.set()
        self.runner.stop()
        self.queue.wakeup.set()

    def run(self) -> Summary:
        # Watch first, then reconcile: whatever changes during the first scan is queued, not lost.
        self.observer.start()
        fatal = None
        self.reporter.start()
        self.monitors.on_start(self.snapshot)
        try:
            fatal = self.loop.run()
        finally:
            self.stopping.set()  # also ends the status reporter
            self.observer.stop()
            self.runner.close()
        summary = self.tally.summary("watch")
        if fatal is not None:
            log_error(log, fatal.message, fatal.hint)
            summary = dataclasses.replace(summary, exit_code=int(fatal.exit_code))
            self.monitors.on_stop(summary, redact(fatal.message))
            return summary
        summary = dataclasses.replace(summary, exit_code=0)  # a clean stop is success (README.md, "Exit codes")
        self.monitors.on_stop(summary, None)
        return summary

    def snapshot(self) -> WatchSnapshot:
        """The state monitors pull (from any thread)."""
        return self.reporter.snapshot()

    def _ready(self) -> None:
        self.reporter.status("watching")
        self.monitors.on_ready()

    def _report_skip(self, skipped: Skipped) -> None:
        self.listener.on_result(TransferResult(Action.UPLOAD, join_blob_name(self.req.prefix, skipped.key), 0,
                                               Status.SKIPPED, error=skipped.why))


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

    def on_signal(signum: int, _frame: FrameType | None) -> None:
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
