"""ls, rm and url: the commands that act on the remote side only."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import BucketSyncError, NotFoundError, UsageError
from .interrupt import interruptible
from ..redact import redact
from ..sas import ContainerSas
from ..sync.access import LIST, READ, delete_approach, download_approach, names_nothing, no_blob_and_no_listing
from ..sync.listener import FanOut, Listener, Summary, Tally
from ..sync.keys import join_blob_name
from ..sync.model import Action, RemoteBlob, Status, TransferResult
from ..sync.mtime import format_mtime
from ..storage.container import ContainerRef
from ..timefmt import rfc3339


@dataclass(frozen=True)
class ListedEntry:
    name: str  # full blob name, or a folder name ending in '/' (non-recursive listing)
    blob: RemoteBlob | None

    def as_event(self) -> dict[str, Any]:
        if self.blob is None:
            return {"event": "dir", "key": self.name}
        b = self.blob
        return {"event": "blob", "key": self.name, "size": b.size, "mtime": format_mtime(b.mtime_ns),
                "md5": b.md5.hex() if b.md5 else None}


def list_remote(container: ContainerRef, prefix: str, *, recursive: bool) -> list[ListedEntry]:
    """The blobs under ``prefix`` (folders as 'name/' unless ``recursive``); a prefix that names a blob and
    nothing under it: that blob. Without the list permission, only a name can be shown (by a HEAD).
    NotFoundError when a non-empty prefix names nothing."""
    storage = container.open(concurrency=1)
    try:
        access = storage.read_access()
        if not access.allows(LIST) and prefix:
            download_approach(access, by_name=True, mirror=False, what="ls")  # read, at least
            single = storage.get(prefix, prefix.rsplit("/", 1)[-1])
            if single is None:
                raise no_blob_and_no_listing(prefix, access, as_what="listed")
            return [ListedEntry(prefix, single)]
        download_approach(access, by_name=False, mirror=False, what="listing a folder")
        blobs = storage.list(prefix)
        if not blobs and prefix:
            single = storage.get(prefix, prefix.rsplit("/", 1)[-1]) if access.allows(READ) else None
            if single is None:
                raise names_nothing(prefix, lead="nothing to list")
            return [ListedEntry(prefix, single)]
    finally:
        storage.close()
    entries: list[ListedEntry] = []
    seen_dirs: set[str] = set()
    for b in blobs:
        if not recursive and "/" in b.key:
            folder = join_blob_name(prefix, b.key.split("/", 1)[0]) + "/"
            if folder not in seen_dirs:
                seen_dirs.add(folder)
                entries.append(ListedEntry(folder, None))
            continue
        entries.append(ListedEntry(b.name, b))
    entries.sort(key=lambda e: e.name)
    return entries


def format_long(entry: ListedEntry) -> str:
    if entry.blob is None:
        return f"{'DIR':>14}  {'':20}  {'':32}  {entry.name}"
    b = entry.blob
    mtime = rfc3339(b.mtime_ns / 1e9)
    md5 = b.md5.hex() if b.md5 else "-"
    return f"{b.size:>14}  {mtime:20}  {md5:32}  {entry.name}"


def remove_remote(container: ContainerRef, prefix: str, *, recursive: bool, dry_run: bool, concurrency: int,
                  renderer: Listener) -> Summary:
    if not recursive and not prefix:
        # Checked before any network call: emptying a whole container must be asked for explicitly.
        raise UsageError("rm without --recursive needs a blob name", hint="add --recursive to delete everything in the container")
    tally = Tally()
    listener = FanOut(tally, renderer)
    storage = container.open(concurrency=concurrency)
    try:
        delete_approach(storage.access(), recursive=recursive)  # before anything is deleted
        if recursive:
            targets = storage.list(prefix)
            exact = storage.get(prefix, prefix) if prefix else None
            if exact is not None:
                targets.append(exact)
        else:
            exact = storage.get(prefix, prefix)
            if exact is None:
                raise NotFoundError(f"no blob named {prefix!r}", hint="to delete everything under a prefix, add --recursive")
            targets = [exact]
        listener.on_plan(len(targets), 0)
        stop = threading.Event()

        def delete(blob: RemoteBlob) -> None:
            if stop.is_set():
                return
            # No reason: rm deletes what it is told to, nothing was compared.
            result = TransferResult(Action.DELETE, blob.name, blob.size, Status.PLANNED if dry_run else Status.OK)
            if not dry_run:
                try:
                    storage.delete(blob.name)
                except BucketSyncError as exc:
                    if exc.exit_code != 1:
                        tally.set_fatal(exc)
                        stop.set()
                    result = TransferResult(Action.DELETE, blob.name, blob.size, Status.FAILED, error=redact(exc), exit_code=int(exc.exit_code))
            listener.on_result(result)

        with ThreadPoolExecutor(max(1, concurrency)) as pool, interruptible(stop, tally):
            # Ctrl+C: the deletes not started yet are skipped (stop), before the pool waits for the others.
            list(pool.map(delete, targets))
    finally:
        storage.close()
    return tally.summary("rm")


def describe_url(sas: ContainerSas, *, show_secret: bool) -> dict[str, Any]:
    return {
        "event": "url",
        "url": sas.url if show_secret else sas.redacted_url,
        "expires": rfc3339(sas.expires_at) if sas.expires_at else None,
        "permissions": sas.permissions or None,
    }


__all__ = ["list_remote", "format_long", "remove_remote", "describe_url"]
