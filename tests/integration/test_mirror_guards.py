"""README.md, "Mirroring from cron", through the real command: the safety guards (exit 6, --force) and the pair lock
(exit 5, --wait-lock, a lock left by a SIGKILLed holder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.mirror_trees import kill, local_tree, put_blob, remote_state, staged, start, wait_for

pytestmark = pytest.mark.integration

NS = 1_700_000_000_000_000_000


def seed(container, prefix: str, n: int) -> None:
    for i in range(n):
        put_blob(container, f"{prefix}/f{i}.txt", f"file {i}".encode(), NS)


def test_max_delete_refuses_with_exit_6_and_force_overrides(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    seed(container, "g", 4)
    src = make_files(tmp_path / "src", {"f0.txt": "file 0"})  # 3 of 4 would go: 75% > 50%
    before = remote_state(container)

    refused = cli("mirror", src, f"itwin://{listing_itwin}/g", "--json")
    assert refused.returncode == 6, refused
    assert "refusing to delete 3 of 4" in refused.stderr and "--force" in refused.stderr, refused
    assert refused.summary["exit_code"] == 6
    assert remote_state(container) == before, "a refused mirror changes nothing, uploads included"

    count = cli("mirror", src, f"itwin://{listing_itwin}/g", "--max-delete", "2")
    assert count.returncode == 6 and "allows 2" in count.stderr, count
    assert remote_state(container) == before

    allowed = cli("mirror", src, f"itwin://{listing_itwin}/g", "--max-delete", "3", "--json")
    assert allowed.returncode == 0 and allowed.summary["deleted"] == 3, allowed
    assert {b.name for b in container.list_blobs()} == {"g/f0.txt"}


def test_force_overrides_max_delete(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    seed(container, "g", 4)
    src = make_files(tmp_path / "src", {"f0.txt": "file 0"})
    forced = cli("mirror", src, f"itwin://{listing_itwin}/g", "--force", "--json")
    assert forced.returncode == 0 and forced.summary["deleted"] == 3, forced
    assert {b.name for b in container.list_blobs()} == {"g/f0.txt"}


def test_bad_max_delete_is_a_usage_error(cli, listing_itwin, tmp_path):
    run = cli("mirror", tmp_path, f"itwin://{listing_itwin}/g", "--max-delete", "lots")
    assert run.returncode == 2 and "--max-delete" in run.stderr, run


@pytest.mark.parametrize("kind", ["empty", "missing"])
def test_empty_or_missing_source_refuses_upload_mirror(cli, listing_itwin, bucket_container, tmp_path, kind):
    container = bucket_container(listing_itwin)
    seed(container, "e", 2)
    src = tmp_path / "src"
    if kind == "empty":
        src.mkdir()
    before = remote_state(container)
    refused = cli("mirror", src, f"itwin://{listing_itwin}/e")
    assert refused.returncode == 6, refused
    assert "empty or missing source" in refused.stderr, refused
    assert remote_state(container) == before

    forced = cli("mirror", src, f"itwin://{listing_itwin}/e", "--force", "--json")
    assert forced.returncode == 0 and forced.summary["deleted"] == 2, forced
    assert remote_state(container) == {}


def test_empty_remote_source_refuses_download_mirror(cli, listing_itwin, make_files, tmp_path):
    dst = make_files(tmp_path / "dst", {"precious.txt": "do not lose me"})
    before = local_tree(dst)
    refused = cli("mirror", f"itwin://{listing_itwin}/nothing-here", dst)
    assert refused.returncode == 6, refused
    assert local_tree(dst) == before

    no_delete = cli("mirror", f"itwin://{listing_itwin}/nothing-here", dst, "--no-delete", "--force")
    assert no_delete.returncode == 0 and local_tree(dst) == before, no_delete


def test_no_delete_keeps_extras(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    seed(container, "k", 3)
    src = make_files(tmp_path / "src", {"new.txt": "new"})
    run = cli("mirror", src, f"itwin://{listing_itwin}/k", "--no-delete", "--json")
    assert run.returncode == 0 and run.summary["deleted"] == 0 and run.summary["uploaded"] == 1, run
    assert len(list(container.list_blobs())) == 4


# -- locks -----------------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from bucket_sync.app.lock import pair_lock
    from bucket_sync.targets import parse_remote
    local, remote, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with pair_lock(local, parse_remote(remote).describe(), command="test holder"):
        print("held", flush=True)
        time.sleep(hold)
""")


def hold_lock(cli, local, remote: str, seconds: float) -> subprocess.Popen:
    """Another process holding the pair's lock, in the same state directory the CLI uses."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(local), remote, str(seconds)],
                            env={**cli.env_for(), "PYTHONPATH": os.getcwd()}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_mirror_of_the_same_pair_exits_5_at_once(cli, listing_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    remote = f"itwin://{listing_itwin}/l"
    holder = hold_lock(cli, src, remote, 30)
    try:
        started = time.monotonic()
        run = cli("mirror", src, remote, "--json")
        assert run.returncode == 5, run
        assert time.monotonic() - started < 10, "exit 5 at once, no waiting without --wait-lock"
        assert f"pid {holder.pid}" in run.stderr and "--wait-lock" in run.stderr, run
        assert run.summary["exit_code"] == 5

        # The same folder through a different path spelling is the same pair.
        other = cli("mirror", tmp_path / "." / "src", remote + "/")
        assert other.returncode == 5, other
        # A different remote is a different pair: not blocked.
        free = cli("mirror", src, f"itwin://{listing_itwin}/other")
        assert free.returncode == 0, free
    finally:
        holder.kill()
        holder.wait()


def test_wait_lock_waits_for_the_holder_to_finish(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    remote = f"itwin://{listing_itwin}/w"
    holder = hold_lock(cli, src, remote, 2)
    try:
        run = cli("mirror", src, remote, "--wait-lock", "30")
        assert run.returncode == 0, run
        assert holder.poll() is not None, "it ran only once the holder had let go"
        assert [b.name for b in bucket_container(listing_itwin).list_blobs()] == ["w/a.txt"]
    finally:
        holder.kill()
        holder.wait()


def test_lock_left_by_a_sigkilled_run_does_not_block(cli, listing_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    remote = f"itwin://{listing_itwin}/s"
    holder = hold_lock(cli, src, remote, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    locks = list((cli.home / ".local/state/bucket-sync/locks").glob("*.lock"))
    assert locks, "the dead holder's lock file is still there"
    run = cli("mirror", src, remote)
    assert run.returncode == 0, run


def test_two_real_mirrors_of_the_same_pair_one_exits_5_and_a_killed_one_is_taken_over(
        cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"big.bin": 40 * 64 * 1024})
    container = bucket_container(listing_itwin)
    remote = f"itwin://{listing_itwin}/two"
    slow = start(cli, "mirror", src, remote, "--block-size", "64K", "--concurrency", "2", "--bwlimit", "256K")
    try:
        wait_for(lambda: staged(container, "two/big.bin"), slow, "the first mirror was uploading")
        second = cli("mirror", src, remote, "--json")
        assert second.returncode == 5, second
        assert f"pid {slow.pid}" in second.stderr, second
        assert second.summary == {**second.summary, "uploaded": 0, "exit_code": 5}
    finally:
        kill(slow)
    after_kill = cli("mirror", src, remote, "--block-size", "64K", "--json")
    assert after_kill.returncode == 0 and after_kill.summary["uploaded"] == 1, after_kill
