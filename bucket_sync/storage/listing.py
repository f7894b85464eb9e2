"""Listing a prefix fast: split it into folders, list the folders in parallel, yield blobs in key order.

Why split: a listing is one chain of pages (the continuation marker is opaque), so a single listing of a big
prefix waits for the service one page at a time. Like rclone and AzCopy, we list folder by folder in
parallel instead: a listing with delimiter '/' returns a level's blobs and its sub-folders; levels are split
until there are enough folders to keep the workers busy, then each folder is listed flat (all its depth in
one chain of pages). A delimiter listing is never wasted: the blobs it returns are the ones we need.

Why the order holds: every name under a folder prefix P sorts after P and before anything after P that
does not start with P. So a level's blobs and folders, sorted by name and with each folder replaced by its
own sorted contents, give exactly the order of one flat listing. Within a folder, pages are handed on one by
one, each sorted here: that is Python's order as long as the service sorts names by their characters'
codes (Azure and Azurite do; UTF-8, UTF-16 and code points agree on names without characters from U+D800
up). From the first page that holds such a name on, the rest of its folder is held and sorted whole (what
every folder cost before); a page that starts before the end of the one handed on is an error, never a
wrong order for the diff.

Memory: pages are handed on as they come, and every request is admitted against one budget of listed blobs
not yet taken by the consumer (list_ahead.py), so memory is about ``blob_budget`` blobs whatever the tree:
many top-level folders, or one flat folder of 200,000 blobs.

Metadata: with a MetadataCache that knows a folder, the folder is listed without metadata and the cache
fills each blob's mtime in, for the blobs whose ETag it remembers (see _chunks).
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter, itemgetter
from typing import Callable, Generator, Iterable, Iterator

from ..errors import BucketSyncError, StorageError
from .list_ahead import END, Budget, Stopped, Stream
from .list_pages import BlobRow, Page, next_marker, parse_page, to_remote_blob
from .metadata_cache import FolderReader, FolderWriter, MetadataCache
from ..sync.model import RemoteBlob

# (prefix, marker, delimiter, with metadata) -> the XML body of one List Blobs page
Fetch = Callable[[str | None, str | None, str | None, bool], bytes]
# blob name -> (ETag, mtime metadata or None) as the service has it now; None when the blob is gone
Head = Callable[[str], "tuple[str, str | None, str | None] | None"]  # (etag, mtime, pieces) as now

# A folder whose cached metadata misses more than this many blobs per page listed so far is listed again
# with metadata; fewer are looked up one by one (a growing capture folder should not cost two listings).
HEADS_PER_PAGE = 8

# About how many listed blobs may wait for the consumer (~1.5 KB each with their page and tuples): four
# full pages, with the consumer's own folder's two beside them: ~30 MB. 40,000 cost ~30 MB more for no speed
# we could measure; on a WAN four pages of 5,000 in flight list faster than the diff takes them.
BLOB_BUDGET = 20_000
FULL_PAGE = 5_000  # the service's page size: what a folder's first page counts for until sizes are known

DELIMITER = "/"
_HIGH = "\ud800"  # names with characters from here on may sort otherwise on the service (see above)

log = logging.getLogger(__name__)


def _plain(names: Iterable[str]) -> bool:
    return all(n.isascii() or max(n) < _HIGH for n in names)


class _Unit:
    """One slot of the key order: a blob already listed, or a folder still to list."""

    __slots__ = ("name", "blob")

    def __init__(self, name: str, blob: RemoteBlob | None = None) -> None:
        self.name = name
        self.blob = blob


class Lister:
    def __init__(self, fetch: Fetch, *, workers: int = 16, max_depth: int = 3, cache: MetadataCache | None = None,
                 head: Head | None = None, parse: Callable[[bytes], Page] = parse_page) -> None:
        self.fetch = fetch
        self.parse = parse  # parse_page, or a ParsePool's (parse_pool.py: a helper process for big listings)
        self.cache = cache  # with it, folders whose blobs it knows are listed without metadata
        self.head = head
        self.workers = max(1, workers)
        self.max_depth = max_depth
        self.window = 2 * self.workers  # folders listed at once, at most (the budget decides how far each gets)
        self.blob_budget = BLOB_BUDGET
        self.first_wave = max(2, self.workers // 4)  # hinted folders listed before the level is known
        self.level_max = FULL_PAGE  # entries of a level gathered to decide whether to split it
        self.budget: Budget | None = None  # of the listing in progress (tests read it)
        self._prefix = ""  # of the listing in progress: blobs are converted in the workers, off the consumer
        self._pool: ThreadPoolExecutor | None = None
        self._order = 0

    @property
    def _budget(self) -> Budget:
        """The budget of the listing in progress: ``blobs`` sets it before any phase runs."""
        assert self.budget is not None, "a listing phase outside Lister.blobs"
        return self.budget

    @property
    def _threads(self) -> ThreadPoolExecutor:
        """The pool of the listing in progress: ``blobs`` starts it before any phase runs."""
        assert self._pool is not None, "a listing phase outside Lister.blobs"
        return self._pool

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
        self.budget = budget = Budget(self.blob_budget, FULL_PAGE)
        # A thread per stream while it lasts: a stream waiting for the budget never holds up the one the
        # consumer needs (at most ``window`` folders, the levels being split, and the head out of turn).
        self._pool = ThreadPoolExecutor(self.window + self.workers + 2, thread_name_prefix="list")
        self._order = 0
        first = self._open(root, DELIMITER)  # ahead of the hinted folders: the diff starts with it
        hinted = sorted({f"{root}{h}/" for h in hints if h and "/" not in h and (top_folder_ok is None or top_folder_ok(h))})
        early: dict[str, Stream] = {}
        if len(hinted) >= self.workers:
            first_wave = self.window if len(hinted) <= self.window else self.first_wave
            early = {name: self._open(name, None) for name in hinted[:first_wave]}
        try:
            units = self._split(root, first, top_folder_ok, set(early))
            yield from self._ordered(units, early)
        finally:
            budget.close()
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- phases ------------------------------------------------------------------------------------
    def _ordered(self, units: Iterator[list[_Unit]], early: dict[str, Stream]) -> Iterator[RemoteBlob]:
        budget = self._budget
        pending = dict(early)  # folder -> its stream, opened ahead of its turn
        ahead: deque[_Unit] = deque()  # units known, not yet handed on
        unopened: deque[str] = deque()  # the folders among them not yet opened, in key order

        def top_up() -> None:
            while unopened and len(pending) < self.window:
                name = unopened.popleft()
                if name not in pending:
                    pending[name] = self._open(name, None)

        try:
            while True:
                while not ahead:
                    chunk = next(units, None)
                    if chunk is None:
                        return
                    ahead.extend(chunk)
                    unopened.extend(u.name for u in chunk if u.blob is None)
                unit = ahead.popleft()
                if unit.blob is not None:
                    yield unit.blob
                    continue
                for name in [n for n in pending if n < unit.name]:  # hinted, but not in the container
                    budget.stop(pending.pop(name))
                if unopened and unopened[0] == unit.name:
                    unopened.popleft()
                top_up()
                stream = pending.pop(unit.name, None) or self._open(unit.name, None)  # its turn came first
                budget.lead(stream)
                blobs: list[RemoteBlob] | None  # let go of once handed on
                for blobs, _ in stream.take(budget):
                    top_up()
                    yield from blobs
                    blobs = None
        finally:
            for stream in pending.values():
                budget.stop(stream)

    def _split(self, root: str, first: Stream, top_ok: Callable[[str], bool] | None,
               keep: set[str]) -> Iterator[list[_Unit]]:
        """The units in key order, a chunk at a time. Folders are replaced by their contents (delimiter
        listings, in parallel) until there are enough folders to list in parallel, or the tree is that deep;
        a level of more than a full page is not split (the root's is handed on as it comes, its folders
        listed flat; a deeper one is listed flat). Folders in ``keep`` are already being listed flat."""
        budget = self._budget
        budget.lead(first)
        units, rest = self._gather(first, root, top_ok)
        if rest is not None:  # a big level: its units as they come
            yield units
            while True:
                budget.lead(first)
                chunk = next(rest, None)
                if chunk is None:
                    return
                yield chunk
        for _depth in range(1, self.max_depth):
            folders = [u for u in units if u.blob is None]
            splittable = [u.name for u in folders if u.name not in keep]
            if not splittable or len(folders) >= self.workers:
                break
            streams = {name: self._open(name, DELIMITER) for name in splittable}
            levels: dict[str, list[_Unit]] = {}
            for name, stream in streams.items():
                budget.lead(stream)
                level, more = self._gather(stream, name, None)
                if more is None:
                    levels[name] = level
                else:  # more than a page: listed flat instead
                    more.close()
                    budget.stop(stream)
            if not levels:
                break
            units = [child for u in units for child in (levels[u.name] if u.blob is None and u.name in levels else (u,))]
        yield units

    def _gather(self, stream: Stream, folder: str, top_ok: Callable[[str], bool] | None,
                ) -> tuple[list[_Unit], Generator[list[_Unit], None, None] | None]:
        """A level's units up to ``level_max`` (a full page); with the rest of its chunks when there are more."""
        chunks = self._level_chunks(stream, folder, top_ok)
        units: list[_Unit] = []
        for chunk in chunks:
            units.extend(chunk)
            if len(units) > self.level_max:
                return units, chunks
        return units, None

    def _level_chunks(self, stream: Stream, folder: str,
                      top_ok: Callable[[str], bool] | None) -> Generator[list[_Unit], None, None]:
        """A level's units, a sorted chunk per page."""
        for blobs, folders in stream.take(self._budget):
            if top_ok is not None:
                folders = [f for f in folders if top_ok(f[len(folder):].rstrip("/"))]
            units = [_Unit(blob.name, blob) for blob in blobs]
            units.extend(_Unit(name) for name in folders if name != folder)
            units.sort(key=attrgetter("name"))
            yield units

    # -- one listing --------------------------------------------------------------------------------
    def _open(self, folder: str, delimiter: str | None) -> Stream:
        self._order += 1
        stream = Stream(folder, delimiter, self._order)
        self._threads.submit(self._produce, stream)
        return stream

    def _produce(self, stream: Stream) -> None:
        chunk: tuple[list[RemoteBlob], list[str], int | None] | None
        try:
            for chunk in self._chunks(stream):
                stream.chunks.put(chunk)
                chunk = None  # the consumer's now: not kept alive here while the next page is awaited
            stream.chunks.put(END)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - raised in the consumer
            stream.chunks.put(exc)
        if stream.stopped:
            self._budget.drain(stream)

    def _chunks(self, stream: Stream) -> Iterator[tuple[list[RemoteBlob], list[str], int | None]]:
        """One listing as chunks in key order: a page's blobs (sorted, metadata filled in) and sub-folders,
        with the blobs it counts for in the budget (None: nothing to release)."""
        budget = self._budget
        folder, delimiter = stream.folder, stream.delimiter
        cost: int | None  # None once listed again: the first request is admitted anew (_pages)
        cost = budget.estimate(stream)
        budget.admit(stream, cost)  # before the cache is read: a folder waiting its turn holds nothing
        reader = self.cache.reader(folder, delimiter) if self.cache is not None else None
        metadata = reader is None or reader.empty  # a folder remembered empty: as cheap with metadata
        writer = self.cache.writer(folder, delimiter) if self.cache is not None and metadata else None
        handed: str | None = None  # the last name handed on: a listing started again skips up to it
        restarted = False
        held: tuple[list[RemoteBlob], list[str]] | None = None  # the rest of a folder whose names may sort otherwise
        heads = 0  # look-ups allowed so far
        first = True

        def rewrite() -> FolderWriter | None:
            """The cache learns something: a new copy of the folder's entries, from what was handed on."""
            if writer is not None or self.cache is None:
                return writer
            fresh = self.cache.writer(folder, delimiter)
            if handed is not None:
                assert reader is not None  # only a listing without metadata learns: the cache knew the folder
                fresh.add(reader.entries(upto=handed))
            return fresh

        # A page's parts are let go of once handed on (None)
        page: Page | None
        items: list[BlobRow] | None
        blobs: list[RemoteBlob] | None
        folders: list[str] | None
        while True:
            again = False
            for page, page_cost in self._pages(stream, metadata, cost):
                cost = page_cost  # what the next request was admitted at: a restart starts from it
                actual = budget.arrived(stream, cost, len(page.blobs) + len(page.folders), first)
                first = False
                items, folders = page.blobs, page.folders
                if handed is not None:  # a prefix may come again on the next page
                    folders = [f for f in folders if f > handed]
                    if restarted:
                        items = [i for i in items if i[0] > handed]
                items.sort(key=itemgetter(0))  # the cache is read in name order
                if not metadata:
                    assert reader is not None  # metadata is left out only for a folder the cache knows
                    heads += HEADS_PER_PAGE
                    items, missing = _fill(items, reader)
                    if missing:
                        found = self._look_up(missing, limit=heads)
                        if found is None:  # too many, or changed since: list again, with metadata
                            budget.release(stream, actual)
                            writer = rewrite() if held is None else None  # a held rest is listed again
                            metadata = again = restarted = True
                            held = None
                            break
                        heads -= len(missing)
                        writer = rewrite()
                        items.extend(found)
                        items.sort(key=itemgetter(0))
                blobs = self._convert(items)
                folders.sort()
                if writer is not None:
                    writer.add((item[0], item[3], item[4], item[6]) for item in items)
                page = items = None  # nothing of a page handed on stays alive here (see _produce)
                if held is None and _plain(b.name for b in blobs) and _plain(folders):
                    if not blobs and not folders:
                        yield blobs, folders, actual
                        continue
                    low = min(blobs[0].name if blobs else folders[0], folders[0] if folders else blobs[0].name)
                    if handed is not None and low <= handed:
                        raise StorageError(f"storage listed {folder or 'the container'} out of order ({low!r} after "
                                           f"{handed!r})", hint="check that the URL is an Azure Blob Storage container")
                    last = max(blobs[-1].name if blobs else folders[-1], folders[-1] if folders else blobs[-1].name)
                    yield blobs, folders, actual
                    handed, blobs, folders = last, None, None
                else:
                    held = held or ([], [])
                    held[0].extend(blobs)
                    held[1].extend(folders)
                    budget.release(stream, actual)  # held outside the budget: a rare folder's whole rest
            if not again:
                break
            cost = None
        if held is not None:
            held[0].sort(key=attrgetter("name"))
            held[1].sort()
            yield held[0], held[1], None
        if writer is not None:
            writer.commit()

    def _pages(self, stream: Stream, metadata: bool, admitted: int | None) -> Iterator[tuple[Page, int]]:
        """Every page of one listing, each with what it was admitted for; the next page is requested
        before this one is parsed. ``admitted``: the first request's cost, already admitted."""
        budget = self._budget
        starts = stream.folder or None

        def get(marker: str | None, cost: int | None = None) -> tuple[bytes, int]:
            if cost is None:
                cost = budget.estimate(stream)
                budget.admit(stream, cost)
            try:
                return self.fetch(starts, marker, stream.delimiter, metadata), cost
            except BaseException:
                budget.release(stream, cost)
                raise

        def discard(future: Future[tuple[bytes, int]] | None) -> None:
            if future is not None and not future.cancel():
                future.add_done_callback(lambda f: f.exception() is None and budget.release(stream, f.result()[1]))  # type: ignore[func-returns-value]  # `and` as a conditional call

        body, cost = get(None, admitted)
        ahead: ThreadPoolExecutor | None = None
        pending: Future[tuple[bytes, int]] | None = None
        page: Page | None  # let go of once handed on
        try:
            while True:
                marker = next_marker(body)
                if marker:
                    ahead = ahead or ThreadPoolExecutor(1, thread_name_prefix="list-ahead")
                    pending = ahead.submit(get, marker)
                page = self.parse(body)
                body = b""
                if page.next_marker != marker:  # the quick look disagreed with the parser: trust the parser
                    discard(pending)
                    pending, marker = None, page.next_marker
                yield page, cost
                page = None
                if not marker:
                    return
                if pending is not None:
                    body, cost = pending.result()
                    pending = None
                else:
                    body, cost = get(marker)
        finally:
            discard(pending)
            if ahead is not None:
                ahead.shutdown(wait=False, cancel_futures=True)

    # -- blobs ---------------------------------------------------------------------------------------
    def _convert(self, items: list[BlobRow]) -> list[RemoteBlob]:
        blobs = []
        for item in items:
            blob = to_remote_blob(self._prefix, item)
            if blob is not None:
                blobs.append(blob)
        return blobs

    def _look_up(self, missing: list[BlobRow], *, limit: int) -> list[BlobRow] | None:
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
            found.append(item[:4] + (now[1], item[5], now[2]))
        return found


def _fill(items: list[BlobRow], known: FolderReader) -> tuple[list[BlobRow], list[BlobRow]]:
    """Items with the cached mtime filled in where the ETag matches, and those the cache cannot vouch for."""
    filled, missing = [], []
    get = known.get
    for item in items:
        hit = get(item[0])
        if hit is not None and hit[0] == item[3]:
            filled.append(item[:4] + (hit[1], item[5], hit[2]))
        else:
            missing.append(item)
    return filled, missing
