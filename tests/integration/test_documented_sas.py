"""The platform as documented, through the real command: a bucket SAS of exactly ``sp=rw`` (no list, no
delete), reality data read access ``sp=rl`` and write access with or without ``l``, files by name, and
`check`. The emulator's defaults are these documented SAS; the tests that need more ask for it."""

from __future__ import annotations

import os

import pytest

from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

FILES = {"a.txt": "alpha", "b/c.txt": "charlie", "b/d/e.bin": 3000, "z.jpg": 700}


def blob_names(container) -> list[str]:
    return sorted(b.name for b in container.list_blobs())


@pytest.fixture
def photos(tmp_path, make_files):
    return make_files(tmp_path / "photos", FILES)


def test_bucket_sas_is_rw_by_default(cli, new_itwin):
    result = cli("url", f"itwin://{new_itwin}", "--json")
    assert result.returncode == 0, result
    assert result.json_lines[0]["permissions"] == "rw"


def test_folder_upload_on_rw_compares_file_by_file_and_a_second_run_sends_nothing(cli, new_itwin, bucket_container, photos):
    first = cli("upload", str(photos), f"itwin://{new_itwin}/p", "--json")
    assert first.returncode == 0, first
    assert first.summary["uploaded"] == 4 and first.summary["failed"] == 0
    notices = [e for e in first.events if e["event"] == "notice"]
    assert len(notices) == 1 and "no listing" in notices[0]["message"]  # said once
    assert "no listing" in first.stderr
    assert blob_names(bucket_container(new_itwin)) == sorted(f"p/{k}" for k in FILES)
    second = cli("upload", str(photos), f"itwin://{new_itwin}/p", "--json")
    assert second.returncode == 0, second
    assert second.summary["uploaded"] == 0 and second.summary["skipped"] == 4 and second.summary["bytes"] == 0
    # A changed file is found by its look-up and sent again; only that one.
    (photos / "b" / "c.txt").write_text("charlie, changed")
    third = cli("upload", str(photos), f"itwin://{new_itwin}/p", "--json")
    assert [e["key"] for e in third.transfers(op="upload", status="ok")] == ["p/b/c.txt"]


def test_mirror_up_no_delete_works_on_rw(cli, new_itwin, bucket_container, photos):
    container = bucket_container(new_itwin)
    container.upload_blob("p/extra.txt", b"not in the source")
    result = cli("mirror", str(photos), f"itwin://{new_itwin}/p", "--no-delete", "--json")
    assert result.returncode == 0, result
    assert result.summary["uploaded"] == 4 and result.summary["deleted"] == 0
    assert "p/extra.txt" in blob_names(container)
    again = cli("mirror", str(photos), f"itwin://{new_itwin}/p", "--no-delete", "--json")
    assert again.summary["uploaded"] == 0 and again.summary["skipped"] == 4


@pytest.mark.parametrize("extra", ["--dry-run", None])
def test_mirror_with_deletes_on_rw_is_refused_before_a_byte_moves(cli, emulator, new_itwin, bucket_container, photos, extra):
    container = bucket_container(new_itwin)
    container.upload_blob("p/extra.txt", b"x")
    emulator.reset()
    args = ["mirror", str(photos), f"itwin://{new_itwin}/p", "--json"] + ([extra] if extra else [])
    result = cli(*args)
    assert result.returncode == 3, result
    assert "delete (d)" in result.stderr and "sp=rw" in result.stderr
    assert "--no-delete" in result.stderr and "reality-data://" in result.stderr
    assert result.summary["exit_code"] == 3 and result.summary["uploaded"] == 0
    assert blob_names(container) == ["p/extra.txt"]  # nothing uploaded, nothing deleted


def test_mirror_with_list_but_no_delete_is_refused_at_the_start(cli, emulator, new_itwin, bucket_container, photos):
    emulator.configure_itwin(new_itwin, permissions="rwl")
    result = cli("mirror", str(photos), f"itwin://{new_itwin}/p")
    assert result.returncode == 3, result
    assert "delete (d)" in result.stderr
    assert blob_names(bucket_container(new_itwin)) == []  # before: everything uploaded, then died at a delete


def test_upload_on_write_only_sas_needs_overwrite(cli, azurite, photos):
    container = azurite.container_client("wonly")
    container.create_container()
    url = azurite.container_sas_url("wonly", "w", 3600)
    refused = cli("upload", str(photos), url)
    assert refused.returncode == 3, refused
    assert "--overwrite" in refused.stderr and blob_names(container) == []
    forced = cli("upload", str(photos), url, "--overwrite", "--json")
    assert forced.returncode == 0, forced
    assert forced.summary["uploaded"] == 4 and len(blob_names(container)) == 4


def test_download_by_name_on_rw(cli, new_itwin, bucket_container, tmp_path):
    container = bucket_container(new_itwin)
    container.upload_blob("p/report.pdf", b"%PDF report")
    container.upload_blob("p/roi.json", b"{}")
    into_folder = tmp_path / "out"
    into_folder.mkdir()
    result = cli("download", f"itwin://{new_itwin}/p/report.pdf", str(into_folder), "--json")
    assert result.returncode == 0, result
    assert (into_folder / "report.pdf").read_bytes() == b"%PDF report"
    assert result.transfers(op="download", status="ok", key="p/report.pdf")
    assert not list(into_folder.glob("*.bucket-sync-partial"))
    # A DEST that is not a folder is the file's new name; a DEST ending in a separator is a folder.
    as_name = tmp_path / "renamed.pdf"
    assert cli("download", f"itwin://{new_itwin}/p/report.pdf", str(as_name)).returncode == 0
    assert as_name.read_bytes() == b"%PDF report"
    new_folder = str(tmp_path / "new") + os.sep
    assert cli("download", f"itwin://{new_itwin}/p/roi.json", new_folder).returncode == 0
    assert (tmp_path / "new" / "roi.json").read_bytes() == b"{}"
    again = cli("download", f"itwin://{new_itwin}/p/report.pdf", str(into_folder), "--json")
    assert again.summary["downloaded"] == 0 and again.summary["skipped"] == 1  # unchanged: not fetched again


def test_download_files_from_on_rw(cli, new_itwin, bucket_container, tmp_path):
    container = bucket_container(new_itwin)
    for name in ("p/a.txt", "p/sub/b.txt", "p/c.txt"):
        container.upload_blob(name, name.encode())
    names = tmp_path / "names.txt"
    names.write_text("# wanted\na.txt\nsub/b.txt\n\nmissing.txt\n")
    dest = tmp_path / "dest"
    result = cli("download", f"itwin://{new_itwin}/p", str(dest), "--files-from", str(names), "--json")
    assert result.returncode == 4, result  # one name found nothing: not a silent success
    assert (dest / "a.txt").read_bytes() == b"p/a.txt" and (dest / "sub" / "b.txt").read_bytes() == b"p/sub/b.txt"
    assert not (dest / "c.txt").exists()
    failed = result.transfers(status="failed")
    assert [e["key"] for e in failed] == ["p/missing.txt"]
    assert result.summary["downloaded"] == 2
    names.write_text("a.txt\nsub/b.txt\n")
    clean = cli("download", f"itwin://{new_itwin}/p", str(dest), "--files-from", str(names), "--json")
    assert clean.returncode == 0 and clean.summary["skipped"] == 2


def test_download_of_a_name_that_is_nothing_is_exit_4(cli, new_itwin, listing_itwin, bucket_container, tmp_path):
    on_rw = cli("download", f"itwin://{new_itwin}/nothing/here", str(tmp_path / "d1"))
    assert on_rw.returncode == 4, on_rw
    assert "no listing" in on_rw.stderr and "--files-from" in on_rw.stderr
    bucket_container(listing_itwin).upload_blob("p/x.txt", b"x")
    on_full = cli("download", f"itwin://{listing_itwin}/nothing", str(tmp_path / "d2"), "--json")
    assert on_full.returncode == 4, on_full
    assert on_full.summary["exit_code"] == 4 and "nothing to download" in on_full.stderr
    assert not (tmp_path / "d2").exists()


def test_download_one_blob_with_a_listing_sas(cli, listing_itwin, bucket_container, tmp_path):
    """Before, `download REMOTE-naming-a-blob DIR` printed 'downloaded 0' and exited 0 whatever the SAS."""
    bucket_container(listing_itwin).upload_blob("p/one.txt", b"one")
    result = cli("download", f"itwin://{listing_itwin}/p/one.txt", str(tmp_path), "--json")
    assert result.returncode == 0, result
    assert result.summary["downloaded"] == 1 and (tmp_path / "one.txt").read_bytes() == b"one"


def test_ls_and_rm_on_rw(cli, new_itwin, bucket_container):
    container = bucket_container(new_itwin)
    container.upload_blob("p/one.txt", b"one")
    by_name = cli("ls", f"itwin://{new_itwin}/p/one.txt", "--long")
    assert by_name.returncode == 0, by_name
    assert "p/one.txt" in by_name.stdout and "3" in by_name.stdout
    folder = cli("ls", f"itwin://{new_itwin}/p")
    assert folder.returncode == 4, folder
    assert "no listing" in folder.stderr and "by name" in folder.stderr
    rm = cli("rm", f"itwin://{new_itwin}/p/one.txt")
    assert rm.returncode == 3, rm
    assert "delete (d)" in rm.stderr and "sp=rw" in rm.stderr
    assert blob_names(container) == ["p/one.txt"]


def test_check_on_rw_shows_what_works(cli, new_itwin):
    result = cli("check", f"itwin://{new_itwin}/p", "--json")
    assert result.returncode == 0, result
    report = result.json_lines[0]
    assert report["event"] == "check" and report["sas"][0]["permissions"] == "rw"
    assert report["sas"][0]["seconds_left"] > 0
    probes = {p["permission"]: p["granted"] for p in report["probes"]}
    assert probes == {"l": False, "r": True, "w": True, "d": False}
    works = {c["command"]: c["works"] for c in report["commands"]}
    assert works["upload"] and works["mirror LOCAL REMOTE --no-delete"] and works["watch"]
    assert not works["mirror LOCAL REMOTE"] and not works["watch --delete"] and not works["rm REMOTE/<name>"]
    assert works["download REMOTE/<name>, --files-from"] and not works["download REMOTE (a folder)"]
    human = cli("check", f"itwin://{new_itwin}/p")
    assert human.returncode == 0 and "sp=rw" in human.stdout and "REFUSED" in human.stdout
    assert "?" not in human.stdout.split("container:")[1].splitlines()[0]  # the address, never the SAS


def test_check_probes_leave_the_container_unchanged(cli, listing_itwin, bucket_container):
    container = bucket_container(listing_itwin)
    container.upload_blob("keep.txt", b"k")
    result = cli("check", f"itwin://{listing_itwin}", "--json")
    assert result.returncode == 0, result
    assert all(p["granted"] for p in result.json_lines[0]["probes"])
    assert blob_names(container) == ["keep.txt"]


@pytest.mark.parametrize("sp, heads", [("racwdl", 0), ("rw", len(FILES))])
def test_listing_when_the_sas_can_list_one_head_per_file_when_not(cli, azurite, photos, sp, heads):
    """On racwdl the listing path is still taken (no HEAD per file); on rw one look-up per file."""
    name = f"count{sp}"
    azurite.container_client(name).create_container()
    with FaultProxy(azurite.port, seed=1) as proxy:
        url = proxy.rewrite(azurite.container_sas_url(name, sp, 3600))
        assert cli("upload", str(photos), url).returncode == 0
        proxy.stats.requests_by_method.clear()
        again = cli("upload", str(photos), url, "--json")
        assert again.returncode == 0, again
        assert again.summary["skipped"] == len(FILES) and again.summary["uploaded"] == 0
        by_method = dict(proxy.stats.requests_by_method)
    assert by_method.get("HEAD", 0) == heads, by_method
    assert (by_method.get("GET", 0) > 0) == (sp == "racwdl"), by_method  # the listing
    assert by_method.get("PUT", 0) == 0, by_method


def test_watch_on_rw_reconciles_file_by_file_and_uploads_new_files(cli, new_itwin, bucket_container, photos):
    from tests.support.watch_proc import WatchProcess

    container = bucket_container(new_itwin)
    with WatchProcess(cli, photos, f"itwin://{new_itwin}/w", "--json") as w:
        w.wait_watching()
        assert any(e.get("event") == "notice" and "no listing" in e["message"] for e in w.events)
        # The initial reconcile (files written just now wait for the debounce: they may still be changing).
        w.wait_for(lambda: blob_names(container) == sorted(f"w/{k}" for k in FILES), "the initial reconcile")
        (photos / "new.jpg").write_bytes(b"new photo")
        w.wait_for(lambda: "w/new.jpg" in blob_names(container), "new.jpg uploaded")
        w.stop()
    assert w.returncode == 0, w.describe()
    assert [e["key"] for e in w.transfers(op="upload", status="ok")].count("w/new.jpg") == 1


def test_watch_delete_on_rw_is_refused_at_the_start(cli, new_itwin, bucket_container, photos):
    from tests.support.watch_proc import WatchProcess

    with WatchProcess(cli, photos, f"itwin://{new_itwin}/w", "--json", "--delete") as w:
        w.proc.wait(60)
        w.stop()
    assert w.returncode == 3, w.describe()
    assert "delete (d)" in w.stderr and "without --delete" in w.stderr
    assert blob_names(bucket_container(new_itwin)) == []  # nothing was uploaded first


def policy_sas_url(azurite, name: str) -> str:
    """A SAS bound to a stored access policy granting read and write: its URL names no permissions."""
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import AccessPolicy, ContainerSasPermissions, generate_container_sas

    container = azurite.container_client(name)
    container.create_container()
    now = datetime.now(timezone.utc)
    container.set_container_access_policy({"rw": AccessPolicy(
        permission=ContainerSasPermissions(read=True, write=True), start=now - timedelta(minutes=5),
        expiry=now + timedelta(hours=1))})
    token = generate_container_sas(azurite.account_name, name, account_key=azurite.account_key, policy_id="rw")
    assert "sp=" not in token
    return f"{azurite.blob_endpoint}/{name}?{token}"


def test_watch_with_a_sas_without_sp_learns_it_cannot_list(cli, azurite, photos):
    from tests.support.watch_proc import WatchProcess

    url = policy_sas_url(azurite, "policywatch")
    container = azurite.container_client("policywatch")
    with WatchProcess(cli, photos, url, "--json") as w:
        w.wait_watching()
        w.wait_for(lambda: len(blob_names(container)) == len(FILES), "the initial reconcile, file by file")
        (photos / "late.txt").write_text("late")
        w.wait_for(lambda: "late.txt" in blob_names(container), "late.txt")
        w.stop()
    assert w.returncode == 0, w.describe()
    assert any(e.get("event") == "notice" for e in w.events)


def test_a_sas_without_sp_learns_from_storage_that_it_cannot_list(cli, azurite, photos):
    """A SAS bound to a stored access policy names no permissions (no sp=): bucket-sync assumes a listing,
    storage answers 403 AuthorizationPermissionMismatch, and the run goes on file by file (no SAS refresh,
    no failure)."""
    url = policy_sas_url(azurite, "policyrw")
    first = cli("upload", str(photos), url, "--json")
    assert first.returncode == 0, first
    assert first.summary["uploaded"] == len(FILES)
    assert [e for e in first.events if e["event"] == "notice"]
    second = cli("upload", str(photos), url, "--json")
    assert second.returncode == 0 and second.summary["skipped"] == len(FILES) and second.summary["uploaded"] == 0
    mirror = cli("mirror", str(photos), url)  # deletes: refused once storage said it cannot list
    assert mirror.returncode == 3, mirror
    assert "refused by storage" in mirror.stderr or "list (l)" in mirror.stderr
