"""upload, download, mirror."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ..app.sync_run import SyncRequest, run_sync
from ..errors import UsageError
from ..sync.model import Direction
from ..targets import RealityDataTarget, looks_remote, parse_remote
from .options import (common_options, make_filter, make_globals, make_renderer, make_settings, transfer_options,
                      shard_options, upload_options)

if TYPE_CHECKING:
    from ..app.render import HumanRenderer, JsonRenderer
    from ..app.run_log import WithExtras
    from ..sync.listener import Summary


def _finish(renderer: JsonRenderer | HumanRenderer | WithExtras, summary: Summary) -> int:
    renderer.finish(summary)
    return summary.exit_code


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="LOCAL... REMOTE")
@transfer_options
@shard_options
@upload_options
@click.option("--overwrite", is_flag=True, help="Transfer every file, even unchanged ones.")
@click.option("--files-from", "files_from", metavar="FILE",
              help="Upload only the files named in FILE (one path per line, relative to the one LOCAL folder; "
                   "blank lines and lines starting with # are ignored; - reads standard input).")
@click.option("--follow-symlinks", is_flag=True, help="Upload what symbolic links point to (default: skip them).")
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@common_options
@click.pass_context
def upload(ctx: click.Context, /, args: tuple[str, ...], **kw: Any) -> int:
    """Upload files and folders to REMOTE.

    A file goes to REMOTE/<its name>; a folder's contents go under REMOTE with their relative paths.
    Unchanged files (same size and mtime, or same MD5) are skipped. A reality data whose authoring is true
    (an interrupted `reality-data create --upload`) gets authoring false once the upload succeeds.
    """
    g = make_globals(ctx, kw)
    if len(args) < 2:
        raise UsageError("upload needs at least one LOCAL path and a REMOTE", hint="bucket-sync upload ./photos itwin://<iTwinId>/photos")
    *local, remote_text = args
    remote = parse_remote(remote_text, itwin_id=kw.pop("itwin"))
    for path in local:
        if looks_remote(path):
            raise UsageError(f"upload takes local paths first and one REMOTE last; {path!r} looks remote")
    files_from = kw.pop("files_from")
    if files_from and not (len(local) == 1 and os.path.isdir(local[0])):
        raise UsageError("upload --files-from needs exactly one LOCAL folder (the names are relative to it)",
                         hint="bucket-sync upload ./photos itwin://<iTwinId>/photos --files-from names.txt")
    req = SyncRequest(command="upload", direction=Direction.UP, local=tuple(local), prefix=remote.prefix,
                      settings=make_settings(kw), filters=make_filter(kw), checksum=kw.pop("checksum"),
                      overwrite=kw.pop("overwrite"), follow_symlinks=kw.pop("follow_symlinks"),
                      files_from=read_names(files_from) if files_from else None)
    renderer = make_renderer(g, kw)
    if isinstance(remote, RealityDataTarget):
        # Imported only here: it talks to the API (authoring flag), which bucket and SAS URL uploads never need.
        from ..app.reality_data_ops import upload_to_reality_data

        return _finish(renderer, upload_to_reality_data(g, remote, req, renderer))
    return _finish(renderer, run_sync(req, lambda: g.container(remote, write=True), renderer))


@click.command()
@click.argument("remote_text", metavar="REMOTE")
@click.argument("local_dir", metavar="DEST")
@transfer_options
@shard_options
@click.option("--overwrite", is_flag=True, help="Transfer every blob, even unchanged ones.")
@click.option("--files-from", "files_from", metavar="FILE",
              help="Download only the blobs named in FILE (one name per line, relative to REMOTE; blank lines and "
                   "lines starting with # are ignored; - reads standard input). Needs no list permission.")
@click.option("--itwin", metavar="ITWIN_ID", help="For reality-data:// targets: the iTwin the reality data belongs to.")
@common_options
@click.pass_context
def download(ctx: click.Context, /, remote_text: str, local_dir: str, **kw: Any) -> int:
    """Download REMOTE into DEST.

    When REMOTE names a blob, that file is downloaded into DEST/<name> if DEST is a folder (or ends with
    a separator), else as DEST. Otherwise every blob under REMOTE goes into the folder DEST at its relative
    path (this needs the list permission: the documented Reality Modeling bucket SAS has none, so download
    from it by name, or with --files-from). A REMOTE that names nothing is exit 4.

    Files are written as <name>.bucket-sync-partial, checked against the blob's MD5, and renamed into
    place; blob names that would land outside DEST are refused.
    """
    g = make_globals(ctx, kw)
    remote = parse_remote(remote_text, itwin_id=kw.pop("itwin"))
    if looks_remote(local_dir):
        raise UsageError("download takes REMOTE first and a local destination second")
    files_from = kw.pop("files_from")
    req = SyncRequest(command="download", direction=Direction.DOWN, local=(local_dir,), prefix=remote.prefix,
                      settings=make_settings(kw), filters=make_filter(kw), checksum=kw.pop("checksum"),
                      overwrite=kw.pop("overwrite"), files_from=read_names(files_from) if files_from else None)
    renderer = make_renderer(g, kw)
    return _finish(renderer, run_sync(req, lambda: g.container(remote, write=False), renderer))


def read_names(path: str) -> tuple[str, ...]:
    """--files-from: one blob name per line, relative to REMOTE (as rclone reads it: blank lines and
    comments are skipped). A name that could not be a path below DEST is refused later, per file."""
    try:
        if path == "-":
            text = click.get_text_stream("stdin").read()  # type: ignore[operator]  # deprecated in click 8.5, untyped
        else:
            with open(path, encoding="utf-8-sig") as fh:
                text = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read --files-from {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--files-from {path} is not UTF-8 text", hint="save the list as UTF-8, one name per line") from None
    names = tuple(dict.fromkeys(
        line.strip().strip("/") for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))))
    if not names:
        raise UsageError(f"--files-from {path} names no file", hint="write one blob name per line, relative to REMOTE")
    return names
