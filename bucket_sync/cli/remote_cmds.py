"""ls, rm, url: commands on the remote side only."""

from __future__ import annotations

from typing import Any

import click

from ..app.remote_ops import describe_url, format_long, list_remote, remove_remote
from ..app.render import JsonRenderer
from .options import common_options, make_globals, make_renderer
from ..targets import parse_remote


@click.command(name="ls")
@click.argument("remote_text", metavar="REMOTE")
@click.option("-r", "--recursive", is_flag=True, help="List everything under the prefix, not just one level.")
@click.option("-l", "--long", "long", is_flag=True, help="Show size, mtime (UTC) and MD5.")
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@common_options
@click.pass_context
def ls(ctx: click.Context, /, remote_text: str, recursive: bool, long: bool, itwin: str | None, **kw: Any) -> int:
    """List blobs under REMOTE (folders end in '/' unless --recursive)."""
    g = make_globals(ctx, kw)
    remote = parse_remote(remote_text, itwin_id=itwin)
    entries = list_remote(g.container(remote, write=False), remote.prefix, recursive=recursive)
    if g.json:  # UTF-8 JSON lines whatever the console's code page (render.JsonRenderer)
        out = JsonRenderer()
        for entry in entries:
            out.emit(entry.as_event(), flush=False)
        out.emit({"event": "summary", "op": "ls", "count": len(entries), "exit_code": 0})
        return 0
    for entry in entries:  # names the console cannot show come out escaped (main: render.make_console_safe)
        click.echo(format_long(entry) if long else entry.name)
    return 0


@click.command(name="rm")
@click.argument("remote_text", metavar="REMOTE")
@click.option("-r", "--recursive", is_flag=True, help="Delete everything under the prefix.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted, delete nothing.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@common_options
@click.pass_context
def rm(ctx: click.Context, /, remote_text: str, recursive: bool, dry_run: bool, concurrency: int, itwin: str | None, **kw: Any) -> int:
    """Delete a blob, or with --recursive everything under a prefix."""
    g = make_globals(ctx, kw)
    remote = parse_remote(remote_text, itwin_id=itwin)
    renderer = make_renderer(g)
    summary = remove_remote(g.container(remote, write=True), remote.prefix, recursive=recursive, dry_run=dry_run,
                            concurrency=concurrency, renderer=renderer)
    renderer.finish(summary)
    return summary.exit_code


@click.command(name="url")
@click.argument("remote_text", metavar="REMOTE")
@click.option("--show-secret", is_flag=True, help="Print the SAS signature too (treat the output as a password).")
@click.option("--write", is_flag=True, help="For reality-data:// targets: ask for write access (default: read).")
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@common_options
@click.pass_context
def url(ctx: click.Context, /, remote_text: str, show_secret: bool, write: bool, itwin: str | None, **kw: Any) -> int:
    """Print the resolved container URL (signature redacted) and its expiry."""
    g = make_globals(ctx, kw)
    remote = parse_remote(remote_text, itwin_id=itwin)
    info = describe_url(g.sas_source(remote, write=write).current(), show_secret=show_secret)
    if g.json:
        JsonRenderer().emit(info)
    else:
        click.echo(info["url"])
        if not g.quiet:
            click.echo(f"expires: {info['expires'] or 'unknown (no se= in the SAS)'}", err=True)
    return 0
