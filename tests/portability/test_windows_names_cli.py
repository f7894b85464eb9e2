"""README.md, "Windows, macOS and Linux", through the real command: blob names Windows cannot hold, downloaded with
Windows names (forced here with BUCKET_SYNC_LOCAL_ENCODING=windows, as on a Windows machine), come back as the same
blobs: upload -> download -> upload changes nothing, nothing becomes an alternate data stream or a device, and a local
name that could be confused with another is reported, never merged. (Control characters are mapped too, see the unit
tests; Azurite cannot list a blob whose name holds one: its XML answer is a 500.)"""

from __future__ import annotations

import os

import pytest

from bucket_sync.sync.winnames import windows_problem

pytestmark = pytest.mark.integration

WINDOWS = {"BUCKET_SYNC_LOCAL_ENCODING": "windows"}
BLOBS = {
    "survey/12:30 scan?.las": b"colon and question mark",
    "survey/<draft>|v2*.txt": b"angle brackets, pipe, star",
    'notes/"quoted".md': b"double quotes",
    "notes/ends with a dot.": b"trailing dot",
    "notes/ends with a space ": b"trailing space",
    "devices/CON": b"con",
    "devices/nul.txt": b"nul with an extension",
    "devices/Com1.tar.gz": b"com1",
    "AUX/inside.txt": b"a folder named like a device",
    "already/full：width.txt": b"a look-alike in the blob name itself",
    "plain/ok.txt": b"nothing to map",
}
ON_DISK = {  # what a Windows user sees in Explorer
    "survey/12：30 scan？.las", "survey/＜draft＞｜v2＊.txt", "notes/＂quoted＂.md", "notes/ends with a dot．",
    "notes/ends with a space␠", "devices/ＣON", "devices/ｎul.txt", "devices/Ｃom1.tar.gz",
    "ＡUX/inside.txt", "already/full‛：width.txt", "plain/ok.txt",
}


def blobs(container) -> dict[str, bytes]:
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def test_upload_download_upload_changes_nothing(cli, sas_url, tmp_path):
    url, container = sas_url
    for name, data in BLOBS.items():
        container.upload_blob(name, data)

    dest = tmp_path / "windows-disk"
    down = cli("download", url, dest, "--json", env=WINDOWS)
    assert down.returncode == 0 and down.summary["downloaded"] == len(BLOBS), down
    on_disk = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert set(on_disk) == ON_DISK, sorted(on_disk)
    assert all(windows_problem(part) is None for rel in on_disk for part in rel.split("/")), sorted(on_disk)
    assert sorted(on_disk.values()) == sorted(BLOBS.values()), "every byte, under its look-alike name"
    assert {e["key"] for e in down.transfers(status="ok")} == set(BLOBS), "events name the blobs, not the files"

    # Back up: every file is the blob it came from (same size and mtime), so nothing is sent or renamed.
    up = cli("upload", dest, url, "--json", "-v", env=WINDOWS)
    assert up.returncode == 0, up
    assert up.summary["uploaded"] == 0 and up.summary["skipped"] == len(BLOBS), up
    assert blobs(container) == BLOBS

    # A mirror down into the same folder: nothing to fetch, nothing taken for an extra.
    again = cli("mirror", url, dest, "--json", env=WINDOWS)
    assert again.returncode == 0, again
    assert again.summary["downloaded"] == 0 and again.summary["deleted"] == 0, again

    # A mirror up from it into a fresh prefix makes the same names there.
    fresh = url.replace("?", "/copy?", 1)
    copied = cli("mirror", dest, fresh, "--json", env=WINDOWS)
    assert copied.returncode == 0 and copied.summary["uploaded"] == len(BLOBS), copied
    assert {n for n in blobs(container) if n.startswith("copy/")} == {f"copy/{n}" for n in BLOBS}


@pytest.mark.skipif(os.name == "nt", reason="a Windows disk cannot hold 'a:b.txt': nothing to confuse there")
def test_a_name_that_two_files_could_claim_is_reported_not_merged(cli, sas_url, make_files, tmp_path):
    """Only where the disk holds what Windows cannot (here, with the mapping forced on Linux): 'a:b.txt' and
    'a：b.txt' would both be the blob 'a:b.txt'."""
    url, container = sas_url
    src = make_files(tmp_path / "src", {"a：b.txt": b"the look-alike", "a:b.txt": b"the raw colon"})
    up = cli("upload", src, url, "--json", env=WINDOWS)
    assert up.returncode == 0, up
    assert blobs(container) == {"a:b.txt": b"the look-alike"}
    skipped = up.transfers(status="skipped")
    assert [e["key"] for e in skipped] == ["a:b.txt"] and "rename it" in skipped[0]["error"], up
