"""--notify-url for a one-shot run (mirror from cron): one alert when the run ends badly, or always.

The alert is posted after the run, by AlertQueue's thread, and the process waits for its delivery (or
gives up) for at most ``WAIT_AT_EXIT_S`` before exiting: the transfers were over by then, and a cron run
that exits at once would kill the delivery and its retries with it.
"""

from __future__ import annotations

import dataclasses

from ..errors import BucketSyncError, ExitCode
from ..redact import redact
from ..sync.listener import Summary
from .alert_payload import FailureSamples, RunContext, alert_payload, why_alert
from .notify_url import AlertQueue, NotifyTarget, WebhookPoster

WAIT_AT_EXIT_S = 30.0  # enough for the retries of a webhook that hiccups; bounded for cron


class RunAlerts:
    def __init__(self, target: NotifyTarget, ctx: RunContext, *, queue: AlertQueue | None = None) -> None:
        self.target = target
        self.ctx = ctx
        self.samples = FailureSamples()  # a Listener: give it the run's results
        self.queue = queue or AlertQueue(WebhookPoster(target))

    def run_ended(self, summary: Summary) -> None:
        self._post(summary, error=None)

    def run_failed(self, summary: Summary, exc: BucketSyncError) -> None:
        """The run raised (a guard refused, credentials failed...): ``summary`` counts what it did first."""
        summary = dataclasses.replace(summary, exit_code=int(exc.exit_code))
        self._post(summary, error=redact(exc.message), refusal=redact(exc.message) if exc.exit_code == ExitCode.GUARD else None)

    def _post(self, summary: Summary, *, error: str | None, refusal: str | None = None) -> None:
        why = why_alert(summary, refusal=refusal, error=error, always=self.target.always)
        if why is None:
            return
        failures, omitted = self.samples.take()
        self.queue.post(alert_payload(self.ctx, summary, why=why, scope="run", failures=failures, omitted=omitted,
                                      refusal=refusal, error=None if refusal else error))

    def close(self, timeout_s: float = WAIT_AT_EXIT_S) -> None:
        self.queue.close(timeout_s)


__all__ = ["RunAlerts", "WAIT_AT_EXIT_S"]
