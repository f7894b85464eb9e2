"""Reality data and uploads together: a capture uploaded straight into a new reality data, and the
``authoring`` flag around uploads, as Bentley's uploader keeps it ("true if the data is being created,
false once completely uploaded").

Only runs that target a reality data import this module (it talks to the API): uploads to a bucket or a
SAS URL never pay for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ApiError, BucketSyncError, UsageError
from ..platform.reality_data import FLAT_TYPES, RealityData, RealityDataFields
from ..redact import redact
from ..sync.settings import TransferSettings
from ..sync.listener import Listener, Summary
from ..sync.filters import PathFilter
from ..sync.model import Direction
from ..targets import RealityDataTarget
from .context import Globals
from .run_log import log_error
from .sync_run import SyncRequest, run_sync

if TYPE_CHECKING:
    from ..platform.credentials import TokenProvider

log = logging.getLogger("bucket_sync")

_FLAT_TYPES_LOWER = {t.lower() for t in FLAT_TYPES}
_NESTED_SHOWN = 3


@dataclass(frozen=True)
class CaptureUpload:
    """``create --upload``: the folder and how to send it (the same engine and settings as ``upload``)."""

    local_dir: str
    settings: TransferSettings
    filters: PathFilter = PathFilter()


def check_capture_folder(local_dir: str, rd_type: str | None, filters: PathFilter) -> None:
    """Refuse, before anything is created, a folder that is missing, or nested for a flat type."""
    if not os.path.exists(local_dir):
        raise UsageError(f"no such folder: {local_dir}", hint="--upload takes the folder to upload; nothing was created")
    if not os.path.isdir(local_dir):
        raise UsageError(f"--upload {local_dir} is not a folder",
                         hint="give the folder whose files go into the reality data; nothing was created")
    if (rd_type or "").lower() not in _FLAT_TYPES_LOWER:
        return
    nested = _nested_files(local_dir, filters)
    if nested:
        more = " and more" if len(nested) > _NESTED_SHOWN else ""
        raise UsageError(
            f"--type {rd_type} is a flat folder of photos, but {local_dir} has files in subfolders "
            f"({', '.join(nested[:_NESTED_SHOWN])}{more}); nothing was created",
            hint="put the photos directly in the folder (one reality data per photo set), leave the subfolders out "
                 "with --exclude '<folder>/**', or choose the --type that holds a folder tree (e.g. Unstructured)")


def _nested_files(root: str, filters: PathFilter) -> list[str]:
    """Up to a few files below a subfolder that an upload would send (symlinks are skipped by upload)."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if os.path.samefile(folder, root):
            continue
        for name in sorted(files):
            path = os.path.join(folder, name)
            key = os.path.relpath(path, root).replace(os.sep, "/")
            if not os.path.islink(path) and filters.allows(key):
                found.append(key)
                if len(found) > _NESTED_SHOWN:
                    return found
    return found


def create_reality_data(g: Globals, itwin_id: str, fields: RealityDataFields, *, upload: CaptureUpload | None,
                        renderer: Listener, on_created: Callable[[RealityData], None]) -> tuple[RealityData, Summary | None]:
    """Create a reality data (``on_created`` hears of it at once, before any upload); with ``upload``, it is
    created with authoring true, the folder goes in, and authoring becomes false once every file is there."""
    if upload is not None:
        check_capture_folder(upload.local_dir, fields.type, upload.filters)
        fields = dataclasses.replace(fields, authoring=True)
    tokens = g.credentials()
    with g.api(tokens) as api:
        created = api.reality_data.create(itwin_id, fields)
    on_created(created)
    if upload is None:
        return created, None
    req = SyncRequest(command="upload", direction=Direction.UP, local=(upload.local_dir,), prefix="",
                      settings=upload.settings, filters=upload.filters)
    target = RealityDataTarget(created.id, "", itwin_id)
    return created, _upload_and_finish(g, tokens, target, req, renderer, authoring=True)


def upload_to_reality_data(g: Globals, target: RealityDataTarget, req: SyncRequest, renderer: Listener) -> Summary:
    """The upload command for a reality-data:// target: as any upload, and a reality data whose authoring
    is true (an interrupted ``create --upload``, or another uploader's) gets it cleared once the run succeeds."""
    tokens = g.credentials()
    return _upload_and_finish(g, tokens, target, req, renderer, authoring=_is_authoring(g, tokens, target))


def _is_authoring(g: Globals, tokens: TokenProvider, target: RealityDataTarget) -> bool:
    try:
        with g.api(tokens) as api:
            return api.reality_data.get(target.reality_data_id, itwin_id=target.itwin_id).authoring is True
    except ApiError as exc:
        if exc.status != 403:
            raise
        # Write access may be granted where reading the properties is not: upload anyway.
        log.warning("note: could not read whether reality data %s is being authored (%s); its authoring flag is "
                    "left as it is", target.reality_data_id, redact(exc.message))
        return False


def resume_command(target: RealityDataTarget, req: SyncRequest) -> str:
    where = f"reality-data://{target.reality_data_id}" + (f"/{target.prefix}" if target.prefix else "")
    line = ["bucket-sync", "upload", *req.local, where]
    if target.itwin_id:
        line += ["--itwin", target.itwin_id]
    return " ".join(shlex.quote(part) for part in line)


def _upload_and_finish(g: Globals, tokens: TokenProvider, target: RealityDataTarget, req: SyncRequest, renderer: Listener, *,
                       authoring: bool) -> Summary:
    rd_id = target.reality_data_id
    resume = resume_command(target, req)
    try:
        summary = run_sync(req, lambda: g.container(target, write=True), renderer)
    except BucketSyncError as exc:
        if authoring:
            exc.hint = _joined(exc.hint, f"reality data {rd_id} keeps authoring true; once this is fixed, `{resume}` "
                                         f"uploads what is missing and clears it")
        raise
    except KeyboardInterrupt:
        if authoring:
            log.warning("reality data %s keeps authoring true: `%s` uploads what is missing (unchanged files are "
                        "skipped) and clears it", rd_id, resume)
        raise
    if not authoring:
        return summary
    if req.settings.dry_run:
        renderer.on_info(f"reality data {rd_id} is being authored; a real run sets authoring to false once every "
                         f"file is uploaded")
        return summary
    if summary.exit_code != 0:
        renderer.on_info(f"reality data {rd_id} keeps authoring true: {summary.failed} file(s) failed; `{resume}` "
                         f"retries them and clears it")
        return summary
    try:
        with g.api(tokens) as api:
            api.reality_data.update(rd_id, RealityDataFields(authoring=False), itwin_id=target.itwin_id)
    except BucketSyncError as exc:
        log_error(log, f"every file is uploaded, but reality data {rd_id} still says authoring true: {exc.message}",
                  _joined(exc.hint, f"run `bucket-sync reality-data update {rd_id} --authoring false` (or `{resume}` again)"))
        return dataclasses.replace(summary, exit_code=int(exc.exit_code))
    renderer.on_info(f"reality data {rd_id} is completely uploaded: authoring set to false")
    return summary


def _joined(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second
