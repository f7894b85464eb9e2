"""README.md, "Mirroring from cron", through the real command: a mirror SIGKILLed mid-file picks up where it stopped.

The kill comes once the run is visibly mid-file (blocks staged, or a partial file written); --bwlimit keeps
the transfer slow enough to catch it there, on any machine.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from bucket_sync.sync.scan import PARTIAL_SUFFIX
from tests.support.mirror_trees import kill, put_blob, staged, start, wait_for

pytestmark = pytest.mark.integration

BLOCK = 64 * 1024
SIZE = 40 * BLOCK  # 2.5 MiB: 40 blocks of 64 KiB
SLOW = ["--block-size", "64K", "--concurrency", "2", "--bwlimit", "256K"]  # ~10 s for the whole file


def test_upload_killed_mid_file_resumes_from_the_staged_blocks(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"big.bin": SIZE, "small.txt": "small"})
    container = bucket_container(listing_itwin)
    remote = f"itwin://{listing_itwin}/r"

    proc = start(cli, "mirror", src, remote, *SLOW)
    wait_for(lambda: len(staged(container, "r/big.bin")) >= 4, proc, "blocks were staged")
    kill(proc)
    left = staged(container, "r/big.bin")
    assert 4 <= len(left) < SIZE // BLOCK, "killed mid-file"
    assert "r/big.bin" not in {b.name for b in container.list_blobs()}, "nothing committed yet"

    run = cli("mirror", src, remote, "--block-size", "64K", "--json")
    assert run.returncode == 0, run
    expected_sent = SIZE - sum(left.values())
    assert run.transfers(op="upload", key="r/big.bin", status="ok"), run
    small_sent = len("small") if run.transfers(op="upload", key="r/small.txt", status="ok") else 0  # maybe sent before the kill
    # the summary counts bytes that crossed the wire: the staged blocks were committed, not sent again
    assert run.summary["bytes"] == expected_sent + small_sent, run
    assert run.summary["bytes"] < SIZE
    data = container.download_blob("r/big.bin").readall()
    assert hashlib.md5(data).digest() == hashlib.md5((src / "big.bin").read_bytes()).digest()
    props = container.get_blob_client("r/big.bin").get_blob_properties()
    assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()


def test_upload_of_a_file_changed_since_the_kill_starts_over(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"big.bin": SIZE})
    container = bucket_container(listing_itwin)
    remote = f"itwin://{listing_itwin}/c"

    proc = start(cli, "mirror", src, remote, *SLOW)
    wait_for(lambda: len(staged(container, "c/big.bin")) >= 4, proc, "blocks were staged")
    kill(proc)
    new_content = os.urandom(SIZE)  # same size, new content and mtime: the staged blocks are stale
    (src / "big.bin").write_bytes(new_content)
    os.utime(src / "big.bin", ns=(1_800_000_000_000_000_000, 1_800_000_000_000_000_000))

    run = cli("mirror", src, remote, "--block-size", "64K", "--json")
    assert run.returncode == 0, run
    assert run.summary["bytes"] == SIZE, "nothing of the old staged blocks may be reused"
    assert container.download_blob("c/big.bin").readall() == new_content


def test_download_killed_mid_file_leaves_no_truncated_file_and_the_next_run_completes(
        cli, listing_itwin, bucket_container, tmp_path):
    container = bucket_container(listing_itwin)
    data = os.urandom(SIZE)
    put_blob(container, "d/big.bin", data, 1_700_000_000_000_000_000)
    put_blob(container, "d/other.txt", b"other", 1_700_000_000_000_000_000)
    dst = tmp_path / "dst"
    final, partial = dst / "big.bin", Path(str(dst / "big.bin") + PARTIAL_SUFFIX)

    proc = start(cli, "mirror", f"itwin://{listing_itwin}/d", dst, *SLOW)
    wait_for(partial.exists, proc, "the partial file appeared")
    time.sleep(0.5)
    kill(proc)
    assert not final.exists(), "a killed download never leaves a file under the final name"

    run = cli("mirror", f"itwin://{listing_itwin}/d", dst, "--json")
    assert run.returncode == 0, run
    assert final.read_bytes() == data
    assert not partial.exists(), "the partial file was completed and renamed"
    assert sorted(p.name for p in dst.iterdir()) == ["big.bin", "other.txt"]
