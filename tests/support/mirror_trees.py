"""Shared by the mirror tests: exact snapshots of a local tree and of a remote prefix, and a mirror run in
the background that a test can watch and SIGKILL."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bucket_sync.sync.mtime import format_mtime, parse_mtime


def local_tree(root: Path) -> dict[str, tuple[str, int]]:
    """relative POSIX path -> (md5 hex, mtime_ns) of every regular file (partial files included: a test
    that expects none must see them)."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = (hashlib.md5(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return out


def remote_tree(container, prefix: str) -> dict[str, tuple[str, int | None]]:
    """key under ``prefix`` -> (md5 hex of the downloaded content, mtime_ns from the `mtime` metadata)."""
    out = {}
    start = prefix.rstrip("/") + "/"
    for blob in container.list_blobs(name_starts_with=start, include=["metadata"]):
        data = container.download_blob(blob.name).readall()
        mtime = parse_mtime((blob.metadata or {}).get("mtime"))
        out[blob.name[len(start):]] = (hashlib.md5(data).hexdigest(), mtime)
    return out


def remote_state(container) -> dict[str, str]:
    """Every blob name in the container -> its ETag: any write or delete changes it."""
    return {b.name: b.etag for b in container.list_blobs()}


def put_blob(container, name: str, data: bytes, mtime_ns: int) -> None:
    container.upload_blob(name, data, overwrite=True, metadata={"mtime": format_mtime(mtime_ns)})


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def start(cli, *args) -> subprocess.Popen:
    return subprocess.Popen([str(cli.executable), *map(str, args)], env=cli.env_for(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def staged(container, name: str) -> dict[str, int]:
    try:
        _, uncommitted = container.get_blob_client(name).get_block_list("uncommitted")
    except Exception:  # noqa: BLE001 - no blob and no blocks yet
        return {}
    return {b.id: b.size for b in uncommitted}
