"""watch through the real command, against the emulator and Azurite: each kind of local change reaches the
bucket (or, without --delete, deliberately does not), a slowly written file goes up once and complete, a
burst of 1,000 files all arrive, and SIGTERM stops it promptly with exit 0, releasing the pair lock."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time

import pytest

from tests.support.watch_proc import WatchProcess

PREFIX = "w"


def blob_names(container) -> set[str]:
    return {b.name for b in container.list_blobs(name_starts_with=PREFIX + "/")}


def blob_bytes(container, name: str) -> bytes:
    return container.download_blob(name).readall()


@pytest.fixture
def setup(listing_itwin, bucket_container, tmp_path):
    root = tmp_path / "watched"
    root.mkdir()
    return root, f"itwin://{listing_itwin}/{PREFIX}", bucket_container(listing_itwin)


def test_new_modified_renamed_deleted_and_moved_folders_with_delete(cli, setup, make_files, tmp_path):
    root, remote, container = setup
    make_files(root, {"keep.txt": "unchanged", "edit.txt": "version 1", "old-name.txt": "renamed later",
                      "gone.txt": "deleted later"})
    os.utime(root / "keep.txt", (1_600_000_000, 1_600_000_000))
    container.upload_blob(f"{PREFIX}/stale.txt", b"only remote")  # an extra: removed by the first reconcile
    with WatchProcess(cli, root, remote, "--json", "--delete") as w:
        w.wait_watching()
        w.wait_for(lambda: blob_names(container) == {f"{PREFIX}/{k}" for k in
                                                      ("keep.txt", "edit.txt", "old-name.txt", "gone.txt")},
                   "the first reconcile to upload everything and delete stale.txt")

        (root / "new.txt").write_text("brand new")
        (root / "edit.txt").write_text("version 2, longer")
        (root / "old-name.txt").rename(root / "new-name.txt")
        (root / "gone.txt").unlink()
        outside = make_files(tmp_path / "incoming", {"f1.jpg": 3000, "sub/f2.jpg": 5000})
        shutil.move(str(outside), str(root / "incoming"))
        make_files(root / "leaving", {"l1.txt": "x", "deep/l2.txt": "y"})

        expected = {f"{PREFIX}/{k}" for k in ("keep.txt", "edit.txt", "new.txt", "new-name.txt", "incoming/f1.jpg",
                                               "incoming/sub/f2.jpg", "leaving/l1.txt", "leaving/deep/l2.txt")}
        w.wait_for(lambda: blob_names(container) == expected, "new, renamed, deleted and moved-in files")
        assert blob_bytes(container, f"{PREFIX}/edit.txt") == b"version 2, longer"
        assert blob_bytes(container, f"{PREFIX}/incoming/sub/f2.jpg") == (root / "incoming/sub/f2.jpg").read_bytes()

        shutil.move(str(root / "leaving"), str(tmp_path / "left"))  # a whole folder moved away
        w.wait_for(lambda: not any(n.startswith(f"{PREFIX}/leaving/") for n in blob_names(container)),
                   "the blobs of the folder moved away to be deleted")

        # The pair is locked while the watcher runs: a second watch or a mirror of it is refused (exit 5).
        second = cli("watch", root, remote, "--json")
        assert second.returncode == 5, second
        elapsed = w.stop(signal.SIGTERM)
    assert w.returncode == 0, w.describe()
    assert elapsed < 8, f"SIGTERM took {elapsed:.1f} s"
    summary = [e for e in w.events if e.get("event") == "summary"]
    assert summary and summary[-1]["exit_code"] == 0 and summary[-1]["failed"] == 0, w.describe()
    assert summary[-1]["deleted"] >= 5  # stale, old-name, gone, leaving/l1, leaving/deep/l2
    # Uploaded by the first reconcile, never again (no change after it).
    assert len(w.transfers(key=f"{PREFIX}/keep.txt", op="upload", status="ok")) == 1
    # The lock went with the process: a mirror of the same pair can run now.
    after = cli("mirror", root, remote, "--json")
    assert after.returncode == 0, after


def test_without_delete_local_deletions_and_renames_keep_the_old_blobs(cli, setup, make_files):
    root, remote, container = setup
    make_files(root, {"a.txt": "a", "b.txt": "b", "dir/c.txt": "c"})
    container.upload_blob(f"{PREFIX}/remote-only.txt", b"stays")
    with WatchProcess(cli, root, remote, "--json") as w:
        w.wait_watching()
        w.wait_for(lambda: {f"{PREFIX}/a.txt", f"{PREFIX}/b.txt", f"{PREFIX}/dir/c.txt"} <= blob_names(container),
                   "the first reconcile")
        (root / "a.txt").unlink()
        shutil.rmtree(root / "dir")
        (root / "b.txt").rename(root / "b2.txt")
        w.wait_for(lambda: f"{PREFIX}/b2.txt" in blob_names(container), "the renamed file")
        time.sleep(1.5)  # one more debounce window: a delete, if one were (wrongly) planned, would be done
        assert w.stop() < 8
    assert w.returncode == 0, w.describe()
    assert blob_names(container) == {f"{PREFIX}/{k}" for k in ("a.txt", "b.txt", "b2.txt", "dir/c.txt", "remote-only.txt")}
    assert not w.transfers(op="delete")


def test_a_slowly_written_file_is_uploaded_once_and_complete(cli, setup):
    root, remote, container = setup
    with WatchProcess(cli, root, remote, "--json") as w:
        w.wait_watching()
        chunks = [os.urandom(256 * 1024) for _ in range(5)]
        with open(root / "scan.las", "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(1.3)  # pauses longer than the 1 s debounce: only "not closed yet" holds it back
        data = b"".join(chunks)
        name = f"{PREFIX}/scan.las"
        w.wait_for(lambda: w.transfers(key=name, status="ok"), "the upload of scan.las")
        time.sleep(2.5)  # room for a (wrong) second upload
        w.stop()
    uploads = w.transfers(key=name, op="upload")
    assert [u["status"] for u in uploads] == ["ok"], w.describe()
    assert uploads[0]["bytes"] == len(data)
    assert hashlib.md5(blob_bytes(container, name)).digest() == hashlib.md5(data).digest()
    props = container.get_blob_client(name).get_blob_properties()
    assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()


def test_a_thousand_files_dropped_at_once_all_arrive(cli, setup):
    root, remote, container = setup
    with WatchProcess(cli, root, remote, "--json", "--status-interval", "2") as w:
        w.wait_watching()
        burst = root / "burst"
        burst.mkdir()
        for i in range(1000):
            (burst / f"img_{i:04d}.jpg").write_bytes(b"%d" % i * 10)
        w.wait_for(lambda: len(blob_names(container)) == 1000, "1,000 blobs", timeout=90, interval=0.5)
        statuses = [e for e in w.events if e.get("event") == "status" and e.get("state") == "status"]
        w.stop()
    assert w.returncode == 0, w.describe()
    ok = {e["key"] for e in w.transfers(op="upload", status="ok")}
    assert len(ok) == 1000 and not w.transfers(status="failed")
    assert blob_bytes(container, f"{PREFIX}/burst/img_0999.jpg") == b"999" * 10
    assert statuses and {"queued", "in_flight", "done", "failed"} <= set(statuses[-1])


def test_sigterm_in_the_middle_of_a_burst_exits_0_promptly_and_the_next_run_finishes(cli, setup):
    root, remote, container = setup
    with WatchProcess(cli, root, remote, "--json", "--concurrency", "2") as w:
        w.wait_watching()
        for i in range(400):
            (root / f"p{i:03d}.bin").write_bytes(os.urandom(2048))
        w.wait_for(lambda: w.transfers(op="upload", status="ok"), "the first uploads")
        elapsed = w.stop(signal.SIGTERM)
    assert w.returncode == 0, w.describe()
    assert elapsed < 8, f"SIGTERM with transfers in flight took {elapsed:.1f} s"
    summary = [e for e in w.events if e.get("event") == "summary"]
    assert summary and summary[-1]["exit_code"] == 0, w.describe()
    assert 0 < summary[-1]["uploaded"] < 400  # it stopped mid-burst, not after finishing
    # Nothing half-done is left behind, and the lock is free: a mirror of the pair completes the rest.
    after = cli("mirror", root, remote, "--json")
    assert after.returncode == 0, after
    assert len(blob_names(container)) == 400
    for name in (f"{PREFIX}/p000.bin", f"{PREFIX}/p399.bin"):
        assert blob_bytes(container, name) == (root / name.split("/", 1)[1]).read_bytes()
