"""The folder-parallel listing yields exactly what one flat listing would, in key order.

A fake List Blobs service (XML pages honouring prefix, delimiter, marker and a page size) stands in for
storage; the integration tests run the same code against Azurite.
"""

from __future__ import annotations

import threading
import time
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucket_sync.storage.list_pages import next_marker, parse_page
from bucket_sync.storage.listing import Lister
from bucket_sync.storage.metadata_cache import MetadataCache


class FakeService:
    """Blob names in, List Blobs XML out; counts requests and how many run at once."""

    def __init__(self, names, *, page_size=3, lie_about_marker=False, delay=0.0, collation=None):
        self.collation = collation or (lambda n: n)  # the service's order of names (default: Python's)
        self.names = sorted(names, key=self.collation)
        self.page_size = page_size
        self.lie_about_marker = lie_about_marker
        self.delay = delay  # seconds per request, so that parallel requests overlap
        self.requests: list[tuple] = []
        self.completed: list[tuple] = []
        self.done_before: dict[tuple, list[tuple]] = {}  # request -> requests already answered when it started
        self.with_metadata: list[bool] = []
        self.versions: dict[str, int] = {}  # name -> version: bumps the ETag and the mtime, like a write
        self.pieces: dict[str, str] = {}  # name -> its sha256pieces metadata, for the blobs that have one
        self.heads: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def head(self, name):
        self.heads.append(name)
        if name not in self.names:
            return None
        return self._etag(name), self._mtime(name), self.pieces.get(name)

    def _etag(self, name):
        return f"0x{len(name)}-{self.versions.get(name, 0)}"

    def _mtime(self, name):
        return f"2026-11-23T10:00:0{self.versions.get(name, 0) % 10}.000000001Z"

    def fetch(self, prefix, marker, delimiter, metadata=True):
        with self._lock:
            self.requests.append((prefix, marker, delimiter))
            self.done_before[(prefix, marker, delimiter)] = list(self.completed)
            self.with_metadata.append(metadata)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return self._page(prefix or "", marker, delimiter, metadata)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.completed.append((prefix, marker, delimiter))
                self.completed.append((prefix, marker, delimiter))

    def _page(self, prefix, marker, delimiter, metadata=True):
        entries = []  # (sort name, is_folder)
        seen = set()
        for name in self.names:
            if not name.startswith(prefix):
                continue
            cut = name.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                folder = name[:cut + 1]
                if folder not in seen:
                    seen.add(folder)
                    entries.append((folder, True))
            else:
                entries.append((name, False))
        if marker:
            entries = [e for e in entries if self.collation(e[0]) > self.collation(marker)]
        page, rest = entries[:self.page_size], entries[self.page_size:]
        items = "".join(
            f"<BlobPrefix><Name>{escape(n)}</Name></BlobPrefix>" if folder else
            f"<Blob><Name>{escape(n)}</Name><Properties><Last-Modified>Mon, 23 Nov 2026 10:00:00 GMT</Last-Modified>"
            f"<Etag>{self._etag(n)}</Etag><Content-Length>{len(n)}</Content-Length></Properties>"
            + (f"<Metadata><mtime>{self._mtime(n)}</mtime>"
               + (f"<sha256pieces>{self.pieces[n]}</sha256pieces>" if n in self.pieces else "")
               + "</Metadata>" if metadata else "") + "</Blob>"
            for n, folder in page)
        nxt = escape(page[-1][0]) if rest else ""
        quick = "<NextMarker>bogus</NextMarker>" if self.lie_about_marker and rest else ""
        body = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Prefix>{escape(prefix)}</Prefix>'
                f"<Blobs>{items}</Blobs><NextMarker>{nxt}</NextMarker>{quick}</EnumerationResults>")
        return body.encode()


def listed(service, prefix="", **kw):
    return [b.key for b in Lister(service.fetch, **kw).blobs(prefix)]


def expected(names, prefix=""):
    root = f"{prefix}/" if prefix else ""
    return sorted(n[len(root):] for n in names if n.startswith(root) and not n.endswith("/") and n != root)


TRICKY = ["a", "a.txt", "a-b/c", "a/b", "a/b/c", "a/b.txt", "a//x", "a0", "b/", "b/c", "c/d/e/f/g", "z",
          "é/1", "\U0001f600/x", "ab/c"]


def test_tricky_names_come_out_in_key_order():
    assert listed(FakeService(TRICKY), workers=2) == expected(TRICKY)


def test_a_prefix_lists_only_its_folder():
    names = TRICKY + ["pre/x/1", "pre/x/2", "pre/y", "pre.txt", "pre-1/z", "prefix/q"]
    assert listed(FakeService(names), "pre", workers=3) == ["x/1", "x/2", "y"]


def test_levels_split_until_workers_are_busy_then_folders_list_flat():
    names = [f"top/d{i}/f{j}" for i in range(5) for j in range(4)] + ["top.txt"]
    service = FakeService(names, page_size=2, delay=0.02)
    assert listed(service, workers=4) == expected(names)
    delimited = {r[0] for r in service.requests if r[2] == "/"}
    flat = {r[0] for r in service.requests if r[2] is None}
    # root -> one folder (top/): split again -> five folders >= 4 workers: each listed flat.
    assert delimited == {None, "top/"}
    assert flat == {f"top/d{i}/" for i in range(5)}
    assert service.most_in_flight > 1


def test_splitting_stops_at_the_depth_limit():
    names = [f"a/b/c/d/e/{i}" for i in range(3)]
    service = FakeService(names)
    assert listed(service, workers=8, max_depth=2) == expected(names)
    assert {r[0] for r in service.requests if r[2] is None} == {"a/b/"}


def test_a_flat_folder_is_one_listing_of_many_pages():
    names = [f"f{i:03d}" for i in range(50)]
    service = FakeService(names, page_size=7)
    assert listed(service) == expected(names)
    assert len(service.requests) == 8  # ceil(50 / 7): no folder to split into, no request wasted


def test_a_wrong_quick_marker_falls_back_to_the_parsed_one():
    names = [f"f{i:03d}" for i in range(20)] + [f"d/{i}" for i in range(20)]
    assert listed(FakeService(names, page_size=4, lie_about_marker=True), workers=2) == expected(names)


def test_an_empty_container_and_a_missing_prefix_list_nothing():
    assert listed(FakeService([])) == []
    assert listed(FakeService(["a/b"]), "nothing") == []


def test_a_failing_request_reaches_the_consumer():
    service = FakeService([f"d{i}/f" for i in range(10)])
    real = service.fetch

    def fetch(prefix, marker, delimiter, metadata):
        if prefix == "d7/":
            raise RuntimeError("boom")
        return real(prefix, marker, delimiter, metadata)

    with pytest.raises(RuntimeError, match="boom"):
        list(Lister(fetch, workers=2).blobs(""))


def test_folders_are_listed_at_most_a_window_ahead_of_the_consumer():
    names = [f"d{i:02d}/f" for i in range(40)]
    service = FakeService(names)
    it = Lister(service.fetch, workers=2).blobs("")
    next(it)
    flat = [r for r in service.requests if r[2] is None]
    assert len(flat) <= 2 * 2 + 1  # the window (2 x workers) plus the folder being consumed
    assert [b.key for b in it] == expected(names)[1:]


def test_metadata_and_sizes_survive():
    blob = next(Lister(FakeService(["x/y"]).fetch).blobs("x"))
    assert (blob.key, blob.name, blob.size, blob.etag) == ("y", "x/y", 3, "0x3-0")
    assert blob.mtime_from_metadata and blob.mtime_ns % 1_000_000_000 == 1


def test_page_parser_reads_folders_and_encoded_names():
    body = (b'<EnumerationResults><Blobs><BlobPrefix><Name Encoded="true">a%EF%BF%BEb/</Name></BlobPrefix>'
            b"<BlobPrefix><Name>c&amp;d/</Name></BlobPrefix></Blobs><NextMarker /></EnumerationResults>")
    page = parse_page(body)
    assert page.folders == ["a\ufffeb/", "c&d/"] and page.blobs == [] and page.next_marker is None
    assert next_marker(body) is None


names_strategy = st.lists(
    st.lists(st.sampled_from(["a", "b", "a.b", "a-", "é", "0", "\U0001f600", ""]), min_size=1, max_size=4)
    .map("/".join).filter(lambda n: n and not n.startswith("/")),
    max_size=40, unique=True)


@settings(max_examples=200, deadline=None)
@given(names=names_strategy, page_size=st.integers(1, 5), workers=st.integers(1, 4), depth=st.integers(1, 3))
def test_any_tree_lists_like_one_sorted_flat_listing(names, page_size, workers, depth):
    service = FakeService(names, page_size=page_size)
    assert listed(service, workers=workers, max_depth=depth) == expected(names)


def test_hinted_folders_are_listed_before_the_level_that_names_them():
    names = [f"p/d{i}/f{j}" for i in range(6) for j in range(2)] + ["p/top.txt"]
    # Each answer takes 50 ms: long enough that, even on a loaded machine, the level's own listing is
    # still out when the free workers have taken their hinted folders (10 ms flaked under load).
    service = FakeService(names, delay=0.05)
    hints = [f"d{i}" for i in range(6)] + ["not-there", "nested/no"]
    keys = [b.key for b in Lister(service.fetch, workers=4).blobs("p", hints=hints)]
    assert keys == expected(names, "p")
    flat = [r[0] for r in service.requests if r[2] is None]
    # Every hinted folder (the missing one too) is asked for without waiting for the level's answer: the
    # workers the level's own listing leaves free take them at once.
    assert set(flat[:7]) == {f"p/d{i}/" for i in range(6)} | {"p/not-there/"}
    level = ("p/", None, "/")
    hinted_during_level = [r for r in service.requests if r[2] is None and level not in service.done_before[r]]
    assert len(hinted_during_level) >= 3  # the other three workers took hinted folders at once


def test_too_few_hints_change_nothing():
    names = [f"d{i}/f" for i in range(3)]
    service = FakeService(names)
    assert [b.key for b in Lister(service.fetch, workers=4).blobs("", hints=["d0", "d1"])] == expected(names)
    assert service.requests[0] == (None, None, "/")


def test_hints_beyond_the_window_and_unhinted_folders_still_list_once_each():
    names = [f"h{i:02d}/f" for i in range(12)] + [f"a{i}/f" for i in range(5)] + ["z/f"]
    service = FakeService(names, delay=0.002)
    keys = [b.key for b in Lister(service.fetch, workers=2).blobs("", hints=[f"h{i:02d}" for i in range(12)])]
    assert keys == expected(names)
    flat = [r[0] for r in service.requests if r[2] is None]
    assert sorted(flat) == sorted(set(flat)) and set(flat) == {n.split("/")[0] + "/" for n in names}


def utf16(name):
    return name.encode("utf-16-be")  # Azurite's order (JavaScript strings): astral characters before U+E000


@settings(max_examples=100, deadline=None)
@given(names=st.lists(
    st.lists(st.sampled_from(["a", "b", "é", "\ue000", "\U0001f600", "\uffee", "0", ""]), min_size=1, max_size=4)
    .map("/".join).filter(lambda n: n and not n.startswith("/")), max_size=40, unique=True),
    page_size=st.integers(1, 5), workers=st.integers(1, 4), budget=st.integers(1, 12), utf16_service=st.booleans())
def test_page_by_page_hand_off_keeps_the_order_whatever_the_budget_and_collation(names, page_size, workers, budget,
                                                                               utf16_service):
    """Pages handed on one at a time, with a budget small enough that folders wait their turn: still one
    sorted flat listing, also from a service that sorts by UTF-16 code units (Azurite), where names with
    characters from U+E000 up sort otherwise than in Python."""
    service = FakeService(names, page_size=page_size, collation=utf16 if utf16_service else None)
    lister = Lister(service.fetch, workers=workers)
    lister.blob_budget = budget
    assert [b.key for b in lister.blobs("")] == expected(names)


class PagedService:
    """A fake List Blobs service over ``folders`` x ``per_folder`` blobs (or one flat folder), pages built on
    the fly; counts pages fetched, so a test can see how far the listing ran ahead of its consumer."""

    def __init__(self, folders, per_folder, page_size):
        self.folders, self.per_folder, self.page_size = folders, per_folder, page_size
        self.fetched = 0
        self._lock = threading.Lock()

    def name(self, i):
        return f"f{i:07d}" if not self.folders else f"d{i // self.per_folder:03d}/f{i:07d}"

    def fetch(self, prefix, marker, delimiter, metadata=True):
        total = max(1, self.folders) * self.per_folder
        if delimiter and self.folders and not prefix:  # the root level: just the folders
            entries = [(f"d{k:03d}/", True) for k in range(self.folders)]
            start = 0
        else:
            lo = 0 if not prefix else int(prefix[1:4]) * self.per_folder
            hi = total if not prefix else lo + self.per_folder
            start = int(marker) if marker else lo
            entries = [(self.name(i), False) for i in range(start, min(hi, start + self.page_size))]
            rest = start + self.page_size < hi
        if entries and entries[0][1]:
            rest = False
        with self._lock:
            self.fetched += 1
        items = "".join(f"<BlobPrefix><Name>{n}</Name></BlobPrefix>" if folder else
                        f"<Blob><Name>{n}</Name><Properties><Last-Modified>Mon, 23 Nov 2026 10:00:00 GMT</Last-Modified>"
                        f"<Etag>0x1</Etag><Content-Length>1</Content-Length></Properties></Blob>" for n, folder in entries)
        nxt = str(start + self.page_size) if rest else ""
        return (f"<EnumerationResults><Blobs>{items}</Blobs><NextMarker>{nxt}</NextMarker></EnumerationResults>").encode()


def most_pages_ahead(service, *, workers=4, budget=200):
    """The most pages fetched and not yet taken by a slow consumer, over the whole listing."""
    lister = Lister(service.fetch, workers=workers)
    lister.blob_budget = budget
    lister.level_max = service.page_size  # a level of more than a page is not split (one page: 5,000)
    most = taken = 0
    for i, _ in enumerate(lister.blobs("")):
        if i % service.page_size == 0:
            time.sleep(0.001)  # the diff is slower than the listing: the listing waits, it does not pile up
            taken = i // service.page_size
            most = max(most, service.fetched - taken)
    assert i + 1 == max(1, service.folders) * service.per_folder
    return most, lister.budget.most_pages


@pytest.mark.parametrize("shape", [(0, 1000), (0, 5000), (8, 500), (40, 500)])
def test_pages_held_do_not_grow_with_the_folders(shape):
    """A flat folder of 1,000 or 5,000 blobs, 8 or 40 folders of 500: with pages of 50 and a budget of
    four pages, the listing holds a handful of pages ahead of the consumer, the same for every size."""
    folders, per_folder = shape
    ahead, outstanding = most_pages_ahead(PagedService(folders, per_folder, page_size=50))
    # 200 blobs of budget are 4 pages, plus the consumer's own folder (2) and the root level (1).
    assert outstanding <= 8
    assert ahead <= 10  # the same, seen from the service (a page or two in transit)


def test_a_page_that_sorts_before_the_one_handed_on_is_an_error():
    from bucket_sync.errors import StorageError

    # A service that ignores case: "B1" comes after "a2", where Python puts it first.
    service = FakeService(["a2", "B1", "c3"], page_size=1, collation=str.lower)
    with pytest.raises(StorageError, match="out of order"):
        listed(service, workers=1)


# -- the metadata cache ----------------------------------------------------------------------------------

def reset(service):
    service.requests.clear()
    service.with_metadata.clear()
    service.heads.clear()


def folders_listed_with_metadata(service):
    """Requests with metadata, leaving out the container's root level (remembered empty: listed in full)."""
    return [r[0] for r, metadata in zip(service.requests, service.with_metadata) if metadata and r[0]]


def cached_listing(service, cache, prefix="", workers=4):
    return [(b.key, b.etag, b.mtime_ns, b.mtime_from_metadata)
            for b in Lister(service.fetch, workers=workers, cache=cache, head=service.head).blobs(prefix)]


def test_a_known_container_is_listed_without_metadata_and_gets_the_same_answer(tmp_path):
    names = [f"d{i}/f{j}" for i in range(5) for j in range(3)] + ["top"]
    service = FakeService(names)
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    first = cached_listing(service, cache)
    assert all(service.with_metadata) and all(entry[3] for entry in first)
    reset(service)
    assert cached_listing(service, cache) == first
    assert service.requests and folders_listed_with_metadata(service) == [] and service.heads == []
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in (tmp_path / "cache").iterdir())


def test_the_piece_digest_comes_through_a_listing_the_cache_and_a_look_up_alike(tmp_path):
    # Downloads trust it only as the blob's metadata says it now: a listing without metadata must give
    # the remembered one, and a blob looked up (rewritten since) its new one.
    names = [f"d{i}/f{j}" for i in range(3) for j in range(3)]
    service = FakeService(names)
    service.pieces = {"d0/f1": "v1:8:" + "a" * 32 + ":" + "b" * 64, "d2/f2": "v1:8:" + "c" * 32 + ":" + "d" * 64}
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")

    def pieces():
        return {b.key: b.pieces for b in Lister(service.fetch, workers=2, cache=cache, head=service.head).blobs("")
                if b.pieces}

    assert pieces() == service.pieces and all(service.with_metadata)
    reset(service)
    assert pieces() == service.pieces and folders_listed_with_metadata(service) == []
    service.versions["d2/f2"] = 1
    service.pieces["d2/f2"] = "v1:8:" + "e" * 32 + ":" + "f" * 64
    reset(service)
    assert pieces() == service.pieces and service.heads == ["d2/f2"]


def test_a_blob_written_since_is_looked_up_and_a_busy_folder_listed_again(tmp_path):
    names = [f"d{i}/f{j}" for i in range(5) for j in range(20)]
    service = FakeService(names, page_size=50)
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    cached_listing(service, cache)
    # One blob rewritten (new ETag and mtime) and one added: looked up one by one.
    service.versions["d1/f3"] = 1
    service.names = sorted(service.names + ["d2/new"])
    reset(service)
    listed = {key: (etag, mtime) for key, etag, mtime, _ in cached_listing(service, cache)}
    assert sorted(service.heads) == ["d1/f3", "d2/new"] and folders_listed_with_metadata(service) == []
    assert listed["d1/f3"] == ("0x5-1", 1_795_428_001_000_000_001)
    # Many rewritten in one folder: listed again with metadata instead of one lookup each.
    for j in range(20):
        service.versions[f"d3/f{j}"] = 2
    reset(service)
    listed = {key: (etag, mtime) for key, etag, mtime, _ in cached_listing(service, cache)}
    assert service.heads == [] and folders_listed_with_metadata(service) == ["d3/"]
    assert listed["d3/f7"] == ("0x5-2", 1_795_428_002_000_000_001)
    # And the cache learnt them: the next run needs neither.
    reset(service)
    cached_listing(service, cache)
    assert service.heads == [] and folders_listed_with_metadata(service) == []


def test_a_blob_that_changes_between_listing_and_lookup_sends_its_folder_back_to_a_full_listing(tmp_path):
    service = FakeService(["d/a", "d/b"])
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    cached_listing(service, cache)
    service.versions["d/a"] = 1
    real_head = service.head

    def racing_head(name):
        service.versions[name] = 5  # written again just after the listing saw version 1
        return real_head(name)

    service.head = racing_head
    reset(service)
    listed = {key: etag for key, etag, _, _ in cached_listing(service, cache)}
    assert folders_listed_with_metadata(service) == ["d/"] and listed["d/a"] == "0x3-5"


def test_a_damaged_or_foreign_cache_file_is_a_miss(tmp_path):
    service = FakeService(["a/1", "b/2"])
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    first = cached_listing(service, cache)
    for path in (tmp_path / "cache").iterdir():
        path.write_text('{"v": 1, "container": "https://acct/cont", "entries": [[1, 2]]}')
    reset(service)
    assert cached_listing(service, cache) == first and all(service.with_metadata)
    other = MetadataCache(tmp_path / "cache", "https://acct/other")  # same folders, another container
    reset(service)
    assert cached_listing(service, other) == first and all(service.with_metadata)


def test_cache_files_long_unwritten_are_pruned(tmp_path):
    import os
    import time as clock

    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    cache.save("old/", None, [("old/a", "0x1", None, None)])
    cache.save("new/", None, [("new/a", "0x2", None, None)])
    old = cache._path("old/", None)  # noqa: SLF001
    month_ago = clock.time() - 31 * 24 * 3600
    os.utime(old, (month_ago, month_ago))
    MetadataCache(tmp_path / "cache", "https://acct/cont").save("other/", "/", [])
    assert not old.exists() and cache.load("new/", None) == {"new/a": ("0x2", None, None)}


def test_a_lookup_the_sas_refuses_falls_back_to_a_listing_with_metadata(tmp_path):
    from bucket_sync.errors import PermissionDeniedError

    service = FakeService(["d/a", "d/b"])
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    cached_listing(service, cache)
    service.versions["d/a"] = 1

    def refused(name):
        raise PermissionDeniedError("read 'd/a': the SAS does not grant the read (r) permission")

    service.head = refused
    reset(service)
    listed = {key: (etag, mtime) for key, etag, mtime, _ in cached_listing(service, cache)}
    assert listed["d/a"] == ("0x3-1", 1_795_428_001_000_000_001) and folders_listed_with_metadata(service) == ["d/"]


def test_a_folder_listed_again_with_metadata_mid_way_hands_on_each_blob_once(tmp_path):
    names = [f"d/f{j:03d}" for j in range(100)]
    service = FakeService(names, page_size=20)
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    first = cached_listing(service, cache, workers=1)
    for j in range(20, 100):  # rewritten since, after the first page: too many to look up one by one
        service.versions[f"d/f{j:03d}"] = 3
    reset(service)
    again = cached_listing(service, cache, workers=1)
    assert [k for k, *_ in again] == [k for k, *_ in first] == expected(names)
    etags = {k: e for k, e, _, _ in again}
    assert etags["d/f010"] == "0x6-0" and etags["d/f025"] == "0x6-3"
    assert folders_listed_with_metadata(service) == ["d/"] * 5  # again from the start, all five pages
    reset(service)
    assert cached_listing(service, cache, workers=1) == again and folders_listed_with_metadata(service) == []


def test_a_big_folder_is_remembered_in_parts_read_as_the_listing_reaches_them(tmp_path, monkeypatch):
    from bucket_sync.storage import metadata_cache

    monkeypatch.setattr(metadata_cache, "PART", 10)
    names = [f"d/f{j:03d}" for j in range(95)]
    service = FakeService(names, page_size=10)
    cache = MetadataCache(tmp_path / "cache", "https://acct/cont")
    first = cached_listing(service, cache, workers=1)
    files = sorted((tmp_path / "cache").iterdir())
    assert len(files) >= 9  # the folder's own file (root level, d/) and its parts
    service.versions["d/f093"] = 1  # in the last part
    reset(service)
    again = cached_listing(service, cache, workers=1)
    assert [k for k, *_ in again] == [k for k, *_ in first] and folders_listed_with_metadata(service) == []
    assert service.heads == ["d/f093"]
    assert len(sorted((tmp_path / "cache").iterdir())) == len(files)  # rewritten: the old parts removed
    reset(service)
    assert cached_listing(service, cache, workers=1) == again
    assert service.heads == [] and folders_listed_with_metadata(service) == []
