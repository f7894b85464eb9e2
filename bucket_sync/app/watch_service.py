"""The watcher as a service: the monitors one watch run gets from its options, built and torn down here.

- always: WatchHealth (cheap: a few float stores per event), which the others read;
- ``--metrics HOST:PORT``: WatchMetrics and the HTTP endpoint (/metrics, /healthz, /readyz), and the SAS
  and token observed for their metrics; prometheus_client is imported only then;
- ``NOTIFY_SOCKET`` in the environment: WatchSystemd (READY, WATCHDOG, STATUS);
- ``--notify-url URL``: WatchAlerts.

Building it binds the metrics port: an address that cannot be used is a usage error (exit 2) before the
watcher starts. :meth:`close` runs after the watcher returned: it waits briefly for alerts still queued.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from ..errors import UsageError
from ..storage.container import ContainerRef
from .alert_payload import RunContext
from .context import Globals
from .notify_url import NotifyTarget
from .systemd_notify import from_environment, watchdog_interval
from .watch_alerts import WatchAlerts
from .watch_credentials import CredentialWatch
from .watch_health import HealthRules, WatchHealth
from .watch_monitor import Monitors
from .watch_systemd import WatchSystemd

if TYPE_CHECKING:  # http.server is imported only for --metrics
    from .watch_http import HealthServer, ListenAddress

DEFAULT_BEHIND_AFTER = 3.0  # rescans: nothing processed for 3 x --rescan (30 min) while work waits


@dataclass(frozen=True)
class ServiceOptions:
    metrics: "ListenAddress | None" = None
    behind_after: float = DEFAULT_BEHIND_AFTER  # multiples of --rescan
    notify: NotifyTarget | None = None


class WatchService:
    def __init__(self, options: ServiceOptions, *, rescan_s: float, ctx: RunContext,
                 env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.health = WatchHealth(HealthRules(behind_after_s=options.behind_after * rescan_s))
        self.monitors = Monitors(self.health)
        self.credentials: CredentialWatch | None = None
        self.server: HealthServer | None = None
        if options.metrics is not None:
            self._serve_metrics(options.metrics)
        notifier = from_environment(env)
        if notifier is not None:
            self.monitors.add(WatchSystemd(notifier, self.health, watchdog_s=watchdog_interval(env)))
        self.alerts = WatchAlerts(options.notify, ctx) if options.notify is not None else None
        if self.alerts is not None:
            self.monitors.add(self.alerts)

    def _serve_metrics(self, address: "ListenAddress") -> None:
        try:
            from .watch_metrics import WatchMetrics  # prometheus_client: only for --metrics
        except ImportError:
            raise UsageError("--metrics needs the prometheus_client package, which is not installed",
                             hint="pip install prometheus_client (a dependency of bucket-sync: reinstall it)") from None
        from .watch_http import HealthServer

        self.credentials = CredentialWatch()
        metrics = WatchMetrics(self.health, self.credentials)
        self.monitors.add(metrics)
        self.server = HealthServer(address, metrics=metrics.render, health=self.health.verdict)

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def globals(self, g: Globals) -> Globals:
        return self.credentials.globals(g) if self.credentials is not None else g

    def container(self, ref: ContainerRef) -> ContainerRef:
        return self.credentials.container(ref) if self.credentials is not None else ref

    def start(self) -> None:
        if self.server is not None:
            self.server.start()

    def close(self) -> None:
        try:
            if self.alerts is not None:
                self.alerts.close()
        finally:
            if self.server is not None:
                self.server.close()


__all__ = ["DEFAULT_BEHIND_AFTER", "ServiceOptions", "WatchService"]
