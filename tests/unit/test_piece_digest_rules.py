"""The piece digest's rules (bucket_sync/sync/piece_digest.py): its text, when it is trusted, and the hash
of a range fed in network-sized pieces of any size."""

from __future__ import annotations

import hashlib
import os

import pytest

from bucket_sync.errors import BucketSyncError
from bucket_sync.sync.piece_digest import RangeHasher, digest_of, parse, root_of, usable

MD5 = hashlib.md5(b"content").digest()


def test_its_text_round_trips_and_anything_else_is_no_digest():
    digest = digest_of(8 * 1024 * 1024, MD5, [hashlib.sha256(b"a").digest()])
    assert parse(digest.text()) == digest
    for text in (None, "", "v2:8:" + "0" * 32 + ":" + "0" * 64, "v1:0:" + "0" * 32 + ":" + "0" * 64,
                 "v1:8:" + "0" * 31 + ":" + "0" * 64, "v1:8:" + "0" * 32 + ":" + "G" * 64, digest.text() + ":x"):
        assert parse(text) is None, text


def test_it_is_trusted_only_next_to_the_content_md5_it_was_made_with():
    text = digest_of(1024, MD5, [b"x" * 32]).text()
    assert usable(text, MD5) is not None
    assert usable(text, hashlib.md5(b"other").digest()) is None  # rewritten by a tool that kept our metadata
    assert usable(text, None) is None
    assert usable("garbage", MD5) is None


@pytest.mark.parametrize("reads", [1, 7, 1000, 4096, 5000])
def test_ranges_fed_in_reads_of_any_size_give_the_digest_of_the_whole(reads):
    piece, data = 4096, os.urandom(10 * 4096 + 123)
    expected = root_of([hashlib.sha256(data[i:i + piece]).digest() for i in range(0, len(data), piece)])
    into = [b""] * 11
    for start in range(0, len(data), 3 * piece):  # ranges of three pieces, the last one short
        end = min(start + 3 * piece, len(data))
        hasher = RangeHasher(piece, into, start // piece)
        for at in range(start, end, reads):
            hasher.update(at, data[at:min(at + reads, end)])
        hasher.finish(end)
    assert all(into) and root_of(into) == expected


def test_a_gap_or_a_range_cut_short_is_an_error_never_a_digest():
    hasher = RangeHasher(4096, [b""] * 2, 0)
    hasher.update(0, b"x" * 100)
    with pytest.raises(BucketSyncError, match="internal error"):
        hasher.update(200, b"x" * 100)
    with pytest.raises(BucketSyncError, match="internal error"):
        hasher.finish(8192)
