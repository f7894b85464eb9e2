"""reality-data: create, list, show, update and delete reality data, and move one to another iTwin."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Iterable

import click

from ..app.reality_data_format import as_event, details, json_line, size_text, table
from ..app.render import console_safe
from ..errors import BucketSyncError, ExitCode, UsageError
from ..platform.api import MoveOutcome
from ..platform.reality_data import MAX_TOP, Acquisition, RealityData, RealityDataFields
from ..redact import redact
from ..targets import require_guid
from .error_output import echo_error
from .options import common_options, make_filter, make_globals, make_renderer, parse_rate, parse_size

if TYPE_CHECKING:
    from ..app.context import Globals

_FLAG = click.Choice(["true", "false"], case_sensitive=False)


@click.group(name="reality-data")
def reality_data() -> None:
    """Manage reality data (the containers behind reality-data:// targets).

    A capture's day: `create --itwin ID --name N --type CCImageCollection --upload ./photos` (prints the
    new id), `ls --itwin ID` to find it again, `show ID`, `update ID`, `delete ID`.
    """


@reality_data.command(name="move")
@click.argument("reality_data_id", metavar="ID")
@click.option("--to-itwin", "to_itwin", required=True, metavar="ITWIN_ID", help="The iTwin to move the reality data to.")
@common_options
@click.pass_context
def move(ctx: click.Context, /, reality_data_id: str, to_itwin: str, **kw: Any) -> int:
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
        echo_error(exc.message, exc.hint)
        if g.json:
            click.echo(json_line({**outcome, "status": "failed", "error": redact(exc.message),
                                  "exit_code": int(exc.exit_code)}))
        return int(exc.exit_code)
    already = result.outcome is MoveOutcome.ALREADY_THERE_AFTER_RETRY
    if g.json:
        extra = {"already_there_after_retry": True} if already else {}
        click.echo(json_line({**outcome, "status": "ok", **extra, "exit_code": 0}))
    elif not g.quiet:
        if already:
            statuses = "/".join(f"HTTP {s}" for s in dict.fromkeys(result.retried_after))
            click.echo(f"reality data {rd_id} is in iTwin {itwin_id}: it was already in the destination when the "
                       f"move was retried after {statuses} (the first attempt most likely moved it)")
        else:
            click.echo(f"moved reality data {rd_id} to iTwin {itwin_id}")
    return 0


def _tags(values: tuple[str, ...]) -> tuple[str, ...] | None:
    tags = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    return tags or None


def _echo_human(g: Globals, lines: Iterable[str]) -> None:
    if not g.quiet:
        console_safe(sys.stdout)
        for line in lines:
            click.echo(line)


@reality_data.command(name="create")
@click.option("--itwin", "itwin", required=True, metavar="ITWIN_ID",
              help="The iTwin the reality data belongs to (it also picks the data center).")
@click.option("--name", "name", required=True, help="Display name.")
@click.option("--type", "rd_type", required=True, metavar="TYPE",
              help="Reality data type, e.g. CCImageCollection (a flat folder of photos), ContextScene, "
                   "Cesium3DTiles, LAS, E57, Unstructured. The API checks it.")
@click.option("--classification", help="Terrain, Imagery, Pinned, Model or Undefined.")
@click.option("--description")
@click.option("--dataset", help="A loose grouping of reality data.")
@click.option("--group", help="A second level of grouping.")
@click.option("--root-document", "root_document", metavar="PATH",
              help="The file that opens the data, relative to its root (e.g. tileset.json).")
@click.option("--acquisition-start", "acq_start", metavar="TIME",
              help="When the capture began (ISO 8601, e.g. 2025-05-30T08:00Z; without an offset: UTC).")
@click.option("--acquisition-end", "acq_end", metavar="TIME", help="When the capture ended.")
@click.option("--acquirer", help="Who captured it.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (repeatable).")
@click.option("--upload", "upload_dir", metavar="LOCAL_DIR",
              help="Upload this folder's contents into the new reality data (authoring is true during the "
                   "upload and false once it succeeds).")
@click.option("--include", multiple=True, metavar="GLOB", help="With --upload: only paths matching GLOB.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="With --upload: skip paths matching GLOB.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True,
              help="With --upload: files (and blocks) in flight.")
@click.option("--block-size", metavar="SIZE", help="With --upload: block size for large files, e.g. 8M.")
@click.option("--bwlimit", metavar="RATE", help="With --upload: bytes per second for the whole run, e.g. 10M.")
@common_options
@click.pass_context
def create(ctx: click.Context, /, itwin: str, name: str, rd_type: str, upload_dir: str | None, **kw: Any) -> int:
    """Create a reality data in an iTwin and print its id (--json: the whole object).

    With --upload LOCAL_DIR the folder's contents go into it through the same engine as `upload`
    (progress, resume, unchanged files skipped). A flat type (CCImageCollection) with files in subfolders
    is refused before anything is created. An interrupted upload leaves authoring true:
    `bucket-sync upload LOCAL_DIR reality-data://<id>` finishes it and clears the flag.
    """
    from ..app.reality_data_ops import CaptureUpload, create_reality_data
    from ..sync.settings import TransferSettings

    g = make_globals(ctx, kw)
    itwin_id = require_guid(itwin, "iTwin id")
    fields = RealityDataFields(
        display_name=name, type=rd_type, classification=kw.pop("classification"), description=kw.pop("description"),
        dataset=kw.pop("dataset"), group=kw.pop("group"), root_document=kw.pop("root_document"),
        tags=_tags(kw.pop("tags")), acquisition=Acquisition.from_options(kw.pop("acq_start"), kw.pop("acq_end"),
                                                                         kw.pop("acquirer")))
    upload = None
    stray = [opt for opt, key in (("--include", "include"), ("--exclude", "exclude"), ("--block-size", "block_size"),
                                  ("--bwlimit", "bwlimit")) if kw.get(key)]
    if upload_dir is None and stray:
        raise UsageError(f"{', '.join(stray)} only apply with --upload LOCAL_DIR", hint="add --upload, or leave them out")
    if upload_dir is not None:
        settings = TransferSettings(concurrency=kw.pop("concurrency"), block_size=parse_size(kw.pop("block_size")),
                                    bwlimit=parse_rate(kw.pop("bwlimit")))
        upload = CaptureUpload(upload_dir, settings, make_filter(kw))
    renderer = make_renderer(g)

    def on_created(rd: RealityData) -> None:
        if g.json:
            click.echo(json_line(as_event(rd)))
            return
        click.echo(rd.id)  # even with -q: it is the result, what a script captures
        if not g.quiet:
            click.echo(f"created reality data {rd.id} ({rd.display_name}, {rd.type}) in iTwin {itwin_id}", err=True)

    _, summary = create_reality_data(g, itwin_id, fields, upload=upload, renderer=renderer, on_created=on_created)
    if summary is None:
        return 0
    renderer.finish(summary)
    return summary.exit_code


@reality_data.command(name="ls")
@click.option("--itwin", "itwin", required=True, metavar="ITWIN_ID", help="The iTwin whose reality data to list.")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Only this type (repeatable).")
@click.option("--search", metavar="TEXT", help="Only reality data whose name contains TEXT.")
@click.option("--top", type=click.IntRange(1, MAX_TOP), metavar="N",
              help=f"Page size asked of the API (1..{MAX_TOP}); every page is listed whatever its size.")
@common_options
@click.pass_context
def ls(ctx: click.Context, /, itwin: str, types: tuple[str, ...], search: str | None, top: int | None, **kw: Any) -> int:
    """List every reality data of an iTwin: id, name, type, size, created (UTC), authoring."""
    g = make_globals(ctx, kw)
    itwin_id = require_guid(itwin, "iTwin id")
    rows: list[RealityData] = []
    with g.api() as api:
        for rd in api.reality_data.iter_all(itwin_id, types=tuple(t for t in types if t), search=search, top=top):
            if g.json:
                click.echo(json_line(as_event(rd)))
            rows.append(rd)
    if g.json:
        click.echo(json_line({"event": "summary", "op": "reality-data ls", "count": len(rows), "exit_code": 0}))
    elif rows:
        _echo_human(g, table(rows))
    elif not g.quiet:
        click.echo(f"no reality data in iTwin {itwin_id}" + (" matches" if types or search else ""), err=True)
    return 0


@reality_data.command(name="show")
@click.argument("reality_data_id", metavar="ID")
@click.option("--itwin", "itwin", metavar="ITWIN_ID", help="The iTwin the reality data belongs to or is shared with.")
@common_options
@click.pass_context
def show(ctx: click.Context, /, reality_data_id: str, itwin: str | None, **kw: Any) -> int:
    """Show every property of reality data ID."""
    g = make_globals(ctx, kw)
    rd_id = require_guid(reality_data_id, "reality data id")
    itwin_id = require_guid(itwin, "iTwin id") if itwin else None
    with g.api() as api:
        rd = api.reality_data.get(rd_id, itwin_id=itwin_id)
    if g.json:
        click.echo(json_line(as_event(rd)))
    else:
        _echo_human(g, details(rd))
    return 0


@reality_data.command(name="update")
@click.argument("reality_data_id", metavar="ID")
@click.option("--name", "name", help="New display name.")
@click.option("--description")
@click.option("--classification", help="Terrain, Imagery, Pinned, Model or Undefined.")
@click.option("--dataset")
@click.option("--group")
@click.option("--root-document", "root_document", metavar="PATH")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Replace the tags with these (repeatable).")
@click.option("--authoring", type=_FLAG, help="true while the data is being uploaded, false once complete.")
@click.option("--itwin", "itwin", metavar="ITWIN_ID", help="The iTwin the reality data belongs to (named in hints).")
@common_options
@click.pass_context
def update(ctx: click.Context, /, reality_data_id: str, itwin: str | None, authoring: str | None, **kw: Any) -> int:
    """Change properties of reality data ID (only those given)."""
    g = make_globals(ctx, kw)
    rd_id = require_guid(reality_data_id, "reality data id")
    itwin_id = require_guid(itwin, "iTwin id") if itwin else None
    fields = RealityDataFields(
        display_name=kw.pop("name"), description=kw.pop("description"), classification=kw.pop("classification"),
        dataset=kw.pop("dataset"), group=kw.pop("group"), root_document=kw.pop("root_document"),
        tags=_tags(kw.pop("tags")), authoring=None if authoring is None else authoring.lower() == "true")
    changed = list(fields.body())
    if not changed:
        raise UsageError("nothing to update", hint="give at least one of --name, --description, --classification, "
                                                   "--dataset, --group, --root-document, --tag, --authoring")
    with g.api() as api:
        rd = api.reality_data.update(rd_id, fields, itwin_id=itwin_id)
    if g.json:
        click.echo(json_line(as_event(rd)))
    else:
        _echo_human(g, [f"updated reality data {rd.id}: {', '.join(changed)}"])
    return 0


@reality_data.command(name="delete")
@click.argument("reality_data_id", metavar="ID")
@click.option("--itwin", "itwin", metavar="ITWIN_ID",
              help="The iTwin the reality data belongs to: it must be there, or nothing is deleted.")
@click.option("-y", "--yes", is_flag=True, help="Delete without asking (needed when not on a terminal).")
@common_options
@click.pass_context
def delete(ctx: click.Context, /, reality_data_id: str, itwin: str | None, yes: bool, **kw: Any) -> int:
    """Delete reality data ID and every file in it (asks first on a terminal; elsewhere needs --yes).

    The API deletes only a reality data associated with at most one iTwin.
    """
    g = make_globals(ctx, kw)
    rd_id = require_guid(reality_data_id, "reality data id")
    itwin_id = require_guid(itwin, "iTwin id") if itwin else None
    on_terminal = click.get_text_stream("stdin").isatty()  # type: ignore[operator]  # deprecated in click 8.5, untyped
    if not yes and not on_terminal:
        raise UsageError(f"refusing to delete reality data {rd_id} without confirmation: not on a terminal, "
                         "nothing was deleted", hint="pass --yes to delete without asking")
    with g.api() as api:
        described = ""
        if itwin_id or not yes:  # --itwin: it must be in that iTwin; asking: say what would go
            rd = api.reality_data.get(rd_id, itwin_id=itwin_id)
            described = f" ({rd.display_name!r}, {rd.type}, {size_text(rd.size_kb)})"
        if not yes and not click.confirm(f"Delete reality data {rd_id}{described} and every file in it? This cannot "
                                         "be undone", default=False, err=True):
            click.echo("nothing was deleted", err=True)
            return int(ExitCode.FAILED)
        api.reality_data.delete(rd_id, itwin_id=itwin_id)
    if g.json:
        click.echo(json_line({"event": "delete", "reality_data_id": rd_id, "status": "ok", "exit_code": 0}))
    else:
        _echo_human(g, [f"deleted reality data {rd_id}{described}"])
    return 0


# Options whose value means something for one command only get that command's variable
# (BUCKET_SYNC_REALITY_DATA_<COMMAND>_<OPTION>) instead of the shared BUCKET_SYNC_<OPTION>: a shared
# BUCKET_SYNC_NAME exported for `create` would rename whatever `update` touched, BUCKET_SYNC_TYPE would filter
# `ls`, and BUCKET_SYNC_YES would answer every `delete`. --itwin and the upload settings mean the same
# everywhere and keep the shared names.
_SCOPED = {
    create: ("name", "rd_type", "classification", "description", "dataset", "group", "root_document", "acq_start",
             "acq_end", "acquirer", "tags", "upload_dir"),
    ls: ("types", "search", "top"),
    update: ("name", "description", "classification", "dataset", "group", "root_document", "tags", "authoring"),
    delete: ("yes",),
}
for _command, _names in _SCOPED.items():
    for _param in _command.params:
        if _param.name in _names:
            assert _command.name is not None  # each was given its name
            _option = max(_param.opts, key=len).lstrip("-").upper().replace("-", "_")
            _param.envvar = f"BUCKET_SYNC_REALITY_DATA_{_command.name.upper()}_{_option}"
