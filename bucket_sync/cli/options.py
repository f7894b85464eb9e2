"""Options shared by the commands, and turning them into the app layer's Globals."""

from __future__ import annotations

import re
from typing import Any, Callable

import click

from ..app.context import DEFAULT_API_URL, DEFAULT_IMS_URL, Globals, setup_logging
from ..app.render import HumanRenderer, JsonRenderer
from ..config import Config
from ..errors import UsageError
from ..sync.budget import MAX_BLOCK_SIZE, MiB
from ..sync.engine import TransferSettings
from ..sync.filters import PathFilter

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


def common_options(f: Callable) -> Callable:
    """--config, --api-url, --ims-url, --json, -q, -v, --max-retry-wait on every command."""
    options = [
        click.option("--config", "config_path", metavar="PATH", help="Config file (TOML). Default: $BUCKET_SYNC_CONFIG, then the user config dir."),
        click.option("--api-url", envvar="ITWIN_API_URL", default=DEFAULT_API_URL, show_default=True, help="iTwin Platform API base URL [env ITWIN_API_URL]."),
        click.option("--ims-url", envvar="ITWIN_IMS_URL", default=DEFAULT_IMS_URL, show_default=True, help="Bentley IMS (OAuth) base URL [env ITWIN_IMS_URL]."),
        click.option("--json", "json", is_flag=True, help="Print JSON lines on stdout (one object per event, a summary last)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress and no summary; errors only."),
        click.option("-v", "--verbose", count=True, help="More detail on stderr (-v each file, -vv debug)."),
        click.option("--max-retry-wait", type=float, default=300.0, show_default=True, metavar="SECONDS", help="Longest total wait for API rate limits (429/503 Retry-After)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def transfer_options(f: Callable) -> Callable:
    options = [
        click.option("--dry-run", is_flag=True, help="Plan and report, change nothing."),
        click.option("--include", multiple=True, metavar="GLOB", help="Only paths matching GLOB (repeatable; ** spans folders)."),
        click.option("--exclude", multiple=True, metavar="GLOB", help="Skip paths matching GLOB (repeatable)."),
        click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True, help="Files (and blocks) in flight."),
        click.option("--block-size", metavar="SIZE", help="Block size for large files, e.g. 8M (default: 8M, raised for files over ~390 GiB)."),
        click.option("--checksum", is_flag=True, help="Always compare MD5 when sizes match, whatever the mtimes."),
        click.option("--bwlimit", metavar="RATE", help="Bandwidth limit in bytes per second for the whole run, e.g. 10M."),
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
                cached_login_loader=ctx.obj.get("cached_login_loader") if ctx.obj else None)
    setup_logging(g.verbose, g.quiet)
    ctx.obj = {**(ctx.obj or {}), "globals": g}
    return g


def make_settings(kw: dict[str, Any]) -> TransferSettings:
    return TransferSettings(concurrency=kw.pop("concurrency"), block_size=parse_size(kw.pop("block_size")),
                            dry_run=kw.pop("dry_run"), bwlimit=parse_rate(kw.pop("bwlimit", None)))


def make_filter(kw: dict[str, Any]) -> PathFilter:
    return PathFilter.from_options(include=tuple(kw.pop("include") or ()), exclude=tuple(kw.pop("exclude") or ()))


def make_renderer(g: Globals) -> HumanRenderer | JsonRenderer:
    return JsonRenderer() if g.json else HumanRenderer(quiet=g.quiet, verbose=g.verbose)

