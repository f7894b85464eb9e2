"""Blob metadata remembered between runs, keyed by (name, ETag): lets a listing leave out the metadata.

Why: a no-op mirror is all listing, and the blobs' metadata (our ``mtime``) is a tenth of what the listing
costs the service (Azurite: 1.37 s of CPU for 20,000 blobs without, 1.5 s with). A blob's ETag changes with
every write of its content, properties or metadata, so "blob N with ETag E has mtime M" never goes stale:
a blob whose ETag is not in the cache is looked up again (listing.py decides how), and nothing is trusted
that the service did not say about that exact version of the blob.

One file per listed folder, holding its first ``PART`` entries and naming the files of the next parts (by
their first name): a listing reads and writes a folder a part at a time, as its pages come, so memory
follows the pages in flight, not the folder (a flat folder of 200,000 blobs held whole was ~100 MB). Files
are 0600 in a 0700 folder under the user state dir; a damaged, unreadable or missing file is a cache miss,
never an error. The folder's file is replaced atomically, after its parts are written: a concurrent run
reads the old parts or the new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from bisect import bisect_right
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..private_files import write_private

log = logging.getLogger(__name__)

_VERSION = 3  # 3: entries may carry the sha256pieces metadata (a 4th item)
PART = 2_000  # entries per part: what a folder being listed holds of the cache, about (plus its own file's)
# Files not written for this long are removed (once per run that writes): folders that are gone, or
# containers no longer synced. One still in use merely costs a listing with metadata.
PRUNE_AFTER_S = 30 * 24 * 3600.0

# name -> (etag, mtime metadata, sha256pieces metadata), either metadata None when absent
Known = dict[str, tuple[str, "str | None", "str | None"]]
Entry = tuple[str, str, "str | None", "str | None"]  # (name, etag, mtime, pieces)
Listed = tuple[str, "str | None", "str | None", "str | None"]  # as listed: one without an ETag is not remembered


def _entries(data: dict[str, Any]) -> Known:
    known: Known = {}
    for entry in data["entries"]:
        # [name, etag, mtime] or, for a blob with a piece digest, [name, etag, mtime, pieces]
        if not isinstance(entry, list) or len(entry) not in (3, 4):
            continue
        name, etag, mtime, pieces = entry if len(entry) == 4 else (*entry, None)
        if (isinstance(name, str) and isinstance(etag, str) and (mtime is None or isinstance(mtime, str))
                and (pieces is None or isinstance(pieces, str))):
            known[name] = (etag, mtime, pieces)
    return known


class FolderReader:
    """One folder's remembered entries, its parts read as the names asked for reach them."""

    def __init__(self, cache: "MetadataCache", base: str, first: Known, parts: list[tuple[str, str]]) -> None:
        self._cache = cache
        self._base = base
        self._firsts = [first_name for first_name, _ in parts]
        self._ids = [part_id for _, part_id in parts]
        self._loaded: OrderedDict[int, Known] = OrderedDict({-1: first})
        self.empty = not first and not parts

    def get(self, name: str) -> tuple[str, str | None, str | None] | None:
        index = bisect_right(self._firsts, name) - 1  # -1: the entries in the folder's own file
        part = self._loaded.get(index)
        if part is None:
            part = self._cache._read_part(self._base, self._ids[index])  # noqa: SLF001
            self._loaded[index] = part
            while len(self._loaded) > 2:  # its own file's and the part last read (names come in order)
                oldest = next(k for k in self._loaded if k != -1)
                del self._loaded[oldest]
        else:
            self._loaded.move_to_end(index)
        return part.get(name)

    def entries(self, upto: str | None = None) -> Iterator[Entry]:
        """Every remembered entry (with a name up to ``upto``), part by part."""
        for index in range(-1, len(self._ids)):
            if upto is not None and index >= 0 and self._firsts[index] > upto:
                return
            part = self._loaded.get(index) or self._cache._read_part(self._base, self._ids[index])  # noqa: SLF001
            for name, (etag, mtime, pieces) in part.items():
                if upto is None or name <= upto:
                    yield name, etag, mtime, pieces


class FolderWriter:
    """A folder's new entries, in name order, written a part at a time; ``commit`` makes them current."""

    def __init__(self, cache: "MetadataCache", folder: str, delimiter: str | None) -> None:
        self._cache = cache
        self._path = cache._path(folder, delimiter)  # noqa: SLF001
        self._first: list[Entry] | None = None  # the first part: it goes into the folder's own file
        self._pending: list[Entry] = []
        self._parts: list[tuple[str, str]] = []
        self.failed = False

    def add(self, entries: Iterable[Listed]) -> None:
        for name, etag, mtime, pieces in entries:
            if etag:
                self._pending.append((name, etag, mtime, pieces))
                if len(self._pending) >= PART:
                    self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self._first is None:
            self._first = pending
            return
        if not pending or self.failed:
            return
        part_id = secrets.token_hex(6)
        if self._cache._write(self._part_path(part_id), {"entries": pending}):  # noqa: SLF001
            self._parts.append((pending[0][0], part_id))
        else:
            self.failed = True

    def _part_path(self, part_id: str) -> Path:
        return self._path.with_name(f"{self._path.stem}-{part_id}.json")

    def commit(self) -> None:
        self._flush()
        if self.failed:
            return
        old = self._cache._read_index(self._path)  # noqa: SLF001
        if self._cache._write(self._path, {"entries": self._first or [], "parts": self._parts}):  # noqa: SLF001
            kept = {part_id for _, part_id in self._parts}
            for _, part_id in (old[1] if old else []):
                if part_id not in kept:
                    try:
                        os.unlink(self._part_path(part_id))
                    except OSError:
                        pass


class MetadataCache:
    def __init__(self, directory: Path, container_url: str) -> None:
        self.directory = directory
        self.container_url = container_url
        self._pruned = False

    def _path(self, folder: str, delimiter: str | None) -> Path:
        digest = hashlib.sha256(f"{self.container_url}\n{folder}\n{delimiter or ''}".encode()).hexdigest()
        return self.directory / f"{digest}.json"

    def reader(self, folder: str, delimiter: str | None) -> FolderReader | None:
        """The folder's remembered entries, or None when it is not remembered."""
        path = self._path(folder, delimiter)
        index = self._read_index(path)
        if index is None:
            return None
        first, parts = index
        return FolderReader(self, path.stem, first, parts)

    def writer(self, folder: str, delimiter: str | None) -> FolderWriter:
        return FolderWriter(self, folder, delimiter)

    def load(self, folder: str, delimiter: str | None) -> Known | None:
        """Every remembered entry of the folder at once (small folders, tests)."""
        reader = self.reader(folder, delimiter)
        return None if reader is None else {name: (etag, mtime, pieces) for name, etag, mtime, pieces in reader.entries()}

    def save(self, folder: str, delimiter: str | None, entries: list[Entry]) -> None:
        """Replace the folder's entries (sorted by name)."""
        writer = self.writer(folder, delimiter)
        writer.add(entries)
        writer.commit()

    # -- files -----------------------------------------------------------------------------------------
    def _read_index(self, path: Path) -> tuple[Known, list[tuple[str, str]]] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("v") != _VERSION or data.get("container") != self.container_url:
                return None
            parts = [(first, part_id) for first, part_id in data["parts"]
                     if isinstance(first, str) and isinstance(part_id, str) and part_id.isalnum()]
            return _entries(data), parts
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def _read_part(self, base: str, part_id: str) -> Known:
        try:
            data = json.loads((self.directory / f"{base}-{part_id}.json").read_text(encoding="utf-8"))
            if data.get("v") != _VERSION or data.get("container") != self.container_url:
                return {}
            return _entries(data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}  # a part gone (a concurrent run replaced it) or damaged: misses

    def _write(self, path: Path, data: dict[str, Any]) -> bool:
        """Write one file atomically (a concurrent run reads the old file or the new one)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            body = json.dumps({"v": _VERSION, "container": self.container_url, **data}, ensure_ascii=False)
            if not self._pruned:
                self._pruned = True
                self.prune()
            write_private(path, body.encode("utf-8"), prefix=".tmp-", suffix=".json")
            return True
        except OSError as exc:  # a cache that cannot be written costs speed next time, nothing else
            log.debug("could not write the listing cache %s: %s", path, exc)
            return False

    def prune(self, now: float | None = None) -> None:
        cutoff = (time.time() if now is None else now) - PRUNE_AFTER_S
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.endswith(".json") and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
        except OSError as exc:
            log.debug("could not prune the listing cache: %s", exc)
