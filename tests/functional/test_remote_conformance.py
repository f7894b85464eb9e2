"""One suite, two containers: every test runs against the in-memory remote the functional tests use and
against the real ``Storage`` on Azurite. What the functional layer proves with the first holds for the
second only as far as this suite says they behave alike, so each rule the engine relies on is here."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from bucket_sync.errors import BucketSyncError, StorageError, TransientError
from bucket_sync.sas import StaticSasSource
from bucket_sync.sas import ContainerSas
from bucket_sync.storage.container import Storage
from bucket_sync.sync.model import BlobExtras
from bucket_sync.sync.upload import block_id
from tests.support.memory_remote import MemoryRemote

T = 1_700_000_000_123_456_789
LATER = T + 86_400 * 1_000_000_000 + 7


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.integration)])
def remote(request):
    if request.param == "memory":
        yield MemoryRemote()
        return
    azurite = request.getfixturevalue("azurite")
    name = f"conform-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    storage = Storage(StaticSasSource(ContainerSas.from_url(azurite.container_sas_url(name, "racwdl", 3600))),
                      retry_attempts=2)
    try:
        yield storage
    finally:
        storage.close()


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def read(remote, name: str, offset: int = 0, length: int | None = None, etag: str | None = None) -> bytes:
    if length is None:
        length = remote.get(name, name).size - offset
    got = bytearray(length)
    positions = []

    def sink(at: int, piece: bytes) -> None:
        positions.append(at)
        got[at - offset:at - offset + len(piece)] = piece

    remote.stream_range(name, offset, length, etag, sink)
    assert positions == sorted(positions) and (not positions or positions[0] == offset)
    return bytes(got)


def test_a_put_blob_reads_back_with_its_md5_and_mtime(remote):
    remote.put("p/a.txt", b"hello", md5(b"hello"), T)
    blob = remote.get("p/a.txt", "a.txt")
    assert (blob.key, blob.name, blob.size, blob.md5) == ("a.txt", "p/a.txt", 5, md5(b"hello"))
    assert blob.mtime_ns == T and blob.mtime_from_metadata  # nanoseconds survive the metadata round trip
    assert blob.etag
    assert read(remote, "p/a.txt") == b"hello"
    assert remote.get("p/absent", "absent") is None


def test_a_listing_gives_the_keys_under_the_prefix_sorted(remote):
    for name in ["p/b/c.txt", "top.txt", "p/a.txt", "pq/x.txt", "p/b.txt"]:
        remote.put(name, name.encode(), md5(name.encode()), T)
    listed = remote.list("p")
    assert [b.key for b in listed] == ["a.txt", "b.txt", "b/c.txt"]
    assert [b.name for b in listed] == ["p/a.txt", "p/b.txt", "p/b/c.txt"]
    assert all(b.mtime_ns == T and b.mtime_from_metadata and b.md5 == md5(b.name.encode()) for b in listed)
    assert [b.key for b in remote.list("")] == ["p/a.txt", "p/b.txt", "p/b/c.txt", "pq/x.txt", "top.txt"]


def test_staged_blocks_stay_uncommitted_until_a_commit_names_them(remote):
    ids = [block_id("fingerprint", i) for i in range(3)]
    parts = [b"a" * 10, b"b" * 10, b"c" * 5]
    assert remote.uncommitted_blocks("p/big.bin") == {}
    remote.stage_block("p/big.bin", ids[0], parts[0])
    remote.stage_block("p/big.bin", ids[1], parts[1])
    assert remote.uncommitted_blocks("p/big.bin") == {ids[0]: 10, ids[1]: 10}
    assert remote.get("p/big.bin", "big.bin") is None  # nothing to read before the commit
    remote.stage_block("p/big.bin", ids[2], parts[2])
    whole = b"".join(parts)
    remote.commit("p/big.bin", ids, md5(whole), T)
    assert read(remote, "p/big.bin") == whole
    blob = remote.get("p/big.bin", "big.bin")
    assert (blob.size, blob.md5, blob.mtime_ns) == (25, md5(whole), T)
    assert remote.uncommitted_blocks("p/big.bin") == {}


def test_a_commit_naming_a_block_never_staged_fails_and_writes_nothing(remote):
    remote.stage_block("p/x.bin", block_id("f", 0), b"x")
    with pytest.raises(StorageError):
        remote.commit("p/x.bin", [block_id("f", 0), block_id("f", 1)], md5(b"x"), T)
    assert remote.get("p/x.bin", "x.bin") is None


def test_a_ranged_read_pinned_to_an_etag_fails_once_the_blob_is_rewritten(remote):
    data = bytes(range(256)) * 8
    remote.put("p/r.bin", data, md5(data), T)
    etag = remote.get("p/r.bin", "r.bin").etag
    assert read(remote, "p/r.bin", 100, 300, etag) == data[100:400]
    remote.put("p/r.bin", data[::-1], md5(data[::-1]), T)
    with pytest.raises(TransientError):  # retryable: the next attempt lists the new version
        read(remote, "p/r.bin", 100, 300, etag)
    fresh = remote.get("p/r.bin", "r.bin").etag
    assert fresh != etag and read(remote, "p/r.bin", 100, 300, fresh) == data[::-1][100:400]


def test_reading_an_absent_blob_fails_for_good(remote):
    with pytest.raises(BucketSyncError) as info:
        read(remote, "p/none.bin", 0, 10)
    assert not info.value.retryable


def test_deleting_an_absent_blob_succeeds(remote):
    remote.delete("p/never-there.txt")
    remote.put("p/d.txt", b"d", md5(b"d"), T)
    remote.delete("p/d.txt")
    assert remote.get("p/d.txt", "d.txt") is None
    remote.delete("p/d.txt")


def test_set_mtime_changes_only_the_mtime_metadata(remote):
    remote.put("p/m.txt", b"content", md5(b"content"), T, BlobExtras(metadata=(("owner", "survey"),)))
    before = remote.get("p/m.txt", "m.txt")
    remote.set_mtime("p/m.txt", LATER)
    after = remote.get("p/m.txt", "m.txt")
    assert after.mtime_ns == LATER and after.mtime_from_metadata
    assert (after.size, after.md5) == (before.size, before.md5)
    assert after.etag != before.etag  # a metadata write is a write: a read pinned to the old ETag fails
    assert read(remote, "p/m.txt") == b"content"
