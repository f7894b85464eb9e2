"""reality-data move: hand a reality data over to another iTwin (the Reality Management move call)."""

from __future__ import annotations

import json as jsonlib

import click

from ..errors import BucketSyncError
from ..platform.api import MoveOutcome
from ..redact import redact
from ..targets import require_guid
from .options import common_options, make_globals


@click.group(name="reality-data")
def reality_data() -> None:
    """Manage reality data (the containers behind reality-data:// targets)."""


@reality_data.command(name="move")
@click.argument("reality_data_id", metavar="ID")
@click.option("--to-itwin", "to_itwin", required=True, metavar="ITWIN_ID", help="The iTwin to move the reality data to.")
@common_options
@click.pass_context
def move(ctx: click.Context, reality_data_id: str, to_itwin: str, **kw) -> int:
    """Move reality data ID to the iTwin ITWIN_ID (same organization and data center).

    Exit 0 when moved (also when a move resent after a 429/503 finds it already there: the first attempt
    moved it); 1 when it is already within that iTwin; 2 when the API finds the request invalid; 3 without
    permission; 4 when the reality data or iTwin is not found.
    """
    g = make_globals(ctx, kw)
    outcome = {"event": "move", "reality_data_id": reality_data_id, "to_itwin": to_itwin}
    try:
        # Ids are checked before any credential or network use: a typo is a usage error (exit 2).
        rd_id = require_guid(reality_data_id, "reality data id")
        itwin_id = require_guid(to_itwin, "iTwin id")
        outcome.update(reality_data_id=rd_id, to_itwin=itwin_id)
        with g.api() as api:
            result = api.move_reality_data(rd_id, itwin_id)
    except BucketSyncError as exc:
        click.echo(f"error: {redact(exc.message)}", err=True)
        if exc.hint:
            click.echo(f"  hint: {redact(exc.hint)}", err=True)
        if g.json:
            click.echo(jsonlib.dumps({**outcome, "status": "failed", "error": redact(exc.message),
                                      "exit_code": int(exc.exit_code)}))
        return int(exc.exit_code)
    already = result.outcome is MoveOutcome.ALREADY_THERE_AFTER_RETRY
    if g.json:
        extra = {"already_there_after_retry": True} if already else {}
        click.echo(jsonlib.dumps({**outcome, "status": "ok", **extra, "exit_code": 0}))
    elif not g.quiet:
        if already:
            statuses = "/".join(f"HTTP {s}" for s in dict.fromkeys(result.retried_after))
            click.echo(f"reality data {rd_id} is in iTwin {itwin_id}: it was already in the destination when the "
                       f"move was retried after {statuses} (the first attempt most likely moved it)")
        else:
            click.echo(f"moved reality data {rd_id} to iTwin {itwin_id}")
    return 0
