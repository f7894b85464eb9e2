"""README.md, "Mirroring from cron", through the real command: mirror up and down (add, change, delete) ends exact;
--dry-run changes nothing and lists every action with its reason; filters protect what they exclude."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.mirror_trees import local_tree, put_blob, remote_state, remote_tree, set_mtime

pytestmark = pytest.mark.integration

BASE_NS = 1_700_000_000_123_456_789  # a fixed past mtime, so "changed" mtimes are clearly different


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def assert_exact(local_root: Path, container, prefix: str) -> None:
    """Same keys, same content, and each blob's mtime metadata equals the local file's mtime."""
    local = local_tree(local_root)
    remote = remote_tree(container, prefix)
    assert {k: v[0] for k, v in local.items()} == {k: v[0] for k, v in remote.items()}
    assert {k: v[1] for k, v in local.items()} == {k: v[1] for k, v in remote.items()}


def test_mirror_up_adds_changes_and_deletes_until_exact(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "alpha", "sub/b.bin": 3000, "sub/deep/c.txt": "gamma",
                                        "keep.txt": "kept", "touched.txt": "same bytes"})
    for i, path in enumerate(sorted(src.rglob("*.*"))):
        set_mtime(path, BASE_NS + i)
    container = bucket_container(listing_itwin)
    remote = f"itwin://{listing_itwin}/site"
    put_blob(container, "outside/prefix.txt", b"not ours", BASE_NS)

    first = cli("mirror", src, remote, "--json")
    assert first.returncode == 0, first
    assert first.summary["uploaded"] == 5 and first.summary["deleted"] == 0, first
    assert_exact(src, container, "site")

    put_blob(container, "site/stray.txt", b"only remote", BASE_NS)
    make_files(src, {"new.txt": "fresh"})
    old_b = (src / "sub/b.bin").read_bytes()
    changed = bytes(255 - x for x in old_b)  # same size, different content
    (src / "sub/b.bin").write_bytes(changed)
    set_mtime(src / "sub/b.bin", BASE_NS + 100_000_000_000)
    (src / "sub/deep/c.txt").unlink()
    set_mtime(src / "touched.txt", BASE_NS + 50_000_000_000)  # mtime only: no bytes should move

    second = cli("mirror", src, remote, "--json")
    assert second.returncode == 0, second
    s = second.summary
    assert (s["uploaded"], s["deleted"], s["failed"], s["skipped"]) == (2, 2, 0, 3), second
    assert s["bytes"] == len("fresh") + len(changed), "only new and changed content is sent"
    reasons = {e["key"]: e.get("reason") for e in second.transfers(status="ok")}
    assert reasons["site/new.txt"] == "new"
    assert reasons["site/sub/b.bin"] == "changed content"
    assert {e["key"] for e in second.transfers(op="delete", status="ok")} == {"site/sub/deep/c.txt", "site/stray.txt"}
    assert_exact(src, container, "site")
    assert container.download_blob("outside/prefix.txt").readall() == b"not ours", "outside the prefix: untouched"

    third = cli("mirror", src, remote, "--json")
    assert third.returncode == 0 and third.summary["uploaded"] == third.summary["deleted"] == 0, third
    assert third.summary["skipped"] == 5 and third.summary["bytes"] == 0, third


def test_mirror_down_adds_changes_and_deletes_until_exact(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    blobs = {"a.txt": b"alpha", "sub/b.bin": bytes(range(256)) * 12, "sub/deep/c.txt": b"gamma", "touched.txt": b"same"}
    for i, (key, data) in enumerate(blobs.items()):
        put_blob(container, f"cap/{key}", data, BASE_NS + i)
    dst = tmp_path / "dst"
    remote = f"itwin://{listing_itwin}/cap"

    first = cli("mirror", remote, dst, "--json")
    assert first.returncode == 0, first
    assert first.summary["downloaded"] == 4, first
    assert_exact(dst, container, "cap")

    make_files(dst, {"local-only.txt": "extra", "junk/x.tmp": "extra too"})
    put_blob(container, "cap/new.txt", b"fresh", BASE_NS + 10)
    changed = bytes(reversed(blobs["sub/b.bin"]))
    put_blob(container, "cap/sub/b.bin", changed, BASE_NS + 100_000_000_000)
    container.delete_blob("cap/sub/deep/c.txt")
    put_blob(container, "cap/touched.txt", b"same", BASE_NS + 50_000_000_000)

    second = cli("mirror", remote, dst, "--json", "--max-delete", "3")
    assert second.returncode == 0, second
    s = second.summary
    assert (s["downloaded"], s["deleted"], s["failed"]) == (2, 3, 0), second
    assert s["bytes"] == len(b"fresh") + len(changed), second
    reasons = {e["key"]: e.get("reason") for e in second.transfers(op="download", status="ok")}
    assert reasons == {"cap/new.txt": "new", "cap/sub/b.bin": "changed content"}
    assert_exact(dst, container, "cap")
    assert not (dst / "local-only.txt").exists()
    assert not (dst / "junk").exists() and not (dst / "sub" / "deep").exists(), "folders emptied by deletes go too"
    assert (dst / "sub").is_dir()


def test_dry_run_up_lists_each_action_with_its_reason_and_changes_nothing(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    remote = f"itwin://{listing_itwin}/d"
    src = make_files(tmp_path / "src", {"same.txt": "same", "grown.txt": "short", "touched.txt": "abcd",
                                        "edited.txt": "wxyz", "new.txt": "new"})
    put_blob(container, "d/same.txt", b"same", BASE_NS)
    set_mtime(src / "same.txt", BASE_NS)
    put_blob(container, "d/grown.txt", b"sh", BASE_NS)
    put_blob(container, "d/touched.txt", b"abcd", BASE_NS)
    put_blob(container, "d/edited.txt", b"abcd", BASE_NS)
    put_blob(container, "d/extra.txt", b"extra", BASE_NS)
    before_remote = remote_state(container)
    before_local = local_tree(src)

    run = cli("mirror", src, remote, "--dry-run", "--json")
    assert run.returncode == 0, run
    planned = {(e["op"], e["key"]): e.get("reason") for e in run.transfers(status="planned")}
    assert planned == {
        ("upload", "d/new.txt"): "new",
        ("upload", "d/grown.txt"): "changed size",
        ("upload", "d/touched.txt"): "same size, different mtime",
        ("upload", "d/edited.txt"): "same size, different mtime",
        ("delete", "d/extra.txt"): "extra",
    }, run
    assert run.summary["uploaded"] == run.summary["deleted"] == 0 and run.summary["bytes"] == 0, run
    human = cli("mirror", src, remote, "--dry-run")
    assert human.returncode == 0, human
    assert "would upload d/new.txt (new)" in human.stdout
    assert "would delete d/extra.txt (extra)" in human.stdout
    assert "would upload d/grown.txt (changed size)" in human.stdout
    assert remote_state(container) == before_remote
    assert local_tree(src) == before_local


def test_dry_run_down_changes_nothing_locally(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    put_blob(container, "p/new.txt", b"new", BASE_NS)
    put_blob(container, "p/size.txt", b"longer now", BASE_NS)
    dst = make_files(tmp_path / "dst", {"size.txt": "short", "extra.txt": "x", "keep1": "1", "keep2": "2"})
    before = local_tree(dst)
    before_remote = remote_state(container)
    run = cli("mirror", f"itwin://{listing_itwin}/p", dst, "--dry-run", "--json", "--force")
    assert run.returncode == 0, run
    planned = {(e["op"], e["key"]): e.get("reason") for e in run.transfers(status="planned")}
    assert planned == {("download", "p/new.txt"): "new", ("download", "p/size.txt"): "changed size",
                       ("delete", "p/extra.txt"): "extra", ("delete", "p/keep1"): "extra",
                       ("delete", "p/keep2"): "extra"}, run
    assert local_tree(dst) == before
    assert remote_state(container) == before_remote


def test_excluded_remote_blobs_are_neither_compared_nor_deleted(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    src = make_files(tmp_path / "src", {"a.jpg": "a", "b.jpg": "b"})
    put_blob(container, "f/notes.txt", b"kept: the filter excludes it", BASE_NS)
    put_blob(container, "f/old.jpg", b"deleted: an extra the filter includes", BASE_NS)
    put_blob(container, "f/a.jpg", b"changed", BASE_NS)
    run = cli("mirror", src, f"itwin://{listing_itwin}/f", "--include", "*.jpg", "--json")
    assert run.returncode == 0, run
    assert {b.name for b in container.list_blobs()} == {"f/a.jpg", "f/b.jpg", "f/notes.txt"}


@pytest.mark.parametrize("args, why", [
    (["./a", "./b"], "neither"),
    (["itwin://{id}/x", "itwin://{id}/y"], "both"),
])
def test_exactly_one_side_must_be_remote(cli, listing_itwin, args, why):
    run = cli("mirror", *[a.format(id=listing_itwin) for a in args])
    assert run.returncode == 2, run
    assert "exactly one REMOTE" in run.stderr and why in run.stderr and "Traceback" not in run.stderr


def test_a_file_as_source_is_a_usage_error(cli, listing_itwin, make_files, tmp_path):
    make_files(tmp_path, {"one.txt": "x"})
    run = cli("mirror", tmp_path / "one.txt", f"itwin://{listing_itwin}/x")
    assert run.returncode == 2 and "not a folder" in run.stderr, run


def test_symlinks_and_special_files_are_skipped_and_reported_unless_followed(cli, listing_itwin, bucket_container, make_files, tmp_path):
    import os

    container = bucket_container(listing_itwin)
    src = make_files(tmp_path / "src", {"real.txt": "real"})
    outside = make_files(tmp_path / "outside", {"target.txt": "pointed at"})
    os.symlink(outside / "target.txt", src / "link.txt")
    os.mkfifo(src / "pipe")
    remote = f"itwin://{listing_itwin}/sym"

    run = cli("mirror", src, remote, "--json")
    assert run.returncode == 0, run
    assert run.summary["op"] == "mirror" and run.summary["uploaded"] == 1, run
    skipped = {e["key"]: e.get("error", "") for e in run.transfers(status="skipped")}
    assert "symbolic link" in skipped["sym/link.txt"] and "--follow-symlinks" in skipped["sym/link.txt"], run
    assert "not a regular file" in skipped["sym/pipe"], run
    assert {b.name for b in container.list_blobs()} == {"sym/real.txt"}

    followed = cli("mirror", src, remote, "--follow-symlinks", "--json")
    assert followed.returncode == 0 and followed.summary["uploaded"] == 1, followed
    assert container.download_blob("sym/link.txt").readall() == b"pointed at"


def test_checksum_catches_a_change_that_kept_size_and_mtime(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    src = make_files(tmp_path / "src", {"a.txt": "1234", "b.txt": "same"})
    remote = f"itwin://{listing_itwin}/ck"
    assert cli("mirror", src, remote).returncode == 0
    stat = (src / "a.txt").stat()
    (src / "a.txt").write_text("5678")
    set_mtime(src / "a.txt", stat.st_mtime_ns)  # same size, same mtime: only the content differs

    plain = cli("mirror", src, remote, "--json")
    assert plain.returncode == 0 and plain.summary["uploaded"] == 0, "size+mtime say unchanged"
    checked = cli("mirror", src, remote, "--checksum", "--json")
    assert checked.returncode == 0 and checked.summary["uploaded"] == 1 and checked.summary["skipped"] == 1, checked
    assert container.download_blob("ck/a.txt").readall() == b"5678"


def test_reality_data_mirror_down_needs_only_read_access_and_up_uses_write(cli, emulator, new_reality_data, azurite, make_files, tmp_path):
    container = azurite.container_client(f"rd-{new_reality_data.lower()}")
    for name in ("a.laz", "c.laz", "d.laz"):
        put_blob(container, f"scan/{name}", b"points", BASE_NS)
    itwin = emulator.reality_data_itwin(new_reality_data)
    remote = f"reality-data://{new_reality_data}/scan"
    dst = make_files(tmp_path / "dst", {"a.laz": "points", "old.laz": "gone soon"})

    down = cli("mirror", remote, dst, "--itwin", itwin, "--json")
    assert down.returncode == 0, down
    assert emulator.request_count(r"/readaccess", "GET") >= 1 and emulator.request_count(r"/writeaccess") == 0
    assert sorted(p.name for p in dst.iterdir()) == ["a.laz", "c.laz", "d.laz"]

    make_files(dst, {"b.laz": "more points"})
    up = cli("mirror", dst, remote, "--itwin", itwin, "--json")
    assert up.returncode == 0 and up.summary["uploaded"] == 1, up
    assert emulator.request_count(r"/writeaccess", "GET") >= 1
    assert container.download_blob("scan/b.laz").readall() == b"more points"


def test_download_mirror_sweeps_partial_files_left_by_interrupted_runs(cli, listing_itwin, bucket_container, tmp_path):
    """A download killed mid-file leaves name.bucket-sync-partial; if its blob is deleted before the next
    run, nothing would ever finish it. A mirror that succeeds removes such leftovers (not with --dry-run,
    --no-delete, or where the filters exclude the file)."""
    container = bucket_container(listing_itwin)
    put_blob(container, "p/kept.txt", b"kept", BASE_NS)
    remote = f"itwin://{listing_itwin}/p"
    dst = tmp_path / "dst"
    assert cli("mirror", remote, dst).returncode == 0
    gone = dst / "sub" / "gone.bin.bucket-sync-partial"  # its blob was deleted after the interruption
    stale = dst / "kept.txt.bucket-sync-partial"  # an interrupted re-download of a file now in sync
    excluded = dst / "skip.tmp.bucket-sync-partial"
    for path in (gone, stale, excluded):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    for flags in (["--dry-run"], ["--no-delete"]):
        assert cli("mirror", remote, dst, *flags).returncode == 0
        assert gone.exists() and stale.exists() and excluded.exists(), flags
    run = cli("mirror", remote, dst, "--exclude", "*.tmp", "--json")
    assert run.returncode == 0 and run.summary["skipped"] == 1, run
    assert not gone.exists() and not stale.exists() and excluded.exists()
    assert (dst / "kept.txt").read_bytes() == b"kept"


def test_download_mirror_converges_when_a_local_extra_stands_where_the_remote_has_a_folder_or_file(
        cli, listing_itwin, bucket_container, make_files, tmp_path):
    """Local file 'a' where the remote has 'a/b', local folder 'c/' where it has a file 'c': the downloads
    wait for those extras to be deleted (after every other transfer), and one run ends exact."""
    container = bucket_container(listing_itwin)
    for name, data in {"p/a/b.txt": b"b", "p/c": b"c", "p/other.txt": b"o"}.items():
        put_blob(container, name, data, BASE_NS)
    dst = make_files(tmp_path / "dst", {"a": "a local file", "c/x.txt": "x", "c/deep/y.txt": "y"})
    remote = f"itwin://{listing_itwin}/p"
    run = cli("mirror", remote, dst, "--json", "--max-delete", "100%")
    assert run.returncode == 0, run
    assert (run.summary["downloaded"], run.summary["deleted"], run.summary["failed"]) == (3, 3, 0), run
    assert local_tree(dst) == remote_tree(container, "p")
    assert cli("mirror", remote, dst, "--json").summary["skipped"] == 3
