"""Listing a prefix fast: split it into folders, list the folders in parallel, yield blobs in key order.

Why split: a listing is one chain of pages (the continuation marker is opaque), so a single listing of a big
prefix waits for the service one page at a time. Like rclone and AzCopy, we list folder by folder in
parallel instead: a listing with delimiter '/' returns a level's blobs and its sub-folders; levels are split
until there are enough folders to keep the workers busy, then each folder is listed flat (all its depth in
one chain of pages). A delimiter listing is never wasted: the blobs it returns are the ones we need.

Why the order holds: every name under a folder prefix P sorts after P and before anything after P that
does not start with P. So a level's blobs and folders, sorted by name and with each folder replaced by its
own sorted contents, give exactly the order of one flat listing. Each folder's blobs are sorted here
(timsort on already-sorted input is linear), so the order is Python's whatever the service's collation.

Memory: folders are listed at most ``window`` ahead of the consumer, so a slow consumer (the diff) does not
make the whole container pile up in memory; and the window narrows to about ``blob_budget`` blobs once the
folders listed so far say how big they are (32 folders of 10,000 blobs ahead were 320,000 RemoteBlobs,
~300 MB, at any container size).

Metadata: with a MetadataCache that knows a folder, the folder is listed without metadata and the cache
fills each blob's mtime in, for the blobs whose ETag it remembers (see _items).
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Callable, Iterable, Iterator

from ..errors import BucketSyncError
from .list_pages import Page, next_marker, parse_page, to_remote_blob
from .metadata_cache import MetadataCache
from ..sync.model import RemoteBlob
from ..sync.waiting import result

# (prefix, marker, delimiter, with metadata) -> the XML body of one List Blobs page
Fetch = Callable[[str | None, str | None, str | None, bool], bytes]
# blob name -> (ETag, mtime metadata or None) as the service has it now; None when the blob is gone
Head = Callable[[str], "tuple[str, str | None] | None"]

# A folder whose cached metadata misses this many blobs per page listed is listed again with metadata;
# fewer are looked up one by one (a growing capture folder should not cost two full listings per run).
HEADS_PER_PAGE = 8

# About how many listed blobs may wait for the consumer: the window in folders is this over the mean folder
# size seen so far (but at least 2 folders, at most ``window``).
BLOB_BUDGET = 40_000

DELIMITER = "/"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Unit:
    """One slot of the key order: a blob already listed, or a folder still to list."""

    name: str
    blob: RemoteBlob | None = None


class Lister:
    def __init__(self, fetch: Fetch, *, workers: int = 16, max_depth: int = 3, cache: MetadataCache | None = None,
                 head: Head | None = None, parse: Callable[[bytes], Page] = parse_page) -> None:
        self.fetch = fetch
        self.parse = parse  # parse_page, or a ParsePool's (parse_pool.py: a helper process for big listings)
        self.cache = cache  # with it, folders whose blobs it knows are listed without metadata
        self.head = head
        self.workers = max(1, workers)
        self.max_depth = max_depth
        self.window = 2 * self.workers
        self.blob_budget = BLOB_BUDGET
        self.first_wave = max(2, self.workers // 4)  # folders listed before any folder's size is known
        self._prefix = ""  # of the listing in progress: blobs are converted in the workers, off the consumer
        self._top_ok: Callable[[str], bool] | None = None

    def blobs(self, prefix: str, hints: Iterable[str] = (),
              top_folder_ok: Callable[[str], bool] | None = None) -> Iterator[RemoteBlob]:
        """Every blob under ``prefix`` (a folder, '' for the whole container), sorted by key.

        ``hints``: names of folders likely to exist right under the prefix (the local side's top-level
        folders). When there are enough of them to keep every worker busy, they are listed at once, while
        the prefix's own level is still being listed, instead of one round trip later. A hinted folder the
        container lacks costs one empty listing. ``top_folder_ok(name)``: whether a folder right under the
        prefix is wanted at all (--shard-by folder): the others are never listed.
        """
        root = f"{prefix}/" if prefix else ""
        self._prefix = prefix
        self._top_ok = top_folder_ok
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="list")
        first = pool.submit(self._list_level, root)  # ahead of the hinted folders: the diff starts with it
        early: dict[str, Future] = {}
        hinted = sorted({f"{root}{h}/" for h in hints if h and "/" not in h and (top_folder_ok is None or top_folder_ok(h))})
        if len(hinted) >= self.workers:
            # A top level wider than the window is a big tree: a few folders until the folders' sizes are
            # known (32 folders of a million-file archive at once were 300 MB of pages and blobs).
            first_wave = self.window if len(hinted) <= self.window else self.first_wave
            early = {name: pool.submit(self._list_flat, name) for name in hinted[:first_wave]}
        try:
            yield from self._ordered(root, pool, early, first)
        finally:
            for future in early.values():
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    # -- phases ------------------------------------------------------------------------------------
    def _ordered(self, root: str, pool: ThreadPoolExecutor, early: dict[str, Future],
                 first: Future) -> Iterator[RemoteBlob]:
        units = self._split(root, pool, keep=set(early), first=first)
        pending = dict(early)
        present = {u.name for u in units if u.blob is None}
        for name in [n for n in pending if n not in present]:  # hinted, but not in the container
            pending.pop(name).cancel()
        folders = deque(u.name for u in units if u.blob is None and u.name not in pending)
        taken: set[str] = set()  # listed out of turn (see below): top_up must not list them again
        seen = [0, 0]  # blobs and folders handed on so far: the mean folder size sets the window

        def window() -> int:
            if not seen[1]:
                return self.first_wave  # sizes unknown yet
            mean = max(1.0, seen[0] / seen[1])
            return max(2, min(self.window, int(self.blob_budget / mean)))

        def top_up() -> None:
            while folders and len(pending) < window():
                name = folders.popleft()
                if name not in taken:
                    pending[name] = pool.submit(self._list_flat, name)

        try:
            for unit in units:
                if unit.blob is not None:
                    yield unit.blob
                    continue
                top_up()
                future = pending.pop(unit.name, None)
                if future is None:  # its turn came while early (hinted) listings filled the window
                    taken.add(unit.name)
                    future = pool.submit(self._list_flat, unit.name)
                listed = result(future)
                seen[0] += len(listed)
                seen[1] += 1
                top_up()
                yield from listed
        finally:
            for future in pending.values():
                future.cancel()

    def _split(self, root: str, pool: ThreadPoolExecutor, keep: set[str], first: Future) -> list[_Unit]:
        """Replace folders by their contents (delimiter listings, in parallel) until there are enough
        folders to list in parallel, or the tree is that deep. ``first``: the root's own level, already
        asked for. Folders in ``keep`` are already being listed flat."""
        units = result(first)
        if self._top_ok is not None:
            units = [u for u in units if u.blob is not None or self._top_ok(u.name[len(root):].rstrip("/"))]
        for depth in range(1, self.max_depth):
            folders = [u for u in units if u.blob is None]
            splittable = [u.name for u in folders if u.name not in keep]
            if not splittable or len(folders) >= self.workers:
                break
            futures = [pool.submit(self._list_level, name) for name in splittable]
            levels = dict(zip(splittable, (result(f) for f in futures)))
            units = [child for u in units for child in (levels[u.name] if u.blob is None and u.name in levels else (u,))]
        return units

    # -- one folder ------------------------------------------------------------------------------
    def _list_level(self, folder: str) -> list[_Unit]:
        """The blobs directly in ``folder`` and its sub-folders, sorted by name."""
        items, folders = self._items(folder, DELIMITER)
        units = [_Unit(blob.name, blob) for blob in self._convert(items)]
        units.extend(_Unit(name) for name in folders if name != folder)
        units.sort(key=attrgetter("name"))
        return units

    def _list_flat(self, folder: str) -> list[RemoteBlob]:
        blobs = self._convert(self._items(folder, None)[0])
        blobs.sort(key=attrgetter("name"))
        return blobs

    def _convert(self, items: list[tuple]) -> list[RemoteBlob]:
        blobs = []
        for item in items:
            blob = to_remote_blob(self._prefix, item)
            if blob is not None:
                blobs.append(blob)
        return blobs

    def _items(self, folder: str, delimiter: str | None) -> tuple[list[tuple], list[str]]:
        """One listing's blob tuples and sub-folders. With a metadata cache that knows the folder, the
        listing leaves the metadata out and the cache fills it in, for the blobs whose ETag it has."""
        known = self.cache.load(folder, delimiter) if self.cache is not None else None
        if known:  # a folder remembered empty is as cheap to list with metadata as without
            items, folders, pages = self._collect(folder, delimiter, metadata=False)
            filled, missing = [], []
            for item in items:
                hit = known.get(item[0])
                if hit is not None and hit[0] == item[3]:
                    filled.append(item[:4] + (hit[1],) + item[5:])
                else:
                    missing.append(item)
            if not missing:
                return filled, folders
            looked_up = self._look_up(missing, limit=HEADS_PER_PAGE * pages)
            if looked_up is not None:
                filled.extend(looked_up)
                filled.sort(key=itemgetter(0))
                self._remember(folder, delimiter, filled)
                return filled, folders
        items, folders, _ = self._collect(folder, delimiter, metadata=True)
        self._remember(folder, delimiter, items)
        return items, folders

    def _look_up(self, missing: list[tuple], *, limit: int) -> list[tuple] | None:
        """The missing blobs' metadata, one request each; None when there are too many (list again)."""
        if self.head is None or len(missing) > limit:
            return None
        found = []
        for item in missing:
            try:
                now = self.head(item[0])
            except BucketSyncError as exc:
                # E.g. a SAS that may list but not read (an upload mirror needs no read permission).
                log.debug("looking up %s failed (%s): listing its folder with metadata", item[0], exc)
                return None
            if now is None or now[0] != item[3]:
                return None  # changed or gone since the listing: list the folder again
            found.append(item[:4] + (now[1],) + item[5:])
        return found

    def _remember(self, folder: str, delimiter: str | None, items: list[tuple]) -> None:
        if self.cache is not None:
            self.cache.save(folder, delimiter, [(item[0], item[3], item[4]) for item in items])

    def _collect(self, folder: str, delimiter: str | None, *, metadata: bool) -> tuple[list[tuple], list[str], int]:
        items: list[tuple] = []
        folders: list[str] = []
        pages = 0
        for page in self._pages(folder, delimiter, metadata):
            items.extend(page.blobs)
            folders.extend(page.folders)
            pages += 1
        return items, folders, pages

    def _pages(self, folder: str, delimiter: str | None, metadata: bool) -> Iterator[Page]:
        """Every page of one listing; the next page is requested before this one is parsed."""
        starts = folder or None
        body = self.fetch(starts, None, delimiter, metadata)
        ahead: ThreadPoolExecutor | None = None
        try:
            while True:
                marker = next_marker(body)
                pending: Future | None = None
                if marker:
                    ahead = ahead or ThreadPoolExecutor(1, thread_name_prefix="list-ahead")
                    pending = ahead.submit(self.fetch, starts, marker, delimiter, metadata)
                page = self.parse(body)
                if page.next_marker != marker:  # the quick look disagreed with the parser: trust the parser
                    if pending is not None:
                        pending.cancel()
                    pending, marker = None, page.next_marker
                yield page
                if not marker:
                    return
                body = pending.result() if pending is not None else self.fetch(starts, marker, delimiter, metadata)
        finally:
            if ahead is not None:
                ahead.shutdown(wait=True, cancel_futures=True)
