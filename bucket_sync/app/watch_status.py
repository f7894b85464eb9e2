"""Watch mode's state as others see it: the snapshot monitors pull (health, metrics, systemd) and the
status events: "watching" once the first reconcile is done, then one every --stats seconds."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..sync.listener import Tally
from ..sync.model import Action, Status
from .watch_batch import BatchRunner
from .watch_monitor import WatchSnapshot
from .watch_observer import FolderObserver
from .watch_queue import ChangeQueue


class StatusReporter:
    def __init__(self, out: Callable[[dict[str, Any]], None], every_s: float, *, tally: Tally, queue: ChangeQueue,
                 runner: BatchRunner, observer: FolderObserver, stopping: threading.Event) -> None:
        self.out = out
        self.every_s = every_s
        self.tally = tally
        self.queue = queue
        self.runner = runner
        self.observer = observer
        self.stopping = stopping

    def start(self) -> None:
        # A thread of its own: a batch of thousands of files must not silence the status line.
        threading.Thread(target=self._report, name="watch-status", daemon=True).start()

    def _report(self) -> None:
        while not self.stopping.wait(self.every_s):  # ends with the run
            self.status("status")

    def status(self, state: str) -> None:
        self.out(self.snapshot().status_event(state))

    def snapshot(self) -> WatchSnapshot:
        """From any thread: every field read here is safe to read unlocked."""
        t = self.tally
        return WatchSnapshot(mode=self.observer.mode, queued=len(self.queue), in_flight=self.runner.in_flight_now(),
                             uploaded=t.count(Action.UPLOAD, Status.OK), deleted=t.count(Action.DELETE, Status.OK),
                             failed=t.count(None, Status.FAILED), queued_since=self.queue.busy_since)
