"""check: what the SAS of REMOTE allows, and which commands will work with it."""

from __future__ import annotations

from typing import Any

import click

from ..app.check import check_remote, check_sources, format_report
from ..app.render import JsonRenderer
from ..targets import parse_remote
from .options import common_options, make_globals


@click.command(name="check")
@click.argument("remote_text", metavar="REMOTE")
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@common_options
@click.pass_context
def check(ctx: click.Context, /, remote_text: str, itwin: str | None, **kw: Any) -> int:
    """Show what REMOTE's SAS allows, and which commands will work with it.

    Resolves the target (for a reality data: its read access and its write access), then reports the
    SAS permissions (sp=), what storage answers one harmless probe per permission (list one entry, look
    up, set metadata on and delete a name that does not exist: nothing changes), each command's verdict,
    and when the SAS expires. No secret is shown: paste the output into a bug report. Exit 0 when
    storage answered every probe, 1 when it could not be reached.
    """
    g = make_globals(ctx, kw)
    remote = parse_remote(remote_text, itwin_id=itwin)
    report = check_remote(remote, check_sources(g, remote))
    if g.json:
        JsonRenderer().emit(report.as_event())  # UTF-8 whatever the console's code page
    else:
        for line in format_report(report):
            click.echo(line)
    return report.exit_code
