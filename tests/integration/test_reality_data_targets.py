"""reality-data://<id>/<prefix> targets: reads through readaccess, writes through writeaccess, --itwin."""

from __future__ import annotations

import uuid

import pytest

READ = r"/readaccess$"
WRITE = r"/writeaccess$"


@pytest.fixture
def rd_container(azurite):
    def container(rd_id: str):
        return azurite.container_client(f"rd-{rd_id.lower()}")

    return container


@pytest.mark.parametrize("write_sp", ["racwd", "racwdl"])
def test_upload_uses_write_access_and_download_read_access(cli, emulator, new_reality_data, rd_container, make_files,
                                                           tmp_path, write_sp):
    """Bentley's SDK lists only through read access (sp=rl, documented); write access permissions are not
    documented. A write SAS without l: the listing goes through read access; one that lists: one SAS."""
    emulator.configure_reality_data(new_reality_data, write_permissions=write_sp)
    src = make_files(tmp_path / "src", {"scan/a.las": 3000, "scan/sub/b.txt": "hello", "top.json": "{}"})
    up = cli("upload", src, f"reality-data://{new_reality_data}/cloud", "--json")
    assert up.returncode == 0, up
    assert up.summary["uploaded"] == 3
    assert not [e for e in up.events if e["event"] == "notice"]  # listed, not compared file by file
    names = sorted(b.name for b in rd_container(new_reality_data).list_blobs())
    assert names == ["cloud/scan/a.las", "cloud/scan/sub/b.txt", "cloud/top.json"]
    assert emulator.request_count(WRITE, status=200) == 1
    assert emulator.request_count(READ) == (0 if "l" in write_sp else 1)

    emulator.reset()
    dest = tmp_path / "dest"
    down = cli("download", f"reality-data://{new_reality_data}/cloud/scan", dest, "--json")
    assert down.returncode == 0, down
    assert down.summary["downloaded"] == 2
    assert (dest / "a.las").read_bytes() == (src / "scan" / "a.las").read_bytes()
    assert (dest / "sub" / "b.txt").read_text() == "hello"
    # Never write access; read access from the SAS cache when the upload already fetched it.
    assert emulator.request_count(WRITE) == 0
    assert emulator.request_count(READ, status=200) == (1 if "l" in write_sp else 0)


def test_read_and_write_access_are_separate_sas(cli, emulator, new_reality_data):
    read = cli("url", f"reality-data://{new_reality_data}", "--json")
    write = cli("url", f"reality-data://{new_reality_data}", "--write", "--json")
    assert read.returncode == 0 and write.returncode == 0, (read, write)
    assert read.json_lines[0]["permissions"] == "rl"
    assert set("rwd") <= set(write.json_lines[0]["permissions"])
    assert "sig=" in read.json_lines[0]["url"] and "REDACTED" in read.json_lines[0]["url"]


def test_ls_lists_with_the_read_sas(cli, emulator, new_reality_data, rd_container):
    container = rd_container(new_reality_data)
    for name in ("tiles/0.b3dm", "tiles/1.b3dm", "tileset.json"):
        container.upload_blob(name, b"x")
    result = cli("ls", f"reality-data://{new_reality_data}/", "--json")
    assert result.returncode == 0, result
    assert [e["key"] for e in result.events if e["event"] in ("blob", "dir")] == ["tiles/", "tileset.json"]
    assert emulator.request_count(READ, status=200) == 1 and emulator.request_count(WRITE) == 0


def test_itwin_option_is_passed_and_a_wrong_one_is_not_found(cli, emulator, new_reality_data, rd_container):
    rd_container(new_reality_data).upload_blob("a.txt", b"a")
    owner = emulator.reality_data_itwin(new_reality_data)
    ok = cli("ls", f"reality-data://{new_reality_data}", "--itwin", owner)
    assert ok.returncode == 0 and ok.stdout.split() == ["a.txt"], ok
    wrong = cli("ls", f"reality-data://{new_reality_data}", "--itwin", emulator.add_itwin())
    assert wrong.returncode == 4, wrong
    assert "RealityDataNotFound" in wrong.stderr and "--itwin" in wrong.stderr
    bad = cli("ls", f"reality-data://{new_reality_data}", "--itwin", "my-project")
    assert bad.returncode == 2 and "not a GUID" in bad.stderr, bad


def test_unknown_reality_data_is_not_found(cli, emulator):
    missing = str(uuid.uuid4())
    result = cli("download", f"reality-data://{missing}/x", "out")
    assert result.returncode == 4, result
    assert f"reality data {missing}" in result.stderr and "RealityDataNotFound" in result.stderr


def test_rm_through_reality_data_uses_write_access(cli, emulator, new_reality_data, rd_container):
    container = rd_container(new_reality_data)
    for name in ("old/a", "old/b", "keep"):
        container.upload_blob(name, b"x")
    result = cli("rm", f"reality-data://{new_reality_data}/old", "--recursive")
    assert result.returncode == 0, result
    assert sorted(b.name for b in container.list_blobs()) == ["keep"]
    # Deleted through write access, listed through read access (the write SAS cannot list).
    assert emulator.request_count(WRITE, status=200) == 1 and emulator.request_count(READ, status=200) == 1


def test_write_sas_is_refreshed_during_a_long_upload(cli, emulator, new_reality_data, rd_container, make_files, tmp_path):
    emulator.configure(sas_lifetime=2)  # shorter than the run: the write SAS must be fetched again
    src = make_files(tmp_path / "src", {f"f{i:02}.bin": 32 * 1024 for i in range(12)})
    result = cli("upload", src, f"reality-data://{new_reality_data}/", "--concurrency", "2", "--bwlimit", "96K", "--json")
    assert result.returncode == 0, result
    assert result.summary["uploaded"] == 12
    assert len(list(rd_container(new_reality_data).list_blobs())) == 12
    # Each access refreshed on its own: write access during the upload; read access served the listing.
    assert emulator.request_count(WRITE, status=200) >= 2 and emulator.request_count(READ, status=200) >= 1


def test_mirror_and_watch_with_a_write_sas_without_list_list_through_read_access(cli, emulator, new_reality_data,
                                                                                   rd_container, make_files, tmp_path):
    from tests.support.watch_proc import WatchProcess

    container = rd_container(new_reality_data)
    container.upload_blob("m/extra.txt", b"x")
    src = make_files(tmp_path / "src", {"a.txt": "a", "b/c.txt": "c"})
    mirrored = cli("mirror", src, f"reality-data://{new_reality_data}/m", "--json", "--max-delete", "1")
    assert mirrored.returncode == 0, mirrored
    assert mirrored.summary["uploaded"] == 2 and mirrored.summary["deleted"] == 1
    assert sorted(b.name for b in container.list_blobs()) == ["m/a.txt", "m/b/c.txt"]
    assert emulator.request_count(READ, status=200) == 1 and emulator.request_count(WRITE, status=200) == 1
    with WatchProcess(cli, src, f"reality-data://{new_reality_data}/m", "--json", "--delete") as w:
        w.wait_watching()
        (src / "new.txt").write_text("new")
        w.wait_for(lambda: "m/new.txt" in {b.name for b in container.list_blobs()}, "new.txt")
        w.stop()
    assert w.returncode == 0, w.describe()


def test_a_download_never_asks_for_write_access(cli, emulator, new_reality_data, rd_container, tmp_path):
    rd_container(new_reality_data).upload_blob("d/one.txt", b"1")
    for args in (["download", f"reality-data://{new_reality_data}/d", str(tmp_path / "a")],
                 ["download", f"reality-data://{new_reality_data}/d/one.txt", str(tmp_path / "b") + "/"],
                 ["mirror", f"reality-data://{new_reality_data}/d", str(tmp_path / "c")],
                 ["ls", f"reality-data://{new_reality_data}/d"]):
        result = cli(*args)
        assert result.returncode == 0, result
    assert emulator.request_count(WRITE) == 0 and emulator.request_count(READ, status=200) >= 1
