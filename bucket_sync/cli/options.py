"""Options shared by the commands, and turning them into the app layer's Globals."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, TypeVar

import click

from ..app.context import DEFAULT_API_URL, DEFAULT_IMS_URL, Globals, setup_logging
from ..app.render import HumanRenderer, JsonRenderer
from ..app.run_log import ResultLog, Stats, WithExtras, stats_line
from ..config import Config
from ..errors import UsageError
from ..sync.blob_metadata import OWN_KEYS
from ..sync.budget import MAX_BLOCK_SIZE, MiB
from ..sync.filters import PathFilter
from ..sync.model import BlobExtras
from ..sync.settings import TransferSettings
from ..sync.shard import parse_shard
from .durations import parse_duration_ns

_F = TypeVar("_F", bound=Callable[..., Any])  # a command function, before or after other click decorators

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB, "t": 1024 * 1024 * MiB}


def _parse_amount(value: str, option: str, hint: str) -> int:
    m = _SIZE.match(value)
    if not m:
        raise UsageError(f"{option} {value!r} is not understood", hint=hint)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_size(value: str | int | None) -> int | None:
    """'8M', '8MiB', '16MB', '1048576' -> bytes (binary units, as rclone reads them)."""
    if value is None or value == "":
        return None
    size = value if isinstance(value, int) else _parse_amount(value, "--block-size", "use e.g. 8M, 16MiB or 4194304")
    if size < 64 * 1024 or size > MAX_BLOCK_SIZE:
        raise UsageError(f"--block-size {value} is out of range", hint="choose between 64K and 4000M")
    return size


def parse_rate(value: str | int | None) -> int | None:
    """--bwlimit: '10M' -> 10 MiB/s; '0' or empty -> unlimited."""
    if value in (None, "", 0, "0"):
        return None
    rate = value if isinstance(value, int) else _parse_amount(value, "--bwlimit", "use bytes per second, e.g. 500K or 10M")
    if rate < 1024:
        raise UsageError(f"--bwlimit {value} is below 1K per second")
    return rate


def common_options(f: _F) -> _F:
    """--config, --api-url, --ims-url, --json, -q, -v, --max-retry-wait on every command."""
    options = [
        click.option("--config", "config_path", metavar="PATH", help="Config file (TOML). Default: $BUCKET_SYNC_CONFIG, then the user config dir."),
        click.option("--api-url", envvar="ITWIN_API_URL", default=DEFAULT_API_URL, show_default=True, help="iTwin Platform API base URL [env ITWIN_API_URL]."),
        click.option("--ims-url", envvar="ITWIN_IMS_URL", default=DEFAULT_IMS_URL, show_default=True, help="Bentley IMS (OAuth) base URL [env ITWIN_IMS_URL]."),
        click.option("--json", "json", is_flag=True, help="Print JSON lines on stdout (one object per event, a summary last)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress and no summary; errors only."),
        click.option("-v", "--verbose", count=True, help="More detail on stderr (-v each file, -vv debug)."),
        click.option("--max-retry-wait", type=float, default=300.0, show_default=True, metavar="SECONDS", help="Longest total wait for API rate limits (429/503 Retry-After)."),
        click.option("--log-file", metavar="PATH", help="Also write the log here, with times (at INFO at least; rotated at 10 MiB for watch)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def transfer_options(f: _F) -> _F:
    options = [
        click.option("--dry-run", is_flag=True, help="Plan and report, change nothing."),
        click.option("--include", multiple=True, metavar="GLOB", help="Only paths matching GLOB (repeatable; ** spans folders)."),
        click.option("--exclude", multiple=True, metavar="GLOB", help="Skip paths matching GLOB (repeatable)."),
        click.option("--ignore-case", is_flag=True, help="Match --include/--exclude regardless of case (*.jpg also matches .JPG)."),
        click.option("--min-size", metavar="SIZE", help="Only files of at least SIZE (e.g. 100K, 2M)."),
        click.option("--max-size", metavar="SIZE", help="Only files of at most SIZE."),
        click.option("--min-age", metavar="AGE", help="Only files modified at least AGE ago (e.g. 30m, 2h, 7d, 1w) or before a date (2026-01-31)."),
        click.option("--max-age", metavar="AGE", help="Only files modified at most AGE ago (or since a date)."),
        click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True, help="Files (and blocks) in flight."),
        click.option("--block-size", metavar="SIZE", help="Block size for large files, e.g. 8M (default: 8M, raised for files over ~390 GiB)."),
        click.option("--checksum", is_flag=True, help="Always compare MD5 when sizes match, whatever the mtimes."),
        click.option("--bwlimit", metavar="RATE", help="Bandwidth limit in bytes per second for the whole run, e.g. 10M."),
        click.option("--modify-window", metavar="DURATION",
                     help="Mtimes closer than this are equal, e.g. 2s (as rclone; default: the coarser precision of "
                          "the two sides, detected: FAT 2s, exFAT/HFS+ 1s, else 1us)."),
        click.option("--stats", type=click.FloatRange(0.1, None), metavar="SECONDS",
                     help="Print a status line (files, bytes, rate, ETA) this often when no progress bar is drawn; "
                          "a JSON stats event with --json."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def make_globals(ctx: click.Context, kw: dict[str, Any]) -> Globals:
    """Pop the common options out of a command's kwargs and set up logging."""
    config: Config = ctx.obj["config"] if ctx.obj else Config(path=None)
    kw.pop("config_path", None)
    g = Globals(api_url=kw.pop("api_url"), ims_url=kw.pop("ims_url"), config=config, json=kw.pop("json"),
                quiet=kw.pop("quiet"), verbose=kw.pop("verbose"), max_retry_wait=kw.pop("max_retry_wait"),
                log_file=kw.pop("log_file", None),
                cached_login_loader=ctx.obj.get("cached_login_loader") if ctx.obj else None)
    setup_logging(g.verbose, g.quiet, g.log_file, rotating=ctx.info_name == "watch")
    ctx.obj = {**(ctx.obj or {}), "globals": g}
    return g


def make_settings(kw: dict[str, Any]) -> TransferSettings:
    modify_window_ns = parse_duration_ns(kw.pop("modify_window", None), "--modify-window")
    extras = BlobExtras(content_type=parse_content_type(kw.pop("content_type", None)),
                        metadata=parse_metadata(kw.pop("metadata", None) or ()))
    return TransferSettings(concurrency=kw.pop("concurrency"), block_size=parse_size(kw.pop("block_size")),
                            dry_run=kw.pop("dry_run"), bwlimit=parse_rate(kw.pop("bwlimit", None)),
                            modify_window_ns=modify_window_ns, extras=extras)


_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # Azure: metadata names are C# identifiers


def parse_metadata(items: Iterable[object]) -> tuple[tuple[str, str], ...]:
    """--metadata KEY=VALUE (repeatable) -> pairs; a usage error for what storage would refuse."""
    pairs = []
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not _METADATA_KEY.match(key):
            raise UsageError(f"--metadata {item!r} is not KEY=VALUE with a name of letters, digits and _",
                             hint="e.g. --metadata project=bridge_7 --metadata camera=DJI")
        if key.lower() in OWN_KEYS:
            raise UsageError(f"--metadata {key} is bucket-sync's own ({OWN_KEYS[key.lower()]})", hint="choose another name")
        if not value.isascii() or not value.isprintable():
            raise UsageError(f"--metadata {key}: the value must be printable ASCII (storage sends it as a header)")
        pairs.append((key, value))
    return tuple(pairs)


def parse_content_type(value: str | None) -> str | None:
    if not value:
        return None
    if "/" not in value or any(c.isspace() for c in value.strip()) or not value.isascii():
        raise UsageError(f"--content-type {value!r} is not a media type", hint="e.g. --content-type image/jpeg")
    return value.strip()


def shard_options(f: _F) -> _F:
    """--shard K/N and --shard-by: N runs split one job (sync/shard.py)."""
    options = [
        click.option("--shard", metavar="K/N", help="Handle only share K of N of the keys (a stable hash), so N runs on N "
                                                    "machines split one job; deletes and guards stay within the share."),
        click.option("--shard-by", type=click.Choice(["key", "folder"]), default="key", show_default=True,
                     help="What the share is decided on: the whole key, or its first folder (each shard then lists "
                          "and scans only its folders)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def upload_options(f: _F) -> _F:
    """What an upload writes besides the bytes: Content-Type and metadata."""
    options = [
        click.option("--content-type", metavar="TYPE",
                     help="Content-Type for every blob (default: from the extension, one table: .las .laz .e57 .jpg ...)."),
        click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Add blob metadata (repeatable)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(value: str | None, option: str, now: float) -> int | None:
    """--min-age/--max-age: a duration ('90', '30m', '2h', '7d', '1w') or a date ('2026-01-31',
    '2026-01-31T12:00:00', UTC) -> the moment it names, in epoch nanoseconds."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    m = _AGE.match(text)
    if m:
        return int((now - float(m.group(1)) * _AGE_UNITS[(m.group(2) or "").lower()]) * 1e9)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {value!r} is not understood",
                         hint="use a duration such as 30m, 2h, 7d or 1w, or a date such as 2026-01-31") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1e9)


def parse_bound(value: str | int | None, option: str) -> int | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, int) else _parse_amount(str(value), option, "use bytes, e.g. 500, 100K, 2M or 1G")


def make_filter(kw: dict[str, Any]) -> PathFilter:
    now = time.time()
    return PathFilter.from_options(
        include=tuple(kw.pop("include") or ()), exclude=tuple(kw.pop("exclude") or ()),
        ignore_case=bool(kw.pop("ignore_case", False)),
        min_size=parse_bound(kw.pop("min_size", None), "--min-size"),
        max_size=parse_bound(kw.pop("max_size", None), "--max-size"),
        newest_ns=parse_age(kw.pop("min_age", None), "--min-age", now),
        oldest_ns=parse_age(kw.pop("max_age", None), "--max-age", now),
        shard=parse_shard(kw.pop("shard", None), kw.pop("shard_by", None)))


def make_renderer(g: Globals, kw: dict[str, Any] | None = None) -> JsonRenderer | HumanRenderer | WithExtras:
    """The run's renderer (JSON or human), with the log file's and --stats' listeners when asked for."""
    renderer = JsonRenderer(verbose=g.verbose) if g.json else HumanRenderer(quiet=g.quiet, verbose=g.verbose)
    stats_every = (kw or {}).pop("stats", None)
    extras: list[ResultLog | Stats] = []
    if g.log_file:
        extras.append(ResultLog())
    if stats_every:
        if isinstance(renderer, JsonRenderer):  # that is, g.json
            extras.append(Stats(stats_every, renderer.emit))
        elif not g.quiet and not renderer.progress:  # a progress bar already shows it
            extras.append(Stats(stats_every, lambda s: click.echo(stats_line(s), err=True)))
    return WithExtras(renderer, extras) if extras else renderer

