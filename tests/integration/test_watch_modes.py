"""watch --polling (for network shares, and the fallback when native watching fails), and the guard that
keeps an empty (unmounted?) LOCAL_DIR from emptying the bucket at the first reconcile."""

from __future__ import annotations

from tests.support.watch_proc import WatchProcess


def names(container) -> set[str]:
    return {b.name for b in container.list_blobs(name_starts_with="p/")}


def test_polling_mode_uploads_and_deletes(cli, listing_itwin, bucket_container, tmp_path):
    container = bucket_container(listing_itwin)
    root = tmp_path / "share"
    root.mkdir()
    (root / "old.txt").write_text("old")
    with WatchProcess(cli, root, f"itwin://{listing_itwin}/p", "--json", "--polling", "--delete") as w:
        w.wait_watching()
        assert [e["mode"] for e in w.events if e.get("state") == "watching"] == ["polling"]
        w.wait_for(lambda: names(container) == {"p/old.txt"}, "the first reconcile")
        (root / "sub").mkdir()
        (root / "sub" / "new.txt").write_text("seen by polling")
        (root / "old.txt").unlink()
        w.wait_for(lambda: names(container) == {"p/sub/new.txt"}, "the new file and the deletion")
        w.stop()
    assert w.returncode == 0, w.describe()


def test_an_empty_folder_does_not_empty_the_bucket(cli, listing_itwin, bucket_container, tmp_path):
    container = bucket_container(listing_itwin)
    for i in range(3):
        container.upload_blob(f"p/keep{i}.txt", b"precious")
    root = tmp_path / "unmounted"
    root.mkdir()
    config = tmp_path / "bucket-sync.toml"
    config.write_text("[watch]\ndelete = true\n")  # --delete, from the config file
    with WatchProcess(cli, root, f"itwin://{listing_itwin}/p", "--json", "--config", config) as w:
        w.wait_watching()
        w.wait_for(lambda: "is empty: not deleting the 3 blob(s)" in w.stderr, "the warning")
        (root / "new.txt").write_text("a real file")
        w.wait_for(lambda: "p/new.txt" in names(container), "new.txt")
        w.stop()
    assert w.returncode == 0, w.describe()
    assert names(container) == {"p/keep0.txt", "p/keep1.txt", "p/keep2.txt", "p/new.txt"}
    assert not w.transfers(op="delete")


def test_a_permission_the_sas_lacks_ends_the_watcher_with_exit_3(cli, azurite, tmp_path):
    azurite.create_container("watch-readonly")
    url = azurite.container_sas_url("watch-readonly", permission="rl")
    root = tmp_path / "watched"
    root.mkdir()
    (root / "a.txt").write_text("cannot go up")
    with WatchProcess(cli, root, url, "--json") as w:
        w.proc.wait(60)
        w.stop()  # already exited: collects the output and checks it for secrets
    assert w.returncode == 3, w.describe()
    assert "write (w) permission" in w.stderr or "write permission" in w.stderr, w.describe()
    assert [e["exit_code"] for e in w.events if e.get("event") == "summary"] == [3]
    # Refused before anything is sent: no upload was even tried.
    assert not w.transfers(op="upload", status="ok") and not w.transfers(op="upload", status="failed")
    assert "nothing was changed" in w.stderr, w.describe()


def test_a_windows_mapped_name_is_uploaded_and_never_taken_for_gone(cli, azurite, tmp_path):
    """With the Windows name mapping (forced here), the local 'a：b.txt' is the blob 'a:b.txt'; watch
    must find the file from the key through keys.local_path_for, or it would see it gone and, with
    --delete, delete the blob it just uploaded."""
    azurite.create_container("watch-winnames")
    container = azurite.container_client("watch-winnames")
    url = azurite.container_sas_url("watch-winnames", permission="racwdl")
    root = tmp_path / "watched"
    root.mkdir()
    with WatchProcess(cli, root, url, "--json", "--delete", "--debounce", "0.3",
                      env={"BUCKET_SYNC_LOCAL_ENCODING": "windows"}) as w:
        w.wait_watching()
        (root / "a\uff1ab.txt").write_text("colon")
        w.wait_for(lambda: "a:b.txt" in {b.name for b in container.list_blobs()}, "a:b.txt uploaded")
        (root / "a\uff1ab.txt").write_text("colon, changed")
        w.wait_for(lambda: len(w.transfers(op="upload", key="a:b.txt", status="ok")) >= 2, "the change uploaded")
        w.stop()
    assert w.returncode == 0, w.describe()
    assert not w.transfers(op="delete"), w.transfers(op="delete")
    assert container.download_blob("a:b.txt").readall() == b"colon, changed"
