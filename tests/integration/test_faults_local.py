"""Local files that change, grow, vanish, get replaced or are unreadable while being uploaded.

The upload goes through a throttled proxy (1 MiB in 64 KiB blocks, ~2 s), and the test touches the file
once the first blocks are on the wire. The change is detected (size, mtime or identity changed after
reading), the file is reported as failed with exit 1, nothing mixing old and new bytes is committed, and
the next run uploads the new content.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cli import parse_json_lines
from tests.support.faultproxy import FaultProxy
from tests.support.integrity import new_container, remote_state

pytestmark = pytest.mark.integration

KIB = 1024
SIZE = 1024 * KIB


@pytest.fixture
def slow_link(azurite):
    container = new_container(azurite, "local")
    with FaultProxy(azurite.port, seed=99) as proxy:
        yield proxy, proxy.rewrite(azurite.container_sas_url(container)), azurite.container_client(container)


def upload_while(cli, proxy, url, src: Path, touch) -> tuple[int, list[dict], str]:
    """Run the upload, call ``touch()`` once 200 KiB went up, return (exit code, JSON lines, stderr)."""
    proxy.throttle(512 * KIB, down=False)
    start_bytes = proxy.stats.bytes_up
    proc = subprocess.Popen([str(cli.executable), "upload", str(src), url, "--block-size", "64K", "--json",
                             "--concurrency", "2"], env=cli.env_for(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while proxy.stats.bytes_up - start_bytes < 200 * KIB and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the upload ended before the file could be touched: the test proves nothing"
    touch()
    out, err = proc.communicate(timeout=60)
    proxy.throttle(None)
    return proc.returncode, parse_json_lines(out.decode()), err.decode()


def failed_keys(lines: list[dict]) -> list[str]:
    return [e["key"] for e in lines if e.get("event") == "transfer" and e.get("status") == "failed"]


def errors(lines: list[dict]) -> str:
    return " | ".join(e.get("error") or "" for e in lines if e.get("event") == "transfer")


def overwrite_middle(path: Path) -> None:
    with open(path, "r+b") as fh:  # same size, new bytes in the middle: only the mtime tells
        fh.seek(SIZE // 2)
        fh.write(random.Random(1).randbytes(4 * KIB))


def append(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(b"grown" * 1000)


def replace_by_rename(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(random.Random(2).randbytes(SIZE))
    os.replace(tmp, path)  # how editors save: the old handle still reads the old file


@pytest.mark.parametrize("change, word", [
    (overwrite_middle, "changed"),
    (append, "changed"),
    (replace_by_rename, "replaced"),
])
def test_file_changed_during_upload_is_reported_and_uploaded_next_run(cli, slow_link, tmp_path, change, word):
    proxy, url, container = slow_link
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    big.write_bytes(random.Random(0).randbytes(SIZE))
    (src / "other.txt").write_bytes(b"unaffected")

    code, lines, err = upload_while(cli, proxy, url, src, lambda: change(big))

    assert code == 1, err
    assert failed_keys(lines) == ["big.bin"], lines
    assert word in errors(lines) and "next run" in errors(lines), lines
    state = remote_state(container)
    assert "big.bin" not in state.blobs, "a file that changed while it was read must not be committed"
    assert state.blobs == {"other.txt": b"unaffected"}

    again = cli("upload", src, url, "--block-size", "64K", "--json")
    assert again.returncode == 0, again
    assert [e["key"] for e in again.transfers(status="ok")] == ["big.bin"], again
    state = remote_state(container)
    assert state.blobs["big.bin"] == big.read_bytes() and not state.bad_md5


def test_file_changed_during_overwrite_keeps_the_old_blob_intact(cli, slow_link, tmp_path):
    proxy, url, container = slow_link
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    old = random.Random(5).randbytes(SIZE)
    big.write_bytes(old)
    assert cli("upload", src, url, "--block-size", "64K").returncode == 0
    big.write_bytes(random.Random(6).randbytes(SIZE))  # a new version, then changed again mid-upload

    code, lines, _ = upload_while(cli, proxy, url, src, lambda: overwrite_middle(big))

    assert code == 1 and failed_keys(lines) == ["big.bin"], lines
    state = remote_state(container)
    assert state.blobs["big.bin"] == old and not state.bad_md5, "the committed blob must stay the old, whole one"
    assert cli("upload", src, url, "--block-size", "64K").returncode == 0
    assert remote_state(container).blobs["big.bin"] == big.read_bytes()


def test_file_vanishing_during_upload_is_reported_not_uploaded(cli, slow_link, tmp_path):
    proxy, url, container = slow_link
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    big.write_bytes(random.Random(3).randbytes(SIZE))
    (src / "keep.txt").write_bytes(b"keep")

    code, lines, _ = upload_while(cli, proxy, url, src, big.unlink)

    assert code == 1 and failed_keys(lines) == ["big.bin"], lines
    assert "vanished" in errors(lines)
    assert remote_state(container).blobs == {"keep.txt": b"keep"}
    again = cli("upload", src, url, "--json")
    assert again.returncode == 0 and again.summary["failed"] == 0, again


def as_ordinary_user() -> list[str]:
    """A command prefix under which a mode-000 file is unreadable: root bypasses file modes through
    CAP_DAC_OVERRIDE, so root runs the command with that capability dropped."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a mode-000 file stays readable, nothing to test")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_unreadable_file_is_reported_and_the_rest_uploaded(cli, slow_link, tmp_path):
    proxy, url, container = slow_link
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret.bin").write_bytes(b"no access")
    (src / "secret.bin").chmod(0o000)
    (src / "open.txt").write_bytes(b"readable")

    proc = subprocess.run([*as_ordinary_user(), str(cli.executable), "upload", str(src), url, "--json"],
                          env=cli.env_for(), capture_output=True, timeout=60)
    lines = parse_json_lines(proc.stdout.decode())

    assert proc.returncode == 1, proc.stderr.decode()
    assert failed_keys(lines) == ["secret.bin"], lines
    assert "permission denied" in errors(lines), lines
    assert remote_state(container).blobs == {"open.txt": b"readable"}
    (src / "secret.bin").chmod(0o644)
    again = cli("upload", src, url, "--json")
    assert again.returncode == 0 and [e["key"] for e in again.transfers(status="ok")] == ["secret.bin"], again
