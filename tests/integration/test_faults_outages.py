"""Outages: Azurite restarted mid-run, 500/503 bursts from the platform API and IMS, a full disk.

Each run either completes with the right bytes or names the files that failed (exit 1), and the next
run completes.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time

import pytest

from tests.support.cli import parse_json_lines
from tests.support.faultproxy import FaultProxy
from tests.support.integrity import (
    describe_diff,
    final_files,
    local_tree,
    new_container,
    partial_files,
    remote_state,
    write_tree,
)

pytestmark = pytest.mark.integration

KIB = 1024


def tree(seed: int, n_big: int = 4, n_small: int = 6) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {f"big/b{i}.bin": rng.randbytes(rng.randrange(180 * KIB, 260 * KIB)) for i in range(n_big)}
    files.update({f"s{i}.txt": rng.randbytes(rng.randrange(1, 8 * KIB)) for i in range(n_small)})
    return files


def run_with_restart(cli, server, proxy, argv: list[str], after_bytes: int) -> tuple[int, list[dict], str]:
    """Run the real command; once ``after_bytes`` crossed the proxy, restart Azurite."""
    start = proxy.stats.bytes_up + proxy.stats.bytes_down
    proc = subprocess.Popen([str(cli.executable), *argv], env=cli.env_for(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while (proxy.stats.bytes_up + proxy.stats.bytes_down - start < after_bytes and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the restart: the test proves nothing"
    server.restart()  # down for as long as a stop and a start take (~1-2 s)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, parse_json_lines(out.decode()), err.decode()


def test_azurite_restarted_mid_upload_then_mid_download(cli, azurite_factory, tmp_path):
    server = azurite_factory()
    server.create_container("restart")
    container = server.container_client("restart")
    files = tree(11)
    src, dest = tmp_path / "src", tmp_path / "dest"
    write_tree(src, files)
    with FaultProxy(server.port, seed=11) as proxy:
        url = proxy.rewrite(server.container_sas_url("restart"))
        proxy.throttle(600 * KIB)

        code, lines, err = run_with_restart(cli, server, proxy, ["upload", str(src), url, "--block-size", "64K",
                                                                 "--json", "--concurrency", "4"], 200 * KIB)
        assert code in (0, 1), err
        state = remote_state(container)
        assert not state.bad_md5
        assert all(files[k] == v for k, v in state.blobs.items()), "a committed blob differs from its source"
        ok = {e["key"] for e in lines if e.get("event") == "transfer" and e.get("status") == "ok"}
        failed = {e["key"] for e in lines if e.get("event") == "transfer" and e.get("status") == "failed"}
        assert ok | failed == set(files) and not ok & failed, lines  # every file accounted for, exactly once
        assert (code == 1) == bool(failed), lines
        assert ok <= set(state.blobs)

        proxy.throttle(None)
        again = cli("upload", src, url, "--block-size", "64K", "--json")
        assert again.returncode == 0, again
        state = remote_state(container)
        assert state.blobs == files and not state.bad_md5, describe_diff(files, state.blobs)

        proxy.throttle(600 * KIB)
        code, lines, err = run_with_restart(cli, server, proxy, ["download", url, str(dest), "--block-size", "64K",
                                                                 "--json", "--concurrency", "4"], 200 * KIB)
        assert code in (0, 1), err
        got = final_files(local_tree(dest))
        assert all(files[k] == v for k, v in got.items()), "a downloaded file differs from its blob"
        failed = {e["key"] for e in lines if e.get("event") == "transfer" and e.get("status") == "failed"}
        assert set(files) - set(got) <= failed, lines  # whatever is missing was reported
        proxy.throttle(None)
        again = cli("download", url, dest, "--json")
        assert again.returncode == 0, again
        assert final_files(local_tree(dest)) == files and not partial_files(local_tree(dest))


def test_platform_api_and_ims_bursts_are_ridden_out(cli, emulator, new_itwin, bucket_container, tmp_path):
    files = tree(12, n_big=1, n_small=3)
    write_tree(tmp_path / "src", files)
    emulator.inject(r"/connect/token$", 503, times=2, retry_after=0)
    emulator.inject(r"/bucket$", 503, times=2, retry_after=0)
    emulator.inject(r"/bucket$", 500, times=2)

    r = cli("upload", tmp_path / "src", f"itwin://{new_itwin}/p", "--json")

    assert r.returncode == 0, r
    assert emulator.request_count(r"/connect/token$", status=503) == 2
    assert emulator.request_count(r"/bucket$", status=503) == 2
    assert emulator.request_count(r"/bucket$", status=500) == 2
    state = remote_state(bucket_container(new_itwin), "p/")
    assert state.blobs == {f"p/{k}": v for k, v in files.items()} and not state.bad_md5


def test_platform_outage_longer_than_the_retry_budget_fails_clearly(cli, emulator, new_itwin, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    emulator.inject(r"/bucket$", 503, times=None, retry_after=0)

    r = cli("upload", tmp_path / "src", f"itwin://{new_itwin}/p", "--max-retry-wait", "2")

    assert r.returncode == 1, r
    assert "503" in r.stderr and "Traceback" not in r.stderr, r
    assert "gave up" in r.stderr, r


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs (needs root or CAP_SYS_ADMIN), unmounted afterwards."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small filesystem for the disk-full test")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a 2 MiB tmpfs here (needs root / CAP_SYS_ADMIN): {made.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_disk_full_on_download_fails_clearly_and_leaves_no_partial_file(cli, azurite, tiny_disk, tmp_path):
    name = new_container(azurite, "full")
    container = azurite.container_client(name)
    rng = random.Random(13)
    files = {"a-small.txt": rng.randbytes(20 * KIB), "huge.bin": rng.randbytes(3 * 1024 * KIB)}
    for key, data in files.items():
        container.upload_blob(key, data)
    url = azurite.container_sas_url(name)
    dest = tiny_disk / "dest"

    r = cli("download", url, dest, "--json", "--concurrency", "1", "--block-size", "1M")

    assert r.returncode == 1, r
    failed = r.transfers(status="failed")
    assert [e["key"] for e in failed] == ["huge.bin"], r
    assert "disk full" in failed[0]["error"], failed
    assert "Traceback" not in r.stderr
    got = local_tree(dest)
    assert "huge.bin" not in got and not partial_files(got), sorted(got)
    assert final_files(got) == {"a-small.txt": files["a-small.txt"]}

    elsewhere = tmp_path / "roomy"
    shutil.copytree(dest, elsewhere)
    again = cli("download", url, elsewhere, "--json")
    assert again.returncode == 0 and again.summary["downloaded"] == 1, again
    assert final_files(local_tree(elsewhere)) == files
