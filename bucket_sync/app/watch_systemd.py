"""The watcher under systemd ``Type=notify``: READY once the bucket has caught up, watchdog pings while
healthy, and a STATUS line that ``systemctl status`` shows.

- ``READY=1`` after the first reconcile (``systemctl start`` returns then, and units ordered after this one
  start with the bucket up to date). Until then, while the reconcile makes progress, each tick extends
  systemd's start timeout (``EXTEND_TIMEOUT_USEC``): a first reconcile of a big tree can take longer than
  ``TimeoutStartSec``, and it is no hang.
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` (systemd's advice), only while /healthz would say 200: a
  watcher that is stuck, behind, or unable to reach storage or authenticate for longer than
  ``WatchdogSec=`` is restarted by systemd (``Restart=on-failure``).
- ``STATUS=`` with the queue and the last sync, at each tick and at once when trouble starts or ends.
- ``STOPPING=1`` when it stops.
"""

from __future__ import annotations

import threading

from ..sync.listener import Summary
from .systemd_notify import SystemdNotifier
from .watch_health import HealthVerdict, WatchHealth
from .watch_monitor import Trouble, View, WatchMonitor

STATUS_EVERY_S = 10.0  # without a watchdog: how often STATUS= is refreshed


class WatchSystemd(WatchMonitor):
    def __init__(self, notifier: SystemdNotifier, health: WatchHealth, *, watchdog_s: float | None) -> None:
        self.notifier = notifier
        self.health = health
        self.watchdog_s = watchdog_s
        self.interval = watchdog_s / 2 if watchdog_s else STATUS_EVERY_S
        self._view: View | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one datagram at a time: the ticker and the loop thread both send
        self._last_status = ""
        self._ready = False
        self._thread: threading.Thread | None = None

    def on_start(self, view: View) -> None:
        self._view = view
        self._send(STATUS="starting: first reconcile")
        self._thread = threading.Thread(target=self._tick_forever, name="watch-systemd", daemon=True)
        self._thread.start()

    def on_ready(self) -> None:
        self._ready = True
        self._send(READY=1, STATUS=self.status_line(self.health.verdict()))

    def on_trouble(self, trouble: Trouble) -> None:
        self._send_status()

    def on_recovered(self) -> None:
        self._send_status()

    def on_stop(self, summary: Summary, error: str | None) -> None:
        self._stop.set()
        line = f"stopped: {error}" if error else f"stopping: {summary.uploaded} uploaded, {summary.deleted} deleted, " \
                                                 f"{summary.failed} failed"
        self._send(STOPPING=1, STATUS=line)
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.notifier.close()

    # -- ticks --------------------------------------------------------------------------------------
    def _tick_forever(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        verdict = self.health.verdict()
        fields: dict[str, object] = {}
        if verdict.healthy and self.watchdog_s:
            fields["WATCHDOG"] = 1
        if verdict.healthy and not self._ready:
            fields["EXTEND_TIMEOUT_USEC"] = int(self.interval * 3 * 1_000_000)
        line = self.status_line(verdict)
        if line != self._last_status:
            fields["STATUS"] = line
        if fields:
            self._send(**fields)

    def _send_status(self) -> None:
        line = self.status_line(self.health.verdict())
        if line != self._last_status:
            self._send(STATUS=line)

    def _send(self, **fields: object) -> None:
        with self._lock:
            if "STATUS" in fields:
                self._last_status = str(fields["STATUS"])
            self.notifier.send(**fields)

    def status_line(self, verdict: HealthVerdict) -> str:
        d = verdict.details
        counts = (f"{d.get('queued', 0)} queued, {d.get('in_flight', 0)} in flight, {d.get('uploaded', 0)} uploaded, "
                  f"{d.get('deleted', 0)} deleted, {d.get('failed', 0)} failed")
        if not verdict.healthy:
            return f"{verdict.state}: {verdict.reason} ({counts})"
        if not verdict.ready:
            return f"starting: first reconcile ({counts})"
        age = int(d.get("seconds_since_last_sync", 0))
        return f"watching ({d.get('mode', '')}): {counts}; last sync {age} s ago"


__all__ = ["WatchSystemd"]
