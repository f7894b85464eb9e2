"""The metadata cache (storage/metadata_cache.py) through the real command: later runs list without metadata,
and still see every write another tool makes, to content or to metadata alone, in either direction."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.mirror_trees import local_tree, put_blob, remote_tree, set_mtime

pytestmark = pytest.mark.integration

BASE_NS = 1_700_000_000_123_456_789


def cache_files(cli):
    folder = cli.home / ".cache" / "bucket-sync" / "listing-cache"  # the cache folder, not the state folder
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def test_later_runs_see_writes_made_behind_the_cache(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {f"d{i}/f{j}.txt": f"{i}-{j}" for i in range(3) for j in range(3)})
    for n, path in enumerate(sorted(src.rglob("*.txt"))):
        set_mtime(path, BASE_NS + n)
    container = bucket_container(listing_itwin)
    remote = f"itwin://{listing_itwin}/site"
    assert cli("mirror", src, remote).returncode == 0
    for _ in range(2):  # the second no-op run lists from a complete cache
        noop = cli("mirror", src, remote, "--json")
        assert noop.returncode == 0 and noop.summary["skipped"] == 9 and noop.summary["uploaded"] == 0, noop
    files = cache_files(cli)
    assert files and all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)
    assert oct(files[0].parent.stat().st_mode & 0o777) == "0o700"

    # Behind the cache's back, another tool rewrites two blobs: one with the same bytes and another mtime
    # (only the metadata tells), one with other bytes of the same size. Cached metadata of the old
    # versions must not hide either: the first gets its mtime fixed, the second is uploaded again.
    local = src / "d1" / "f1.txt"
    put_blob(container, "site/d1/f1.txt", local.read_bytes(), BASE_NS + 999_000_000_000)
    put_blob(container, "site/d2/f0.txt", b"X-Y", BASE_NS + 888_000_000_000)
    run = cli("mirror", src, remote, "--json")
    assert run.returncode == 0, run
    assert run.summary["uploaded"] == 1 and run.summary["skipped"] == 8, run
    assert [e["key"] for e in run.transfers(status="ok")] == ["site/d2/f0.txt"]
    remote_now = remote_tree(container, "site")
    assert remote_now == local_tree(src)  # content and mtime metadata exact again

    # Download direction: a remote write behind the cache reaches the local copy.
    dst = tmp_path / "dst"
    assert cli("mirror", remote, dst).returncode == 0
    assert cli("mirror", remote, dst).returncode == 0
    put_blob(container, "site/d0/f2.txt", b"new", BASE_NS + 5_000_000_000)
    run = cli("mirror", remote, dst, "--json")
    assert run.returncode == 0 and run.summary["downloaded"] == 1, run
    assert (dst / "d0" / "f2.txt").read_bytes() == b"new"
    assert (dst / "d0" / "f2.txt").stat().st_mtime_ns == BASE_NS + 5_000_000_000
    assert local_tree(dst) == remote_tree(container, "site")


def test_a_damaged_cache_costs_nothing_but_time(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a/1.txt": "one", "b/2.txt": "two"})
    remote = f"itwin://{listing_itwin}/p"
    assert cli("mirror", src, remote).returncode == 0
    assert cli("mirror", src, remote).returncode == 0
    for n, path in enumerate(cache_files(cli)):
        if n % 2:
            path.write_text("{not json")
        else:
            data = json.loads(path.read_text())
            data["entries"] = [[name, "0xWRONG", "1999-01-01T00:00:00Z"] for name, *_ in data["entries"]]
            path.write_text(json.dumps(data))
    os.chmod(cache_files(cli)[0], 0o000)  # unreadable too (tests run as root: best effort)
    run = cli("mirror", src, remote, "--json")
    assert run.returncode == 0 and run.summary["skipped"] == 2 and run.summary["uploaded"] == 0, run
    assert remote_tree(bucket_container(listing_itwin), "p") == local_tree(src)


def test_an_upload_mirror_with_a_sas_that_cannot_read(cli, azurite, make_files, tmp_path):
    """An upload mirror needs list, write and delete, not read: looking a blob up (HEAD) is refused, and the
    folder is listed again with metadata instead."""
    import uuid

    name = f"noread-{uuid.uuid4().hex[:10]}"
    azurite.create_container(name)
    container = azurite.container_client(name)
    url = azurite.container_sas_url(name, permission="cwdl")
    src = make_files(tmp_path / "src", {"d/a.txt": "one", "d/b.txt": "two"})
    for _ in range(3):
        assert cli("mirror", src, url).returncode == 0
    put_blob(container, "d/a.txt", b"ONE", BASE_NS)  # another tool, behind the cache
    run = cli("mirror", src, url, "--json")
    assert run.returncode == 0 and run.summary["uploaded"] == 1, run
    assert container.download_blob("d/a.txt").readall() == b"one"
