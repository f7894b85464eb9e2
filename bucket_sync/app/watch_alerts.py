"""--notify-url for watch: an alert when a batch ends with failures or a guard refusal (every batch that
did something, with --notify-always), and when the watcher ends with an error.

Alerts go through an AlertQueue that spaces them at least a minute apart and merges what waits (a burst
of failing batches is one message, with the counts added); see notify_url.py.
"""

from __future__ import annotations

from ..sync.listener import Summary
from ..sync.model import TransferResult
from .alert_payload import FailureSamples, RunContext, Why, alert_payload, merge_alerts, why_alert
from .notify_url import AlertQueue, NotifyTarget, WebhookPoster
from .watch_monitor import BatchReport, WatchMonitor

MIN_GAP_S = 60.0
WAIT_AT_EXIT_S = 5.0  # systemd's stop timeout is short: TimeoutStopSec=15 in README's unit


class WatchAlerts(WatchMonitor):
    def __init__(self, target: NotifyTarget, ctx: RunContext, *, queue: AlertQueue | None = None) -> None:
        self.target = target
        self.ctx = ctx
        self.samples = FailureSamples()
        self.queue = queue or AlertQueue(WebhookPoster(target), merge=merge_alerts, min_gap_s=MIN_GAP_S)

    def on_result(self, result: TransferResult) -> None:
        self.samples.on_result(result)

    def on_batch(self, report: BatchReport) -> None:
        failures, omitted = self.samples.take()  # the watcher runs one batch at a time: these are its own
        why = why_alert(report.summary, refusal=report.refusal, always=self.target.always and report.did_something)
        if why is None:
            return
        self.queue.post(alert_payload(self.ctx, report.summary, why=why, scope="batch", failures=failures,
                                      omitted=omitted, refusal=report.refusal))

    def on_stop(self, summary: Summary, error: str | None) -> None:
        # Failures were alerted batch by batch; the end deserves one when it is an error (the watcher
        # gave up: exit 3 or 4) or when every run is wanted.
        why = Why.ERROR if error else (Why.ALWAYS if self.target.always else None)
        if why is not None:
            self.queue.post(alert_payload(self.ctx, summary, why=why, scope="run", error=error))

    def close(self, timeout_s: float = WAIT_AT_EXIT_S) -> None:
        """After the watcher returned (never inside it: the signal's grace timer is still running then)."""
        self.queue.close(timeout_s)


__all__ = ["WatchAlerts"]
