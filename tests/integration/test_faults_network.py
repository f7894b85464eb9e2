"""Network faults between bucket-sync and storage, injected by a loopback proxy in front of Azurite.

Connections reset mid-block, mid-download and mid-listing, a slow link, and 500/503 bursts: every run
either completes with the right bytes (checked with MD5 on both sides, independently of bucket-sync) or
names exactly the files that failed, with exit 1; the next run completes.
"""

from __future__ import annotations

import random

import pytest

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
BLOCK = "64K"  # the smallest block size: many blocks from little data


@pytest.fixture
def link(azurite):
    """(proxy, SAS URL through the proxy, ContainerClient with the account key) for a fresh container."""
    container = new_container(azurite)
    with FaultProxy(azurite.port, seed=1234) as proxy:
        yield proxy, proxy.rewrite(azurite.container_sas_url(container)), azurite.container_client(container)


def sample_tree(seed: int, big: int = 3, small: int = 4, big_size: int = 200 * KIB) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {f"big/b{i}.bin": rng.randbytes(big_size + rng.randrange(0, 9000)) for i in range(big)}
    files.update({f"small/s{i}.txt": rng.randbytes(rng.randrange(1, 12 * KIB)) for i in range(small)})
    return files


def assert_remote_equals(container, files: dict[str, bytes]) -> None:
    state = remote_state(container)
    assert not state.bad_md5, f"blobs whose bytes do not match their Content-MD5: {state.bad_md5}"
    assert not state.no_md5, f"blobs without Content-MD5: {state.no_md5}"
    assert state.blobs == files, describe_diff(files, state.blobs)


def assert_local_equals(root, files: dict[str, bytes]) -> None:
    tree = local_tree(root)
    assert not partial_files(tree), f"partial downloads left behind: {partial_files(tree)}"
    assert final_files(tree) == files, describe_diff(files, final_files(tree))


def seed_container(container, files: dict[str, bytes]) -> None:
    """Blobs written with the SDK (Azurite computes Content-MD5 for a single Put Blob)."""
    for name, data in files.items():
        container.upload_blob(name, data, overwrite=True)


def test_connection_resets_mid_block_and_mid_put_upload_completes(cli, link, tmp_path):
    proxy, url, container = link
    src = tmp_path / "src"
    files = sample_tree(1)
    write_tree(src, files)
    # RST after a seeded number of body bytes: inside Put Block requests, and inside single Put Blobs.
    blocks = proxy.reset_request_after((2_000, 60_000), match=r"comp=block(&|$)", method="PUT", times=4)
    puts = proxy.reset_request_after((100, 1_000), match=r"^PUT (?!.*comp=)", times=2)

    r = cli("upload", src, url, "--block-size", BLOCK, "--json")

    assert r.returncode == 0, r
    assert blocks.fired == 4 and puts.fired == 2, "every injected reset must have hit a request"
    assert r.summary["uploaded"] == len(files) and r.summary["failed"] == 0, r
    assert_remote_equals(container, files)
    again = cli("upload", src, url, "--block-size", BLOCK, "--json")
    assert again.returncode == 0 and again.summary["uploaded"] == 0 and again.summary["skipped"] == len(files), again


def test_connection_resets_mid_download_and_mid_listing_download_completes(cli, link, tmp_path):
    proxy, url, container = link
    files = sample_tree(2, big=3, small=40)
    seed_container(container, files)
    listing = proxy.reset_response_after((300, 8_000), match=r"comp=list", method="GET", times=2)
    bodies = proxy.reset_response_after((1_000, 60_000), match=r"^GET /[^?]*/big/(?!.*comp=)", method="GET", times=3)
    dest = tmp_path / "dest"

    r = cli("download", url, dest, "--block-size", BLOCK, "--json")

    assert r.returncode == 0, r
    assert listing.fired == 2 and bodies.fired == 3
    assert "Unable to stream download" not in r.stderr, "retried faults need no context-free SDK warnings"
    assert r.summary["downloaded"] == len(files), r
    assert_local_equals(dest, files)
    again = cli("download", url, dest, "--json")
    assert again.returncode == 0 and again.summary["downloaded"] == 0, again


def test_storage_500_and_503_bursts_are_ridden_out(cli, link, tmp_path):
    proxy, url, container = link
    src = tmp_path / "src"
    files = sample_tree(3)
    write_tree(src, files)
    rules = [
        proxy.fail_requests(3, status=503, method="PUT", retry_after=0),
        proxy.fail_requests(2, status=500, match=r"comp=block(&|$)"),
        proxy.fail_requests(2, status=503, match=r"comp=list"),
        proxy.fail_requests(1, status=500, match=r"comp=blocklist", method="PUT"),
    ]
    up = cli("upload", src, url, "--block-size", BLOCK, "--json")
    assert up.returncode == 0, up
    assert [rule.fired for rule in rules] == [3, 2, 2, 1]
    assert_remote_equals(container, files)

    gets = proxy.fail_requests(4, status=503, method="GET", retry_after=0)
    dest = tmp_path / "dest"
    down = cli("download", url, dest, "--block-size", BLOCK, "--json")
    assert down.returncode == 0, down
    assert gets.fired == 4
    assert_local_equals(dest, files)


def test_persistent_storage_failure_names_exactly_the_failed_file_and_next_run_completes(cli, link, tmp_path):
    proxy, url, container = link
    src = tmp_path / "src"
    files = sample_tree(4)
    files["doomed.bin"] = random.Random(4).randbytes(150 * KIB)  # blocks: every Put Block fails
    write_tree(src, files)
    proxy.fail_requests(None, status=503, match=r"/doomed\.bin\?", retry_after=0)  # until cleared

    r = cli("upload", src, url, "--block-size", BLOCK, "--json")

    assert r.returncode == 1, r
    failed = r.transfers(status="failed")
    assert [e["key"] for e in failed] == ["doomed.bin"], r
    assert "503" in failed[0]["error"] or "ServerBusy" in failed[0]["error"], failed
    assert r.summary["failed"] == 1 and r.summary["uploaded"] == len(files) - 1, r
    assert "doomed.bin" in r.stderr or "doomed.bin" in r.stdout
    state = remote_state(container)
    assert "doomed.bin" not in state.blobs and not state.bad_md5

    proxy.clear()
    again = cli("upload", src, url, "--block-size", BLOCK, "--json")
    assert again.returncode == 0, again
    assert [e["key"] for e in again.transfers(status="ok")] == ["doomed.bin"], again
    assert_remote_equals(container, files)


def test_persistent_read_failure_leaves_no_file_under_the_final_name(cli, link, tmp_path):
    proxy, url, container = link
    files = sample_tree(5, big=2, small=3)
    seed_container(container, files)
    proxy.fail_requests(None, status=500, match=r"^GET /[^?]*/big/b1\.bin\?", retry_after=0)
    dest = tmp_path / "dest"

    r = cli("download", url, dest, "--block-size", BLOCK, "--json")

    assert r.returncode == 1, r
    assert [e["key"] for e in r.transfers(status="failed")] == ["big/b1.bin"], r
    tree = local_tree(dest)
    assert "big/b1.bin" not in tree and not partial_files(tree), sorted(tree)
    assert final_files(tree) == {k: v for k, v in files.items() if k != "big/b1.bin"}

    proxy.clear()
    again = cli("download", url, dest, "--block-size", BLOCK, "--json")
    assert again.returncode == 0 and again.summary["downloaded"] == 1, again
    assert_local_equals(dest, files)


def test_slow_link_with_a_reset_still_delivers_exact_bytes(cli, link, tmp_path):
    proxy, url, container = link
    src = tmp_path / "src"
    files = sample_tree(6, big=2, small=2, big_size=160 * KIB)
    write_tree(src, files)
    proxy.throttle(400 * KIB)  # ~0.9 s for the data each way
    proxy.reset_request_after((10_000, 50_000), match=r"comp=block(&|$)")

    up = cli("upload", src, url, "--block-size", BLOCK, "--json", "--concurrency", "2")
    assert up.returncode == 0, up
    proxy.reset_response_after((10_000, 50_000), match=r"^GET /[^?]*/big/(?!.*comp=)")
    dest = tmp_path / "dest"
    down = cli("download", url, dest, "--block-size", BLOCK, "--json", "--concurrency", "2")
    assert down.returncode == 0, down
    assert proxy.stats.faults_injected == 2
    assert_remote_equals(container, files)
    assert_local_equals(dest, files)
