"""``watch --metrics``: the watcher's counters and gauges, in Prometheus' text format (prometheus_client).

Imported only when --metrics is given: a cron job's mirror, or a watch without it, never loads
prometheus_client. Events (files, bytes, failures, rescans, backoffs) are counters updated as they happen;
states (queue, in flight, health, SAS and token lifetimes, observer mode) are read from the watcher and
its health at each scrape, so they are never stale.

Labels take values from small fixed sets only (an operation, a failure kind, a health state, an observer
mode, which SAS): never a file name, a URL or anything secret. README.md ("Metrics") lists every metric.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from .. import __version__
from ..sync.model import Action, Reason, Status, TransferResult
from .watch_credentials import CredentialWatch
from .watch_health import WatchHealth
from .watch_monitor import BatchReport, Scope, Trouble, TroubleKind, View, WatchMonitor

NS = "bucket_sync_watch"
OPS = (Action.UPLOAD, Action.DELETE)
FAILURE_KINDS = ("auth", "not_found", "rejected", "transfer")
HEALTH_STATES = ("starting", "ok", "outage", "auth", "not_found", "behind", "stopping")
OBSERVER_MODES = ("native", "polling")
_REJECTED = {Reason.UNSAFE_NAME, Reason.NAME_CLASH, Reason.NOT_A_REGULAR_FILE}

# A *_created sample beside every counter doubles the page for nothing a dashboard uses (the process is
# ours: this switch is process-wide).
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves this one unannotated


def failure_kind(result: TransferResult) -> str:
    """What kind of failure a failed result is, from its exit code and reason (never from its text,
    which names the file)."""
    if result.exit_code == 3:
        return "auth"
    if result.exit_code == 4:
        return "not_found"
    if result.reason in _REJECTED:
        return "rejected"
    return "transfer"


class WatchMetrics(WatchMonitor):
    def __init__(self, health: WatchHealth, credentials: CredentialWatch | None = None) -> None:
        self.health = health
        self.credentials = credentials
        self._view: View | None = None
        # A registry of our own: nothing another library registers globally ends up on our page.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.files = Counter(f"{NS}_files", "Files uploaded and blobs deleted, by operation.", ["op"], registry=r)
        self.bytes = Counter(f"{NS}_bytes", "Bytes uploaded (sent on the wire) and deleted (size of the blobs "
                                            "deleted), by operation.", ["op"], registry=r)
        self.failures = Counter(f"{NS}_failures", "Files that failed, by operation and kind "
                                                  "(auth, not_found, rejected, transfer).", ["op", "kind"], registry=r)
        self.rescans = Counter(f"{NS}_rescans", "Full reconciles completed (the first one included).", registry=r)
        self.batches = Counter(f"{NS}_batches", "Engine runs completed, by scope (reconcile, changes, deletions).",
                               ["scope"], registry=r)
        self.refusals = Counter(f"{NS}_refusals", "Guard refusals (an empty LOCAL_DIR not mirrored as deletes).",
                                registry=r)
        self.backoffs = Counter(f"{NS}_backoffs", "Steps that failed and were retried after a backoff, by kind "
                                                  "(outage, auth, not_found).", ["kind"], registry=r)
        for op in OPS:  # every series exists from the start, at 0: rate() and alerts need no special case
            self.files.labels(op=op.value)
            self.bytes.labels(op=op.value)
            for kind in FAILURE_KINDS:
                self.failures.labels(op=op.value, kind=kind)
        for scope in Scope:
            self.batches.labels(scope=scope.value)
        for trouble in TroubleKind:
            self.backoffs.labels(kind=trouble.value)
        r.register(_StateCollector(self))
        ProcessCollector(registry=r)  # memory, CPU, open files (Linux): a process that runs for weeks
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    # -- events -----------------------------------------------------------------------------------
    def on_start(self, view: View) -> None:
        self._view = view

    def on_result(self, result: TransferResult) -> None:
        if result.op not in OPS:
            return
        op = result.op.value
        if result.status is Status.OK:
            self.files.labels(op=op).inc()
            self.bytes.labels(op=op).inc(result.bytes_sent if result.op is Action.UPLOAD else result.bytes)
        elif result.status is Status.FAILED:
            self.failures.labels(op=op, kind=failure_kind(result)).inc()

    def on_batch(self, report: BatchReport) -> None:
        self.batches.labels(scope=report.scope.value).inc()
        if report.scope is Scope.RECONCILE:
            self.rescans.inc()
        if report.refusal:
            self.refusals.inc()

    def on_trouble(self, trouble: Trouble) -> None:
        self.backoffs.labels(kind=trouble.kind.value).inc()

    # -- exposition -------------------------------------------------------------------------------
    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The page for a scrape: Prometheus text, or OpenMetrics when the scraper asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _StateCollector:
    """Gauges read at scrape time from the watcher, its health, and the observed SAS and token."""

    def __init__(self, metrics: WatchMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Metric]:
        return []  # names vary with the target (token metrics only for API targets): collect() at register

    def collect(self) -> Iterator[Metric]:
        m = self.m
        info = GaugeMetricFamily("bucket_sync_info", "Always 1; the version in a label.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        view = m._view
        if view is not None:
            snap = view()
            yield GaugeMetricFamily(f"{NS}_queue_length", "Paths waiting to be checked and uploaded.", snap.queued)
            yield GaugeMetricFamily(f"{NS}_in_flight", "Transfers of the running batch not finished yet.", snap.in_flight)
            observer = GaugeMetricFamily(f"{NS}_observer", "How changes are seen: 1 for the mode in use "
                                                          "(native events or polling).", labels=["mode"])
            for mode in OBSERVER_MODES:
                observer.add_metric([mode], 1 if snap.mode == mode else 0)
            yield observer
        verdict = m.health.verdict()
        yield GaugeMetricFamily(f"{NS}_healthy", "1 while /healthz answers 200, else 0.", 1 if verdict.healthy else 0)
        yield GaugeMetricFamily(f"{NS}_ready", "1 once the first reconcile is done.", 1 if verdict.ready else 0)
        state = GaugeMetricFamily(f"{NS}_health_state", "1 for the current health state (see /healthz).",
                                  labels=["state"])
        for name in HEALTH_STATES:
            state.add_metric([name], 1 if verdict.state == name else 0)
        yield state
        yield GaugeMetricFamily(f"{NS}_seconds_since_last_sync", "Seconds since the last batch or rescan that "
                                "ended with no failure (since the start, before the first).",
                                m.health.seconds_since_last_sync())
        yield from self._credentials()

    def _credentials(self) -> Iterator[Metric]:
        watch = self.m.credentials
        if watch is None:
            return
        refreshes = CounterMetricFamily(f"{NS}_sas_refreshes", "SAS renewals (before expiry, or after a 403), "
                                        "by access (write: the SAS that writes; read: a reality data's read access).",
                                        labels=["access"])
        left = GaugeMetricFamily(f"{NS}_sas_seconds_left", "Seconds until the current SAS expires (its se=), "
                                 "by access.", labels=["access"])
        for sas in watch.sas:
            refreshes.add_metric([sas.access], sas.refreshes)
            seconds = watch.seconds_left(sas.expires_at) if sas.seen else None
            if seconds is not None:
                left.add_metric([sas.access], seconds)
        yield refreshes
        yield left
        tokens = watch.tokens
        if tokens is not None:  # only targets whose SAS comes from the API use a token
            yield CounterMetricFamily(f"{NS}_token_refreshes", "Access token renewals.", tokens.refreshes)
            seconds = watch.seconds_left(tokens.expires_at) if tokens.used else None
            if seconds is not None:
                yield GaugeMetricFamily(f"{NS}_token_seconds_left", "Seconds until the access token expires.", seconds)


__all__ = ["WatchMetrics", "failure_kind"]
