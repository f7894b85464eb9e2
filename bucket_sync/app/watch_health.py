"""Is the watcher keeping up? The rules behind /healthz, the systemd watchdog and the ``healthy`` metric.

Unhealthy (README, "Health"), in this order:
- ``stopping``: SIGINT/SIGTERM arrived, or the watcher ended.
- ``outage`` / ``auth`` / ``not_found``: the last step failed for a reason retrying may fix and the watcher
  is backing off (storage unreachable; a token or SAS that cannot be renewed; the container briefly
  gone). Healthy again as soon as one step succeeds.
- ``behind``: work is waiting (paths queued, transfers in flight, or a step under way) and nothing was
  processed for longer than ``behind_after_s`` (``--behind-after`` times ``--rescan``). Processed means:
  a due path re-checked, a file finished (whatever its outcome), bytes sent, a batch ended. Waiting is
  measured from the later of the last progress and the moment the queue went from empty to non-empty, so
  a file dropped in after a quiet week is not "behind" at once.

Everything else is healthy: ``starting`` until the first reconcile is done (it may take an hour on a big
tree, and it is progress), then ``ok``. A file that fails is not ill health (it is reported and
retried); seconds since the last successful sync say how stale the remote may be.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..sync.listener import Summary
from ..sync.model import TransferResult
from .watch_monitor import BatchReport, Scope, Trouble, View, WatchMonitor, WatchSnapshot

OK = "ok"
STARTING = "starting"
BEHIND = "behind"
STOPPING = "stopping"


@dataclass(frozen=True)
class HealthRules:
    behind_after_s: float  # nothing processed for this long while work waits: "behind"


@dataclass(frozen=True)
class HealthVerdict:
    healthy: bool
    ready: bool  # the first reconcile is done
    state: str  # ok, starting, outage, auth, not_found, behind, stopping
    reason: str = ""  # why not healthy: one sentence, no secret
    details: dict[str, Any] = field(default_factory=dict)  # counts and ages for the /healthz body

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok" if self.healthy else "unhealthy", "state": self.state, "ready": self.ready}
        if self.reason:
            out["reason"] = self.reason
        out.update(self.details)
        return out


class WatchHealth(WatchMonitor):
    """Follows the watcher's events; :meth:`verdict` may be called from any thread."""

    def __init__(self, rules: HealthRules, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules
        self._clock = clock
        self._view: View | None = None
        now = clock()
        self.started = now
        self.last_progress = now
        self.last_success: float | None = None  # end of the last batch with no failure and no refusal
        self._busy = False
        self._ready = False
        self._stopped = False
        self._trouble: Trouble | None = None
        self._trouble_since: float | None = None

    # -- events -----------------------------------------------------------------------------------
    def on_start(self, view: View) -> None:
        self._view = view
        self.started = self.last_progress = self._clock()

    def on_ready(self) -> None:
        self._ready = True

    def on_busy(self, scope: Scope) -> None:
        self._busy = True
        self.last_progress = self._clock()

    def on_idle(self) -> None:
        self._busy = False

    def on_bytes(self, n: int) -> None:
        self.last_progress = self._clock()  # one float store: cheap enough for every block

    def on_result(self, result: TransferResult) -> None:
        self.last_progress = self._clock()

    def on_batch(self, report: BatchReport) -> None:
        now = self._clock()
        self.last_progress = now
        if report.clean:
            self.last_success = now

    def on_trouble(self, trouble: Trouble) -> None:
        if self._trouble is None:
            self._trouble_since = self._clock()
        self._trouble = trouble

    def on_recovered(self) -> None:
        self._trouble = None
        self._trouble_since = None

    def on_stop(self, summary: Summary, error: str | None) -> None:
        self._stopped = True

    # -- questions --------------------------------------------------------------------------------
    def seconds_since_last_sync(self) -> float:
        """Since the end of the last clean batch (a rescan that found nothing to do counts); since the
        start before the first one."""
        return self._clock() - (self.last_success if self.last_success is not None else self.started)

    def trouble(self) -> Trouble | None:
        return self._trouble

    def verdict(self) -> HealthVerdict:
        now = self._clock()
        snap = self._view() if self._view is not None else None
        details: dict[str, Any] = {"uptime_seconds": round(now - self.started, 1),
                   "seconds_since_last_sync": round(self.seconds_since_last_sync(), 1)}
        if snap is not None:
            details.update({"mode": snap.mode, "queued": snap.queued, "in_flight": snap.in_flight,
                            "uploaded": snap.uploaded, "deleted": snap.deleted, "failed": snap.failed})
        ready = self._ready
        if self._stopped:
            return HealthVerdict(False, ready, STOPPING, "the watcher is stopping", details)
        trouble = self._trouble
        if trouble is not None:
            since = now - (self._trouble_since or now)
            return HealthVerdict(False, ready, trouble.kind.value,
                                 f"{trouble.reason}; retrying every {trouble.retry_in_s:.0f} s at most, for {since:.0f} s so far",
                                 details)
        lag = self._lag(now, snap)
        if lag is not None and lag > self.rules.behind_after_s:
            return HealthVerdict(False, ready, BEHIND,
                                 f"nothing processed for {lag:.0f} s while work is waiting "
                                 f"(limit {self.rules.behind_after_s:.0f} s, --behind-after times --rescan)", details)
        return HealthVerdict(True, ready, OK if ready else STARTING, "", details)

    def _lag(self, now: float, snap: WatchSnapshot | None) -> float | None:
        """Seconds work has been waiting without progress; None when no work is waiting."""
        queued_since = snap.queued_since if snap is not None and snap.queued else None
        in_flight = snap is not None and snap.in_flight > 0
        if queued_since is None and not in_flight and not self._busy:
            return None
        start = self.last_progress if queued_since is None else max(self.last_progress, queued_since)
        return now - start


__all__ = ["HealthRules", "HealthVerdict", "WatchHealth"]
