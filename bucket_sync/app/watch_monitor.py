"""What the watcher tells the objects that watch *it*: health, metrics, systemd, alerts.

The Watcher only moves files. Everything a supervisor or a dashboard wants to know is derived by monitors
that listen to it: they receive every transfer result (a monitor is a Listener), and a few events about
the run itself (ready, busy, a batch ended, trouble began, trouble ended, stopped). Between those, they
may pull a :class:`WatchSnapshot` (queue length, transfers in flight, observer mode) whenever they like,
from any thread.

A monitor must never stop the watcher: :class:`Monitors` calls each one inside a guard that logs its
failure at debug level and goes on (a broken metrics exporter is not worth a missed upload).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from ..errors import BucketSyncError, ExitCode
from ..redact import redact
from ..sync.listener import Listener, Summary
from ..sync.model import TransferResult

log = logging.getLogger("bucket_sync.watch")


class Scope(Enum):
    """Which kind of engine run a batch was."""

    RECONCILE = "reconcile"  # the first reconcile, and every --rescan
    CHANGES = "changes"  # uploads of paths that saw events
    DELETIONS = "deletions"  # with --delete: blobs of paths removed locally


class TroubleKind(Enum):
    """Why the watcher is backing off instead of working (its label in /healthz and the metrics)."""

    OUTAGE = "outage"  # storage or the network did not answer, or answered 5xx
    AUTH = "auth"  # the token or SAS could not be renewed, or the API refused it (exit 3 if it lasts)
    NOT_FOUND = "not_found"  # the container or iTwin briefly unavailable (exit 4 if it lasts)


@dataclass(frozen=True)
class Trouble:
    kind: TroubleKind
    reason: str  # already redacted: it is shown by /healthz and systemd's STATUS=
    retry_in_s: float

    @classmethod
    def of(cls, exc: BucketSyncError, retry_in_s: float) -> "Trouble":
        kind = {ExitCode.AUTH: TroubleKind.AUTH, ExitCode.NOT_FOUND: TroubleKind.NOT_FOUND}.get(
            exc.exit_code, TroubleKind.OUTAGE)
        return cls(kind, redact(exc.message), retry_in_s)


@dataclass(frozen=True)
class BatchReport:
    """One engine run of the watcher ended. ``summary`` counts what was reported to the user (a file that
    changed while it went up is not a failure: it is queued again); ``refusal`` is set when a guard kept
    the batch from doing something (an empty LOCAL_DIR is not mirrored as "delete everything")."""

    scope: Scope
    summary: Summary
    refusal: str | None = None

    @property
    def clean(self) -> bool:
        return self.summary.failed == 0 and self.refusal is None

    @property
    def did_something(self) -> bool:
        s = self.summary
        return bool(s.uploaded or s.deleted or s.failed or s.planned or self.refusal)


@dataclass(frozen=True)
class WatchSnapshot:
    """The watcher's state at one moment (pulled by monitors, from any thread)."""

    mode: str  # "native" or "polling" (empty before the observer started)
    queued: int  # paths waiting for their re-check
    in_flight: int  # transfers of the running batch not finished yet
    uploaded: int  # run totals
    deleted: int
    failed: int
    queued_since: float | None  # clock time the queue last went from empty to non-empty; None: empty

    def status_event(self, state: str) -> dict[str, Any]:
        """The JSON ``status`` event (README, "Watch mode")."""
        return {"event": "status", "state": state, "mode": self.mode, "queued": self.queued,
                "in_flight": self.in_flight, "uploaded": self.uploaded, "deleted": self.deleted,
                "done": self.uploaded + self.deleted, "failed": self.failed}


View = Callable[[], WatchSnapshot]


class WatchMonitor(Listener):
    """Base of everything that listens to a Watcher; every method is optional. Called from the watcher's
    loop thread, except the Listener methods (transfer worker threads): implementations are thread-safe."""

    wants_unchanged = False  # monitors count what happened, not the thousands of unchanged files

    def on_start(self, view: View) -> None:
        """The watcher is starting; ``view()`` gives its state from now on."""

    def on_ready(self) -> None:
        """The first reconcile is done: the remote holds what LOCAL_DIR held at the start."""

    def on_busy(self, scope: Scope) -> None:
        """The watcher took up work (a reconcile, or due paths to re-check)."""

    def on_idle(self) -> None:
        """The work taken up last is over (done, or given back to the queue)."""

    def on_batch(self, report: BatchReport) -> None:
        """An engine run ended."""

    def on_trouble(self, trouble: Trouble) -> None:
        """A step failed for a reason retrying may fix: the watcher backs off (called at every retry)."""

    def on_recovered(self) -> None:
        """A step succeeded after trouble."""

    def on_stop(self, summary: Summary, error: str | None) -> None:
        """The watcher stopped (``error``: why, when it was not a clean stop)."""


class Monitors(WatchMonitor):
    """Fans every call out to the monitors, each in a guard, in the order they were added (WatchHealth
    first: the monitors that read its verdict then see the event already counted)."""

    def __init__(self, *monitors: WatchMonitor) -> None:
        self.monitors = list(monitors)

    def add(self, monitor: WatchMonitor) -> None:
        self.monitors.append(monitor)

    def _each(self, method: str, *args: object) -> None:
        for monitor in self.monitors:
            try:
                getattr(monitor, method)(*args)
            except Exception:  # a monitor's bug must not cost an upload
                log.debug("%s.%s failed", type(monitor).__name__, method, exc_info=True)

    def on_bytes(self, n: int) -> None:
        self._each("on_bytes", n)

    def on_result(self, result: TransferResult) -> None:
        self._each("on_result", result)

    def on_start(self, view: View) -> None:
        self._each("on_start", view)

    def on_ready(self) -> None:
        self._each("on_ready")

    def on_busy(self, scope: Scope) -> None:
        self._each("on_busy", scope)

    def on_idle(self) -> None:
        self._each("on_idle")

    def on_batch(self, report: BatchReport) -> None:
        self._each("on_batch", report)

    def on_trouble(self, trouble: Trouble) -> None:
        self._each("on_trouble", trouble)

    def on_recovered(self) -> None:
        self._each("on_recovered")

    def on_stop(self, summary: Summary, error: str | None) -> None:
        self._each("on_stop", summary, error)


__all__ = ["BatchReport", "Monitors", "Scope", "Trouble", "TroubleKind", "View", "WatchMonitor", "WatchSnapshot"]
