"""upload, download and mirror: resolve, scan and list, plan, guard, run, summarise."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import re
import stat
import threading
from typing import Callable, Iterator
from dataclasses import dataclass

from ..config import user_cache_dir
from .interrupt import interruptible
from ..errors import (BucketSyncError, ExitCode, PermissionDeniedError, SafetyGuardError,
                      UnsafeBlobNameError, UsageError)
from ..sync.access import (LIST, READ, Access, Comparison, download_approach, names_nothing, no_blob_and_no_listing,
                           upload_approach)
from ..sync.diff import DiffPolicy
from ..sync.engine import Engine
from ..sync.listener import FanOut, Listener, Summary, Tally
from ..sync.settings import TransferSettings
from ..sync.filters import PathFilter
from ..sync.keys import is_case_insensitive_dir, join_blob_name, key_from_local, local_path_for
from ..sync.model import Action, Direction, LocalFile, RemoteBlob, Status, TransferResult
from ..sync.mtime_precision import probe as probe_precision, source_precision, window_for
from ..sync.plan import Counted, Plan
from ..sync.prefetch import prefetch
from ..sync.scan import Skipped, scan_sources, scan_tree, top_level_folders
from ..storage.container import ContainerRef, Storage
from .run_log import log_error


log = logging.getLogger("bucket_sync")

# Blob metadata remembered between runs (storage/metadata_cache.py): no-op runs list without it. It lives in the
# cache folder: losing it costs only speed, and a container may mount the state folder alone as a volume.
METADATA_CACHE_DIR = "listing-cache"


@dataclass(frozen=True)
class SyncRequest:
    command: str  # "upload", "download" or "mirror"
    direction: Direction
    local: tuple[str, ...]  # upload: one or more sources; download/mirror: one folder
    prefix: str
    settings: TransferSettings
    filters: PathFilter = PathFilter()
    checksum: bool = False
    overwrite: bool = False
    follow_symlinks: bool = False
    mirror: bool = False
    delete: bool = True  # mirror only: --no-delete turns it off
    max_delete: str = "50%"
    force: bool = False
    files_from: tuple[str, ...] | None = None  # these names only: download, relative to the prefix; upload,
    #                                            relative to the one local folder


def parse_max_delete(value: str | int) -> tuple[int | None, float | None]:
    """'100' -> (100, None); '10%' -> (None, 10.0)."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
    if m and float(m.group(1)) <= 100:
        return None, float(m.group(1))
    if re.fullmatch(r"\d+", text):
        return int(text), None
    raise UsageError(f"--max-delete {value!r} is neither a count nor a percentage", hint="use e.g. --max-delete 100 or --max-delete 10%")


def check_mirror_guards(req: SyncRequest, plan: Plan, source_exists: bool) -> None:
    if req.force:
        return
    # A shard's share of a source can be empty; the source itself must not be (an unmounted disk).
    empty = plan.source_count == 0 and (req.filters.shard is None or _source_is_empty(req))
    if not source_exists or empty:
        raise SafetyGuardError(
            "refusing to mirror from an empty or missing source: that would delete everything in the destination",
            hint="check the source; use --force if emptying the destination is really meant",
        )
    if req.delete and plan.deletes:
        count, percent = parse_max_delete(req.max_delete)
        limit = count if count is not None else int(plan.dest_count * (percent or 0) / 100)
        if len(plan.deletes) > limit:
            raise SafetyGuardError(
                f"refusing to delete {len(plan.deletes)} of {plan.dest_count} files in the destination "
                f"(--max-delete {req.max_delete} allows {limit})",
                hint="run with --dry-run to see them; raise --max-delete or use --force if this is meant",
            )


def run_sync(req: SyncRequest, container_factory: Callable[[], ContainerRef], renderer: Listener, *,
             stop: threading.Event | None = None, tally: Tally | None = None) -> Summary:
    """Local paths are checked before ``container_factory`` is called: a typo in a path is a usage error
    (exit 2), not a credentials problem. What the SAS allows is decided (access.py) before anything is
    scanned or sent: a run that cannot do what was asked changes nothing."""
    tally = tally or Tally()
    listener = FanOut(tally, renderer)
    source_exists = True
    if req.direction is Direction.UP:
        for path in req.local:
            if not os.path.lexists(path):
                if req.mirror:
                    source_exists = False
                else:
                    raise UsageError(f"no such file or folder: {path}")
    elif req.files_from is None and os.path.exists(req.local[0]) and not os.path.isdir(req.local[0]) \
            and (req.mirror or not req.prefix):
        raise UsageError(f"{req.local[0]} exists and is not a folder", hint="give a folder to download into")

    stop = stop or threading.Event()  # Ctrl+C sets it: nothing new starts, waits and transfers end early
    storage = container_factory().open(concurrency=req.settings.concurrency, cancel=stop,
                                       metadata_cache_dir=user_cache_dir() / METADATA_CACHE_DIR)
    with interruptible(stop, tally):  # the summary is printed all the same, with exit code 130
        try:
            if req.direction is Direction.UP:
                _upload(req, storage, listener, tally, stop, source_exists)
            else:
                _download(req, storage, listener, tally, stop)
        finally:
            storage.close()
    return tally.summary(req.command)


def _upload(req: SyncRequest, storage: Storage, listener: Listener, tally: Tally, stop: threading.Event, source_exists: bool) -> None:
    """upload and mirror up: listing, or file by file when the SAS cannot list; once more file by file if
    storage refuses a listing that ``sp=`` did not rule out."""
    access = storage.access()
    approach = upload_approach(access, deletes=req.mirror and req.delete, overwrite=req.overwrite, what=req.command)
    reported: set[str] = set()  # a symlink skipped is reported once, even when the plan is made twice

    def on_skip(skipped: Skipped) -> None:
        if skipped.key not in reported:
            reported.add(skipped.key)
            listener.on_result(TransferResult(Action.UPLOAD, join_blob_name(req.prefix, skipped.key), 0, Status.SKIPPED,
                                              error=skipped.why))

    policy = DiffPolicy(transfer=Action.UPLOAD, delete_extras=req.mirror and req.delete, checksum=req.checksum,
                        overwrite=req.overwrite or approach.comparison is Comparison.NONE)
    # The sources are only read: their filesystem's precision is known by its type, where that is cheap.
    policy = policy.with_window_at_least(
        window_for(source_precision([p for p in req.local if os.path.lexists(p)])))
    engine = Engine(storage, direction=Direction.UP, prefix=req.prefix, local_root=None,
                    settings=req.settings, listener=listener, tally=tally, stop=stop)
    for attempt in (1, 2):
        if approach.notice:
            listener.on_info(approach.notice)
        # The local scan runs ahead in a thread while the remote side is listed or looked up.
        if req.files_from is not None:
            sources = iter(_named_files(req, listener, report=attempt == 1))
        elif source_exists:
            sources = prefetch(scan_sources([p for p in req.local if os.path.lexists(p)], filters=req.filters,
                                            follow_symlinks=req.follow_symlinks, on_skip=on_skip))
        else:
            sources = iter(())
        # Single files given: looked up by name, cheaper than listing a possibly huge prefix (when readable).
        by_name = approach.comparison is Comparison.LOOKUP or (_only_files(req) and access.allows(READ))
        dests: Iterator[RemoteBlob]
        if approach.comparison is Comparison.LISTING and not by_name:
            # Filters apply to both sides: a blob the filters exclude is neither compared nor deleted.
            hints = top_level_folders(req.local[0]) if len(req.local) == 1 else []
            dests = (b for b in storage.iter_list(req.prefix, hints=hints, top_folder_ok=req.filters.allows_top_folder)
                     if req.filters.allows_entry(b))
        elif approach.comparison is Comparison.NONE:
            dests = iter(())
        else:
            sources, mine = itertools.tee(sources)
            dests = (b for b in storage.look_up_each(req.prefix, (f.key for f in mine)) if req.filters.allows_entry(b))
        try:
            plan = engine.plan(sources, dests, policy)
            break
        except PermissionDeniedError as exc:
            if attempt == 2 or approach.comparison is not Comparison.LISTING or exc.permission != LIST:
                raise
            # sp= did not rule listing out, storage did: decide again with what it said.
            access = storage.access()
            approach = upload_approach(access, deletes=req.mirror and req.delete, overwrite=req.overwrite,
                                       what=req.command)
    _guarded_run(req, engine, plan, tally, source_exists)


def _guarded_run(req: SyncRequest, engine: Engine, plan: Plan, tally: Tally, source_exists: bool,
                 prepare: Callable[[], None] = lambda: None) -> None:
    """Run the plan unless a mirror guard refuses it. A dry run shows the whole plan first (every action
    with its reason: what the user wants to see before raising --max-delete), then says the real run
    would be refused, and exits 6 all the same."""
    refusal: SafetyGuardError | None = None
    if req.mirror:
        try:
            check_mirror_guards(req, plan, source_exists)
        except SafetyGuardError as exc:
            if not req.settings.dry_run:
                raise
            refusal = exc
    prepare()
    engine.run(plan, delete=req.mirror and req.delete)
    if refusal is not None:
        log_error(log, f"the real run would be refused: {refusal.message}",
                  refusal.hint.replace("run with --dry-run to see them; ", "") if refusal.hint else None)
        tally.set_fatal(refusal)


def _source_is_empty(req: SyncRequest) -> bool:
    """Whether the mirror's source has no entry at all (its first one is enough to tell)."""
    if req.direction is Direction.UP:
        try:
            with os.scandir(req.local[0]) as entries:
                return next(entries, None) is None
        except OSError:
            return True
    return True  # a remote source: its share was listed, the rest is not known without a listing


def _only_files(req: SyncRequest) -> bool:
    return (not req.mirror and bool(req.local) and all(os.path.isfile(p) for p in req.local)) or req.files_from is not None


def _named_files(req: SyncRequest, listener: Listener, *, report: bool) -> list[LocalFile]:
    """upload --files-from: the files named, relative to the one local folder, sorted; a name that is not
    a regular file there is a failed file (reported once), not a silent skip."""
    root = req.local[0]
    found = []
    for key in sorted(set(req.files_from or ())):
        try:
            path = local_path_for(root, key)
            st = os.stat(path) if req.follow_symlinks else os.lstat(path)
        except (OSError, BucketSyncError) as exc:
            why = exc.message if isinstance(exc, BucketSyncError) else "no such file (--files-from)"
            if report:
                listener.on_result(TransferResult(Action.UPLOAD, join_blob_name(req.prefix, key), 0, Status.FAILED,
                                                  error=f"{key}: {why}", exit_code=1))
            continue
        if stat.S_ISREG(st.st_mode) and req.filters.allows_file(key, st.st_size, st.st_mtime_ns):
            found.append(LocalFile(key, path, st.st_size, st.st_mtime_ns))
    return found


def _download(req: SyncRequest, storage: Storage, listener: Listener, tally: Tally, stop: threading.Event) -> None:
    """download and mirror down: a folder through a listing; a blob REMOTE names, or --files-from names,
    by name (read permission alone is enough)."""
    access = storage.read_access()
    local_root = req.local[0]
    partials: list[tuple[str, str]] = []  # (key, path) of .bucket-sync-partial files found by the scan
    named = None if req.mirror else _named_blobs(req, storage, access, listener)
    if named is not None:
        local_root, sources, dests = named
        policy = _download_policy(req, local_root)
    else:
        if os.path.exists(local_root) and not os.path.isdir(local_root):
            raise UsageError(f"{local_root} exists and is not a folder", hint="give a folder to download into")
        download_approach(access, by_name=False, mirror=req.mirror)
        policy = _download_policy(req, local_root)  # before the scan below starts walking the folder
        dests = prefetch(scan_tree(local_root, filters=req.filters, on_partial=lambda key, path: partials.append((key, path)))
                         ) if os.path.isdir(local_root) else iter(())
        listed = Counted(storage.iter_list(req.prefix, hints=top_level_folders(local_root),
                                            top_folder_ok=req.filters.allows_top_folder))
        sources = (b for b in listed if req.filters.allows_entry(b))
    engine = Engine(storage, direction=Direction.DOWN, prefix=req.prefix, local_root=local_root,
                    settings=req.settings, listener=listener, tally=tally, stop=stop)
    plan = engine.plan(sources, dests, policy)
    if named is None and not req.mirror and listed.n == 0:
        if req.filters.shard is not None:
            listener.on_info(f"nothing to download in {req.filters.shard.describe()}")
        elif req.prefix:
            raise names_nothing(req.prefix, lead="nothing to download")
        listener.on_info("nothing to download: the container holds no blobs")
    _guarded_run(req, engine, plan, tally, True,
                 prepare=lambda: None if req.settings.dry_run else os.makedirs(local_root, exist_ok=True))
    if req.mirror and req.delete and not req.settings.dry_run and tally.exit_code == 0:
        _sweep_partials(partials, req.filters)


def _download_policy(req: SyncRequest, local_root: str) -> DiffPolicy:
    """How a download decides, with the two facts about its destination probed here, once, before its scan
    starts (each probe writes a file there for a moment; planning itself touches nothing): whether the
    filesystem folds case, and what it keeps of the mtimes this run sets (a FAT disk rounds them to 2 s)."""
    policy = DiffPolicy(transfer=Action.DOWNLOAD, delete_extras=req.mirror and req.delete, checksum=req.checksum,
                        overwrite=req.overwrite, case_insensitive=is_case_insensitive_dir(local_root))
    return policy.with_window_at_least(window_for(probe_precision(local_root)))


def _named_blobs(req: SyncRequest, storage: Storage, access: Access,
                 listener: Listener) -> tuple[str, Iterator[RemoteBlob], Iterator[LocalFile]] | None:
    """(local root, sources, dests) when the download is by name: --files-from, or a REMOTE that names a
    blob (which wins over a folder of the same name, as for rclone); None for a folder download."""
    if req.files_from is None and not req.prefix:
        return None
    download_approach(access, by_name=True, mirror=False)  # read permission, at least
    if req.files_from is not None:
        root = req.local[0]
        blobs: list[RemoteBlob] = []
        for key, blob in storage.look_up_pairs(req.prefix, sorted(set(req.files_from))):
            if blob is None:
                listener.on_result(TransferResult(Action.DOWNLOAD, join_blob_name(req.prefix, key), 0, Status.FAILED,
                                                  error="no blob of that name (--files-from)", exit_code=int(ExitCode.NOT_FOUND)))
            elif req.filters.allows_entry(blob):
                blobs.append(blob)
        return root, iter(blobs), iter(_local_twins(root, [b.key for b in blobs]))
    blob = storage.get(req.prefix, req.prefix.rsplit("/", 1)[-1])
    if blob is None:
        if not access.allows(LIST):
            raise no_blob_and_no_listing(req.prefix, access, as_what="downloaded")
        return None
    dest = req.local[0]
    if os.path.isdir(dest) or dest.endswith(("/", os.sep)):
        root, name = dest, blob.key
    else:
        root, local_name = os.path.dirname(os.path.abspath(dest)), os.path.basename(dest)
        try:  # a local name the user chose: the key it stands for (with Windows names, not itself)
            name = key_from_local(local_name)
        except UnsafeBlobNameError as exc:
            raise UsageError(f"cannot download into {dest}: {exc.message}") from None
    blob = dataclasses.replace(blob, key=name)
    return root, iter([blob]), iter(_local_twins(root, [name]))


def _local_twins(root: str, keys: list[str]) -> list[LocalFile]:
    """The local files already at ``keys`` under ``root`` (sorted), for the same skip rules as a folder."""
    found = []
    for key in sorted(keys):
        try:
            path = local_path_for(root, key)
            st = os.stat(path)
        except (OSError, BucketSyncError):
            continue  # absent (or a name the diff will refuse anyway)
        if stat.S_ISREG(st.st_mode):
            found.append(LocalFile(key, path, st.st_size, st.st_mtime_ns))
    return found


def _sweep_partials(partials: list[tuple[str, str]], filters: PathFilter) -> None:
    """After a download mirror that succeeded, partial files found before it are leftovers of interrupted
    runs: the downloads this run made renamed theirs, and one whose blob was deleted since would otherwise
    stay forever. Only keys the filters allow: what they exclude is not touched."""
    for key, path in partials:
        if not filters.allows(key):
            continue
        try:
            os.remove(path)
        except FileNotFoundError:
            continue  # this run downloaded that key: its partial became the file
        except OSError as exc:
            log.warning("could not remove the leftover %s: %s", path, exc.strerror or exc)
        else:
            log.info("removed the leftover %s of an interrupted download", path)


__all__ = ["SyncRequest", "run_sync", "parse_max_delete", "LocalFile"]
