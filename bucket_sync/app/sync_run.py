"""upload, download and mirror: resolve, scan and list, plan, guard, run, summarise."""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Callable
from dataclasses import dataclass

from ..config import user_state_dir
from ..errors import SafetyGuardError, UsageError
from ..sas import SasSource
from ..sync.diff import DiffPolicy
from ..sync.engine import Engine, Plan, TransferSettings
from ..sync.events import FanOut, Listener, Summary, Tally
from ..sync.filters import PathFilter
from ..sync.keys import join_blob_name
from ..sync.model import Action, Direction, LocalFile, Op, Status, TransferResult
from ..sync.prefetch import prefetch
from ..sync.scan import Skipped, scan_sources, scan_tree, top_level_folders
from ..sync.storage import Storage


log = logging.getLogger("bucket_sync")

# Blob metadata remembered between runs (sync/metadata_cache.py): no-op runs list without it.
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
    if not source_exists or plan.source_count == 0:
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


def run_sync(req: SyncRequest, source_factory: Callable[[], SasSource], renderer: Listener, *,
             stop: threading.Event | None = None, tally: Tally | None = None) -> Summary:
    """Local paths are checked before ``source_factory`` is called: a typo in a path is a usage error
    (exit 2), not a credentials problem."""
    tally = tally or Tally()
    listener = FanOut(tally, renderer)
    op = Op.UPLOAD if req.direction is Direction.UP else Op.DOWNLOAD

    def on_skip(skipped: Skipped) -> None:
        listener.on_result(TransferResult(op, join_blob_name(req.prefix, skipped.key), 0, Status.SKIPPED, error=skipped.why))

    source_exists = True
    if req.direction is Direction.UP:
        for path in req.local:
            if not os.path.lexists(path):
                if req.mirror:
                    source_exists = False
                else:
                    raise UsageError(f"no such file or folder: {path}")
    else:
        local_root = req.local[0]
        if os.path.exists(local_root) and not os.path.isdir(local_root):
            raise UsageError(f"{local_root} exists and is not a folder", hint="give a folder to download into")

    partials: list[tuple[str, str]] = []  # (key, path) of .bucket-sync-partial files found by the scan
    storage = Storage(source_factory(), concurrency=req.settings.concurrency, cancel=stop,
                      metadata_cache_dir=user_state_dir() / METADATA_CACHE_DIR)
    try:
        if req.direction is Direction.UP:
            # The local scan runs ahead in a thread while the remote listing is fetched.
            sources = prefetch(scan_sources([p for p in req.local if os.path.lexists(p)], filters=req.filters,
                                            follow_symlinks=req.follow_symlinks, on_skip=on_skip)) if source_exists else iter(())
            # Filters apply to both sides: a blob the filters exclude is neither compared nor deleted.
            dests = (b for b in _remote_dests(storage, req) if req.filters.allows(b.key))
            local_root = None
        else:
            dests = prefetch(scan_tree(local_root, filters=req.filters, on_partial=lambda key, path: partials.append((key, path)))
                             ) if os.path.isdir(local_root) else iter(())
            remote = storage.iter_list(req.prefix, hints=top_level_folders(local_root))
            sources = (b for b in remote if req.filters.allows(b.key))
        policy = DiffPolicy(
            transfer=Action.UPLOAD if req.direction is Direction.UP else Action.DOWNLOAD,
            delete_extras=req.mirror and req.delete, checksum=req.checksum, overwrite=req.overwrite,
        )
        engine = Engine(storage, direction=req.direction, prefix=req.prefix, local_root=local_root,
                        settings=req.settings, listener=listener, tally=tally, stop=stop)
        plan = engine.plan(sources, dests, policy)
        if req.mirror:
            check_mirror_guards(req, plan, source_exists)
        if req.direction is Direction.DOWN and not req.settings.dry_run:
            os.makedirs(local_root, exist_ok=True)
        engine.run(plan, delete=req.mirror and req.delete)
        if req.mirror and req.delete and not req.settings.dry_run and tally.exit_code == 0:
            _sweep_partials(partials, req.filters)
    finally:
        storage.close()
    return tally.summary(req.command)


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


def _remote_dests(storage: Storage, req: SyncRequest):
    """What is already there. Only single files given: look them up one by one instead of listing a
    possibly huge prefix."""
    if not req.mirror and req.local and all(os.path.isfile(p) for p in req.local):
        found = []
        for path in req.local:
            key = os.path.basename(os.path.abspath(path))
            blob = storage.get(join_blob_name(req.prefix, key), key)
            if blob is not None:
                found.append(blob)
        return sorted({b.key: b for b in found}.values(), key=lambda b: b.key)
    # Streamed: the diff starts while later folders are listed. One source folder: its top-level folders
    # are likely the remote's too, and can be listed at once (hints).
    hints = top_level_folders(req.local[0]) if len(req.local) == 1 else []
    return storage.iter_list(req.prefix, hints=hints)


__all__ = ["SyncRequest", "run_sync", "parse_max_delete", "LocalFile"]
