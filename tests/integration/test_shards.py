"""--shard K/N through the real command: N shards run in parallel converge to exactly what one unsharded
run gives, no key is transferred or deleted by two shards, a delete in one shard never touches another
shard's keys, and a sharded no-op is a no-op; --shard-by folder; locks per pair and shard."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import pytest

from bucket_sync.sync.shard import Shard, parse_shard
from bucket_sync.errors import UsageError

pytestmark = pytest.mark.integration

N = 3
TREE = {f"set-{i % 4}/part-{i % 3}/f{i:03d}.txt": f"file {i}" for i in range(36)} | {"top.txt": "top"}


@pytest.fixture
def site(azurite):
    name = f"shards-{uuid.uuid4().hex[:10]}"
    azurite.create_container(name)
    return azurite.container_sas_url(name, "racwdl", 3600), azurite.container_client(name)


def blobs(container) -> dict[str, bytes]:
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def run_shards(cli, *args: str, by: str = "key"):
    with ThreadPoolExecutor(N) as pool:
        return list(pool.map(lambda k: cli(*args, "--shard", f"{k}/{N}", "--shard-by", by, "--json"), range(1, N + 1)))


def keys_of(results, op: str) -> list[str]:
    return [e["key"] for r in results for e in r.transfers(op=op, status="ok")]


@pytest.mark.parametrize("by", ["key", "folder"])
def test_shards_in_parallel_converge_to_one_unsharded_run(cli, site, make_files, tmp_path, by):
    url, container = site
    src = make_files(tmp_path / "src", TREE)
    ups = run_shards(cli, "mirror", str(src), url, by=by)
    assert all(r.returncode == 0 for r in ups), ups
    uploaded = keys_of(ups, "upload")
    assert sorted(uploaded) == sorted(TREE) and len(uploaded) == len(set(uploaded))  # each key once
    assert blobs(container) == {k: v.encode() for k, v in TREE.items()}
    if by == "folder":  # a folder and everything in it belong to one shard
        owner = {}
        for r, k in ((u, e["key"]) for u in ups for e in u.transfers(op="upload", status="ok")):
            owner.setdefault(k.split("/", 1)[0], set()).add(r.args[-4])
        assert all(len(shards) == 1 for shards in owner.values()), owner

    # Changes and deletions: each shard deletes only its own extras, and together they converge.
    (src / "top.txt").write_text("changed")
    gone = [k for k in TREE if k.endswith(("f001.txt", "f010.txt", "f020.txt"))]
    for k in gone:
        (src / k).unlink()
    second = run_shards(cli, "mirror", str(src), url, "--max-delete", "100%", by=by)
    assert all(r.returncode == 0 for r in second), second
    deleted = keys_of(second, "delete")
    assert sorted(deleted) == sorted(gone) and len(deleted) == len(set(deleted))
    assert keys_of(second, "upload") == ["top.txt"]
    expected = {k: v.encode() for k, v in TREE.items() if k not in gone} | {"top.txt": b"changed"}
    assert blobs(container) == expected
    # The same as one unsharded run gives: it finds nothing left to do.
    whole = cli("mirror", str(src), url, "--json")
    assert whole.returncode == 0 and whole.summary["uploaded"] == whole.summary["deleted"] == 0, whole
    noop = run_shards(cli, "mirror", str(src), url, by=by)
    assert all(r.returncode == 0 and r.summary["uploaded"] == r.summary["deleted"] == 0 for r in noop)
    assert sum(r.summary["skipped"] for r in noop) == len(expected)


def test_a_shard_never_deletes_another_shards_keys(cli, site, make_files, tmp_path):
    url, container = site
    src = make_files(tmp_path / "src", {"keep.txt": "k"})
    for i in range(30):
        container.upload_blob(f"extra/{i}.txt", b"x")
    mine = Shard(1, N)
    result = cli("mirror", str(src), url, "--shard", f"1/{N}", "--force", "--json")
    assert result.returncode == 0, result
    deleted = {e["key"] for e in result.transfers(op="delete", status="ok")}
    assert deleted and all(mine.owns(k) for k in deleted)
    left = {b.name for b in container.list_blobs()}
    assert {f"extra/{i}.txt" for i in range(30) if not mine.owns(f"extra/{i}.txt")} <= left


def test_download_shards_split_the_files(cli, site, tmp_path):
    url, container = site
    for k, v in TREE.items():
        container.upload_blob(k, v.encode())
    dest = tmp_path / "dest"
    downs = run_shards(cli, "download", url, str(dest))
    assert all(r.returncode == 0 for r in downs), downs
    got = keys_of(downs, "download")
    assert sorted(got) == sorted(TREE) and len(got) == len(set(got))
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == set(TREE)


def test_locks_are_per_pair_and_shard(cli, site, make_files, tmp_path):
    url, _ = site
    names = [f"f{i}.bin" for i in range(40)]
    both = [n for n in names if Shard(1, 2).owns(n)][:3] + [n for n in names if Shard(2, 2).owns(n)][:3]
    src = make_files(tmp_path / "src", {n: 64 * 1024 for n in both})  # three for each shard
    locks = Path(cli.env_for()["XDG_STATE_HOME"]) / "bucket-sync" / "locks"
    # The holder takes ~12 s (192 KiB at 16 KiB/s): it holds its lock through both checks below.
    holder = subprocess.Popen([str(cli.executable), "mirror", str(src), url, "--bwlimit", "16K", "--concurrency", "1",
                               "--shard", "1/2"], env=cli.env_for(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not list(locks.glob("*.holder")) and time.monotonic() < deadline and holder.poll() is None:
            time.sleep(0.05)  # until the holder has its lock
        assert list(locks.glob("*.holder")), "the holder never took its lock"
        other = cli("mirror", str(src), url, "--shard", "2/2")  # another shard: never blocked
        assert other.returncode == 0, other
        same = cli("mirror", str(src), url, "--shard", "1/2")  # the same shard: the lock holds
        assert same.returncode == 5 and "shard 1/2" in same.stderr, same
        assert holder.poll() is None, "the holder ended before the checks: they proved nothing"
    finally:
        holder.kill()
        holder.communicate()


def test_bad_shard_values_are_usage_errors(cli, site, tmp_path):
    url, _ = site
    for value in ("0/3", "4/3", "1", "a/b"):
        result = cli("upload", str(tmp_path), url, "--shard", value)
        assert result.returncode == 2 and "--shard" in result.stderr, result
    with pytest.raises(UsageError):
        parse_shard(None, "folder")
    assert parse_shard("2/5") == Shard(2, 5)
