"""The page-parsing helper process changes nothing a listing returns: the same pages, the same errors, and
no helper at all for small listings or where it cannot run."""

from __future__ import annotations

import os
import time

import pytest

from bucket_sync.errors import StorageError
from bucket_sync.storage.list_pages import parse_page
from bucket_sync.storage.parse_pool import ParsePool
from devtools.list_stub import Layout, list_page

LAYOUT = Layout("tree", 20_000)
PAGES = [list_page(LAYOUT, "c", "http://h/devstoreaccount1", f"t{t:03d}/", "", m, 5000, True)
         for t in range(2) for m in ("", "2!5000" if t == 0 else "2!15000")]


def same(a, b) -> bool:
    return (a.blobs, a.folders, a.next_marker) == (b.blobs, b.folders, b.next_marker)


@pytest.mark.skipif(os.name != "posix", reason="the helper runs on POSIX only")
def test_pages_read_by_the_helper_are_the_pages_read_here_and_errors_are_the_same():
    pool = ParsePool(after_pages=1, enabled=True)
    try:
        deadline = time.monotonic() + 30
        while pool._helper() is None and time.monotonic() < deadline:  # started, then ready
            time.sleep(0.05)
        assert pool._helper() is not None, "the helper process never became ready"
        for body in PAGES:
            assert same(pool.parse(body), parse_page(body))
        with pytest.raises(StorageError) as helped:
            pool.parse(b"<EnumerationResults><Blobs><Blob>")
        with pytest.raises(StorageError) as here:
            parse_page(b"<EnumerationResults><Blobs><Blob>")
        assert helped.value.message == here.value.message
        assert pool._helper() is not None  # a page it cannot read does not drop the helper
    finally:
        pool.close()
    assert same(pool.parse(PAGES[0]), parse_page(PAGES[0]))  # closed: in-process again


def test_small_listings_and_disabled_pools_never_start_a_process():
    for pool in (ParsePool(after_pages=100, enabled=True), ParsePool(enabled=False)):
        for body in PAGES:
            assert same(pool.parse(body), parse_page(body))
        assert pool._pool is None
        pool.close()
