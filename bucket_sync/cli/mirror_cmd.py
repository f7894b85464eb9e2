"""mirror: make DST identical to SRC (exactly one side is REMOTE), under the pair's lock.

A named job (``--job NAME``) fills in SRC, DST and options from ``[jobs.NAME]`` in the config file, so a
crontab line stays short. Options given on the command line (or through their environment variable) win
over the job's; the job's win over ``[mirror]`` and top-level config keys, which win over defaults.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from ..app.alert_payload import RunContext
from ..app.lock import pair_lock
from ..app.run_alerts import RunAlerts
from ..app.sync_run import SyncRequest, parse_max_delete, run_sync
from ..config import Config
from ..errors import BucketSyncError, ConfigError, UsageError
from ..sync.listener import FanOut, Tally
from ..sync.model import Direction
from ..targets import looks_remote, parse_remote
from .notify_options import make_notify_target, notify_options
from .options import common_options, make_filter, make_globals, make_renderer, make_settings, shard_options, transfer_options

if TYPE_CHECKING:
    from ..app.notify_url import NotifyTarget

_EXPLICIT = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
# Options a job may not set: they choose the config file, or the job itself.
_NOT_IN_JOB = {"config_path", "job"}


@click.command()
@click.argument("src", required=False, metavar="SRC")
@click.argument("dst", required=False, metavar="DST")
@transfer_options
@shard_options
@click.option("--no-delete", is_flag=True, help="Keep files in DST that SRC does not have.")
@click.option("--max-delete", default="50%", show_default=True, metavar="N|P%",
              help="Refuse (exit 6) to delete more than N files, or P% of DST's files.")
@click.option("--force", is_flag=True, help="Override the safety guards (--max-delete, empty or missing SRC).")
@click.option("--follow-symlinks", is_flag=True, help="Upload what symbolic links point to (default: skip them).")
@click.option("--wait-lock", type=click.FloatRange(0), default=0.0, show_default=True, metavar="SECONDS",
              help="Wait this long for another mirror or watch of the same pair to finish (else exit 5 at once).")
@click.option("--job", metavar="NAME", help="Run [jobs.NAME] from the config file (source, destination, options).")
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@notify_options
@common_options
@click.pass_context
def mirror(ctx: click.Context, /, src: str | None, dst: str | None, **kw: Any) -> int:
    """Make DST identical to SRC; exactly one of them is REMOTE.

    LOCAL_DIR -> REMOTE uploads new and changed files and deletes remote extras; REMOTE -> LOCAL_DIR
    downloads and deletes local extras (--no-delete keeps extras). Deletes run only after every transfer
    succeeded. Exit 5 if another mirror or watch holds this pair's lock, 6 if a safety guard refused.
    """
    job_name = kw.pop("job")
    if job_name:
        src, dst = apply_job(ctx, job_name, src, dst, kw)
    g = make_globals(ctx, kw)
    if not src or not dst:
        raise UsageError("mirror needs SRC and DST (or --job NAME)",
                         hint="bucket-sync mirror ./captures itwin://<iTwinId>/captures")
    src_remote, dst_remote = looks_remote(src), looks_remote(dst)
    if src_remote == dst_remote:
        both = "both" if src_remote else "neither"
        raise UsageError(f"mirror needs exactly one REMOTE side, and {both} of {src!r} and {dst!r} is remote",
                         hint="mirror LOCAL_DIR REMOTE uploads; mirror REMOTE LOCAL_DIR downloads")
    direction = Direction.UP if dst_remote else Direction.DOWN
    local_dir, remote_text = (src, dst) if direction is Direction.UP else (dst, src)
    remote = parse_remote(remote_text, itwin_id=kw.pop("itwin"))
    max_delete = str(kw.pop("max_delete"))
    parse_max_delete(max_delete)  # a bad value is a usage error before any lock or network call
    if direction is Direction.UP and os.path.lexists(local_dir) and not os.path.isdir(local_dir):
        raise UsageError(f"{local_dir} is not a folder: mirror copies a folder's contents",
                         hint="give a folder, or use `bucket-sync upload` for single files")
    req = SyncRequest(command="mirror", direction=direction, local=(local_dir,), prefix=remote.prefix,
                      settings=make_settings(kw), filters=make_filter(kw), checksum=kw.pop("checksum"),
                      follow_symlinks=kw.pop("follow_symlinks"), mirror=True, delete=not kw.pop("no_delete"),
                      max_delete=max_delete, force=kw.pop("force"))
    notify = make_notify_target(kw)
    renderer = make_renderer(g, kw)
    alerts = _alerts(notify, direction, local_dir, remote.describe())
    tally = Tally()
    try:
        # Per pair and shard: shards of one job never block each other, two runs of one shard do.
        shard = req.filters.shard
        with pair_lock(local_dir, remote.describe() + (f" ({shard.describe()})" if shard else ""),
                       wait_s=kw.pop("wait_lock"), command="mirror"):
            # Upload needs write (and list/delete) on the container; a download mirror only reads it.
            summary = run_sync(req, lambda: g.container(remote, write=direction is Direction.UP),
                               FanOut(renderer, alerts.samples) if alerts else renderer, tally=tally)
        renderer.finish(summary)
        if alerts:
            alerts.run_ended(summary)
    except BucketSyncError as exc:
        if alerts:  # a guard's refusal (exit 6), credentials, not found...; never exit 5 (why_alert)
            alerts.run_failed(tally.summary("mirror"), exc)
        raise
    finally:
        if alerts:
            alerts.close()  # the transfers are over: wait (bounded) for the alert to go out
    return summary.exit_code


def _alerts(notify: NotifyTarget | None, direction: Direction, local_dir: str, remote: str) -> RunAlerts | None:
    if notify is None:
        return None
    local = os.path.abspath(local_dir)
    source, destination = (local, remote) if direction is Direction.UP else (remote, local)
    return RunAlerts(notify, RunContext.of("mirror", source, destination))


def apply_job(ctx: click.Context, name: str, src: str | None, dst: str | None, kw: dict[str, Any]) -> tuple[str, str]:
    """Fill ``kw`` from ``[jobs.NAME]`` where the user did not set the option explicitly; return (SRC, DST)."""
    config: Config = ctx.obj["config"] if ctx.obj else Config(path=None)
    job = config.jobs.get(name)
    if job is None:
        known = ", ".join(sorted(config.jobs)) or "none"
        where = config.path or "no config file was found"
        raise UsageError(f"no job named {name!r} in {where} (known jobs: {known})",
                         hint="define [jobs.<name>] with source and destination; see config.example.toml")
    if src or dst:
        raise UsageError(f"--job {name} gives SRC and DST itself; do not pass them too",
                         hint=f"run `bucket-sync mirror --job {name}` alone, or give SRC DST without --job")
    params = {p.name: p for p in ctx.command.params}
    for key, value in job.items():
        if key in ("source", "destination"):
            continue
        param_name = key.replace("-", "_")
        param = params.get(param_name)
        if param is None or param_name in _NOT_IN_JOB:
            raise ConfigError(f"{config.path}: [jobs.{name}] sets {key!r}, which is not a mirror option",
                              hint="see `bucket-sync mirror --help` and config.example.toml")
        if ctx.get_parameter_source(param_name) in _EXPLICIT:
            continue  # the command line wins over the job
        kw[param_name] = _cast(ctx, param, value, f"[jobs.{name}].{key}", config)
    return str(job["source"]), str(job["destination"])


def _cast(ctx: click.Context, param: click.Parameter, value: Any, where: str, config: Config) -> Any:
    try:
        if param.name == "max_delete":
            return str(value)
        return param.type_cast_value(ctx, value)
    except click.BadParameter as exc:
        raise ConfigError(f"{config.path}: {where}: {exc.message}") from None
