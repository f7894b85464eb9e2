"""README.md, "Commands", through the real command against Azurite and the platform emulator: round trip, skip logic,
SAS refresh during a long upload, unsafe blob names, JSON output."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

ODD_NAMES = {
    "plain.txt": "hello",
    "with space/file name.txt": "spaces",
    "ünïcødé/日本語.txt": "unicode",
    "pct%20and#hash+plus.txt": "odd characters",
    "deep/er/and/deeper/leaf.bin": 3000,
    "empty.dat": b"",
    "big/multi-block.bin": 700 * 1024,  # several 64 KiB blocks with --block-size 64K
}


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """relative POSIX path -> (md5, mtime_ns) of every regular file, for exact comparisons."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = (hashlib.md5(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return out


def test_round_trip_keeps_names_contents_and_mtimes(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", ODD_NAMES)
    remote = f"itwin://{listing_itwin}/survey/2026"

    up = cli("upload", str(src), remote, "--block-size", "64K", "--json")
    assert up.returncode == 0, up
    assert up.summary["uploaded"] == len(ODD_NAMES) and up.summary["failed"] == 0, up
    # stdout carries only JSON objects, each with "event"
    assert all(json.loads(line).get("event") for line in up.stdout.splitlines() if line.strip()), up

    container = bucket_container(listing_itwin)
    blobs = {b.name: b for b in container.list_blobs(include=["metadata"])}
    assert set(blobs) == {f"survey/2026/{k}" for k in ODD_NAMES}
    for key in ODD_NAMES:
        blob = blobs[f"survey/2026/{key}"]
        local = src / key
        assert bytes(blob.content_settings.content_md5) == hashlib.md5(local.read_bytes()).digest(), key
        assert blob.metadata["mtime"].endswith("Z"), blob.metadata
    big = container.get_blob_client("survey/2026/big/multi-block.bin")
    committed, _ = big.get_block_list("committed")
    assert len(committed) == 11, "a 700 KiB file goes up as 64 KiB blocks"

    dst = tmp_path / "dst"
    down = cli("download", remote, str(dst), "--json")
    assert down.returncode == 0, down
    assert down.summary["downloaded"] == len(ODD_NAMES), down
    assert tree_digest(dst) == tree_digest(src)
    assert not list(dst.rglob("*.bucket-sync-partial"))


def test_second_upload_transfers_nothing_and_changed_file_goes_again(cli, listing_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "one", "b.txt": "two", "c/d.txt": "three"})
    remote = f"itwin://{listing_itwin}/p"
    assert cli("upload", str(src), remote, "--json").summary["uploaded"] == 3

    again = cli("upload", str(src), remote, "--json")
    assert again.returncode == 0
    assert again.summary["uploaded"] == 0 and again.summary["skipped"] == 3, again

    (src / "b.txt").write_text("TWO!")  # new size and mtime
    changed = cli("upload", str(src), remote, "--json")
    assert changed.summary["uploaded"] == 1, changed
    assert [e["key"] for e in changed.transfers(status="ok")] == ["p/b.txt"]


def test_same_size_new_mtime_only_fixes_the_mtime(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"same.txt": "same bytes"})
    remote = f"itwin://{listing_itwin}/m"
    assert cli("upload", str(src), remote, "--json").returncode == 0
    etag_before = bucket_container(listing_itwin).get_blob_client("m/same.txt").get_blob_properties().etag

    os.utime(src / "same.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    run = cli("upload", str(src), remote, "--json")
    assert run.summary["uploaded"] == 0 and run.summary["skipped"] == 1, run
    props = bucket_container(listing_itwin).get_blob_client("m/same.txt").get_blob_properties()
    assert props.metadata["mtime"] == "2020-09-13T12:26:40.123456789Z"
    assert props.etag != etag_before  # metadata rewritten, content untouched
    assert props.size == len("same bytes")

    # Same size, same mtime, but different content: --checksum catches it.
    (src / "same.txt").write_text("SAME BYTES")
    os.utime(src / "same.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    assert cli("upload", str(src), remote, "--json").summary["uploaded"] == 0
    forced = cli("upload", str(src), remote, "--json", "--checksum")
    assert forced.summary["uploaded"] == 1, forced


def test_dry_run_changes_nothing_and_overwrite_sends_everything(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"x.txt": "x", "y/z.txt": "z"})
    remote = f"itwin://{listing_itwin}/d"
    dry = cli("upload", str(src), remote, "--dry-run", "--json")
    assert dry.returncode == 0
    assert {e["key"] for e in dry.transfers(status="planned")} == {"d/x.txt", "d/y/z.txt"}
    assert all(e.get("reason") == "new" for e in dry.transfers(status="planned"))
    assert list(bucket_container(listing_itwin).list_blobs()) == []

    assert cli("upload", str(src), remote, "--json").summary["uploaded"] == 2
    over = cli("upload", str(src), remote, "--overwrite", "--json")
    assert over.summary["uploaded"] == 2, over


def test_single_files_go_to_their_base_name(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"one.las": 100, "sub/two.las": 200})
    result = cli("upload", str(src / "one.las"), str(src / "sub" / "two.las"), f"itwin://{listing_itwin}/clouds/", "--json")
    assert result.returncode == 0, result
    assert sorted(b.name for b in bucket_container(listing_itwin).list_blobs()) == ["clouds/one.las", "clouds/two.las"]


def test_upload_longer_than_the_sas_lifetime_succeeds(cli, emulator, listing_itwin, bucket_container, tmp_path):
    """The emulator hands out 3-second SAS URLs; a bandwidth-limited upload takes several times that."""
    emulator.configure(sas_lifetime=3)
    data = os.urandom(1536 * 1024)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "slow.bin").write_bytes(data)
    started = time.monotonic()
    result = cli("upload", str(tmp_path / "src"), f"itwin://{listing_itwin}/slow", "--block-size", "64K",
                 "--bwlimit", "150K", "--concurrency", "2", "--json", timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result
    assert elapsed > 8, f"the upload should outlast several SAS lifetimes, took {elapsed:.1f} s"
    blob = bucket_container(listing_itwin).get_blob_client("slow/slow.bin")
    assert blob.download_blob().readall() == data
    assert emulator.request_count(r"/bucket$") >= 3, "the SAS URL must have been refreshed during the run"


def put_raw_blob(azurite, container: str, encoded_name: str, data: bytes) -> None:
    """Create a blob whose name the SDK would normalise (``..`` segments): a raw, percent-encoded PUT."""
    base, _, sas = azurite.container_sas_url(container).partition("?")
    response = httpx.put(f"{base}/{encoded_name}?{sas}", content=data,
                         headers={"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06"})
    assert response.status_code == 201, response.text


def test_download_refuses_names_that_escape_and_goes_on(cli, azurite, listing_itwin, bucket_container, tmp_path):
    container_name = f"bucket-{listing_itwin}"
    container = bucket_container(listing_itwin)
    container.upload_blob("in/ok.txt", b"fine")
    put_raw_blob(azurite, container_name, "in/%2E%2E/x", b"evil")
    put_raw_blob(azurite, container_name, "in/a/%2E%2E/%2E%2E/y", b"evil")
    put_raw_blob(azurite, container_name, "in/%2Fabs", b"evil")
    listed = sorted(b.name for b in container.list_blobs(name_starts_with="in/"))  # Python order
    assert listed == sorted(["in//abs", "in/../x", "in/a/../../y", "in/ok.txt"]), listed

    dst = tmp_path / "work" / "dst"
    result = cli("download", f"itwin://{listing_itwin}/in", str(dst), "--json")
    assert result.returncode == 1, result
    assert (dst / "ok.txt").read_bytes() == b"fine"  # the safe file still arrived
    assert {e["key"] for e in result.transfers(status="failed")} == {"in//abs", "in/../x", "in/a/../../y"}
    assert result.summary["downloaded"] == 1 and result.summary["failed"] == 3
    state = cli.home / ".local" / "state" / "bucket-sync"  # the run's own: the SAS cache
    cache = cli.home / ".cache" / "bucket-sync"  # and the listing metadata
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                     if p.is_file() and not p.is_relative_to(state / "sas-cache")
                     and not p.is_relative_to(cache / "listing-cache"))
    assert written == ["work/dst/ok.txt"], written
    assert not os.path.exists("/abs")


def test_json_summary_counts_and_human_summary(cli, listing_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a": 10, "b": 20})
    human = cli("upload", str(src), f"itwin://{listing_itwin}/h")
    assert human.returncode == 0
    assert "uploaded 2" in human.stdout and "failed 0" in human.stdout, human
    quiet = cli("upload", str(src), f"itwin://{listing_itwin}/h", "-q")
    assert quiet.returncode == 0 and quiet.stdout == "", quiet
