"""watch: keep REMOTE up to date with LOCAL_DIR until SIGINT/SIGTERM."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import click

from ..app.alert_payload import RunContext
from ..app.lock import pair_lock
from ..app.render import HumanRenderer, JsonRenderer
from ..app.run_log import ResultLog, WithExtras
from ..app.watch import WatchRequest, Watcher, serve
from ..app.watch_service import DEFAULT_BEHIND_AFTER, ServiceOptions, WatchService
from ..errors import UsageError
from ..targets import looks_remote, parse_remote
from .notify_options import make_notify_target, notify_options
from .options import common_options, make_filter, make_globals, make_settings, transfer_options

GRACE_S = 5.0  # after SIGINT/SIGTERM: how long in-flight transfers may take to finish


def _human_status(quiet: bool, target: str) -> Callable[[dict[str, Any]], None]:
    def show(status: dict[str, Any]) -> None:
        if quiet:
            return
        if status["state"] == "watching":
            line = f"watch: watching {target} ({status['mode']} events); {status['uploaded']} uploaded so far"
        else:
            line = (f"watch: {status['queued']} queued, {status['in_flight']} in flight, {status['done']} done "
                    f"({status['uploaded']} uploaded, {status['deleted']} deleted), {status['failed']} failed")
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return show


@click.command()
@click.argument("local_dir", metavar="LOCAL_DIR")
@click.argument("remote_text", metavar="REMOTE")
@transfer_options
@click.option("--delete", is_flag=True, help="Propagate local deletions (and remove remote extras at each full reconcile).")
@click.option("--debounce", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True, metavar="SECONDS",
              help="Quiet time before a changed path is checked; a file must keep its size and mtime that long.")
@click.option("--rescan", type=click.FloatRange(1, None), default=600.0, show_default=True, metavar="SECONDS",
              help="Full reconcile interval (catches missed events).")
@click.option("--polling", is_flag=True, help="Poll the folder instead of native events (network shares).")
@click.option("--follow-symlinks", is_flag=True, help="Upload what symbolic links point to (default: skip them).")
@click.option("--wait-lock", type=click.FloatRange(0, None), default=0.0, metavar="SECONDS",
              help="Wait this long for another mirror/watch of the same pair to finish (default: fail at once, exit 5).")
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@click.option("--status-interval", type=click.FloatRange(0.5, None), default=60.0, hidden=True, metavar="SECONDS")
@click.option("--metrics", metavar="HOST:PORT",
              help="Serve Prometheus /metrics, and /healthz and /readyz, on HOST:PORT (HOST defaults to 127.0.0.1; "
                   "port 0 picks a free one). Off by default.")
@click.option("--behind-after", type=click.FloatRange(1, None), default=DEFAULT_BEHIND_AFTER, show_default=True,
              metavar="RESCANS", help="/healthz says \"behind\" (503) when nothing was processed for this many "
                                      "--rescan intervals while work is waiting.")
@notify_options
@common_options
@click.pass_context
def watch(ctx: click.Context, /, local_dir: str, remote_text: str, **kw: Any) -> int:
    """Reconcile LOCAL_DIR to REMOTE once (like upload), then upload files as they change, until stopped.

    A file is uploaded once it is complete: closed for writing, or unchanged in size and mtime for the
    debounce window. Local deletions reach the bucket only with --delete. Stop with SIGINT or SIGTERM
    (in-flight transfers get a few seconds to finish; exit code 0).
    """
    g = make_globals(ctx, kw)
    if looks_remote(local_dir):
        raise UsageError("watch takes LOCAL_DIR first and REMOTE second", hint="bucket-sync watch ./photos itwin://<iTwinId>/photos")
    remote = parse_remote(remote_text, itwin_id=kw.pop("itwin"))
    if not os.path.isdir(local_dir):
        raise UsageError(f"{local_dir} is not a folder", hint="watch needs an existing folder to follow")
    service_options = _service_options(kw)
    # --stats sets the periodic status line (every 60 s by default): a watcher is never on a terminal.
    status_every = kw.pop("stats", None) or kw.pop("status_interval")
    kw.pop("status_interval", None)
    req = WatchRequest(
        local_dir=local_dir, prefix=remote.prefix, settings=make_settings(kw), filters=make_filter(kw),
        checksum=kw.pop("checksum"), follow_symlinks=kw.pop("follow_symlinks"), delete=kw.pop("delete"),
        debounce_s=kw.pop("debounce"), rescan_s=kw.pop("rescan"), polling=kw.pop("polling"),
        status_s=status_every,
    )
    renderer: JsonRenderer | HumanRenderer | WithExtras
    status: Callable[[dict[str, Any]], None]
    if g.json:
        renderer = json_renderer = JsonRenderer(verbose=g.verbose)
        status = json_renderer.emit
    else:
        # A line per file by default: a watcher's log is read afterwards, a progress bar would be noise.
        renderer = HumanRenderer(quiet=g.quiet, verbose=0 if g.quiet else max(1, g.verbose), progress=False)
        status = _human_status(g.quiet, f"{local_dir} -> {remote.describe()}")
    if g.log_file:  # a line per file and the summary in the (rotating) log file too
        renderer = WithExtras(renderer, [ResultLog()])
    with pair_lock(local_dir, remote.describe(), wait_s=kw.pop("wait_lock"), command="watch"):
        # Binds the metrics port: a port in use is exit 2 here, before anything is watched or sent.
        service = WatchService(service_options, rescan_s=req.rescan_s,
                               ctx=RunContext.of("watch", os.path.abspath(local_dir), remote.describe()))
        try:
            container = service.container(service.globals(g).container(remote, write=True))
            watcher = Watcher(req, container, renderer, status=status, monitors=service.monitors)
            service.start()
            if service.url and not g.quiet:
                sys.stderr.write(f"watch: metrics on {service.url}/metrics, health on {service.url}/healthz\n")
                sys.stderr.flush()
            summary = serve(watcher, grace_s=GRACE_S, finish=renderer.finish)
            renderer.finish(summary)
        finally:
            service.close()  # alerts still queued get a few seconds; the summary is out already
    return summary.exit_code


def _service_options(kw: dict[str, Any]) -> ServiceOptions:
    """--metrics, --behind-after, --notify-url: every mistake in them is exit 2 before the lock is taken."""
    metrics_text = kw.pop("metrics")
    metrics = None
    if metrics_text:
        from ..app.watch_http import parse_listen_address  # http.server: only for --metrics

        metrics = parse_listen_address(metrics_text)
    return ServiceOptions(metrics=metrics, behind_after=kw.pop("behind_after"), notify=make_notify_target(kw))
