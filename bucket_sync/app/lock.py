"""One mirror or watch at a time per (absolute local folder, remote) pair.

A ``filelock.FileLock`` on ``<state>/locks/<digest>.lock``: ``flock`` on Unix, ``LockFileEx`` on Windows,
both dropped by the operating system when the holder dies, however it dies (SIGKILL, a closed console
window), so a stale lock can never block the next cron run. (Where neither exists, filelock falls back
to a marker file with the holder's pid, which the next run reclaims once that pid is gone.)

The holder's pid and command line go into a sibling ``<digest>.holder`` file, for the "held by" message
only: on Windows the locked byte of the lock file cannot be read by anyone else.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..config import ensure_private_dir, user_state_dir
from ..errors import LockHeldError
from ..private_files import private_lock


def lock_path(local_dir: str, remote_id: str, state_dir: Path | None = None) -> Path:
    pair = f"{os.path.realpath(os.path.abspath(local_dir))}\n{remote_id}"
    digest = hashlib.sha256(pair.encode()).hexdigest()[:24]
    return (state_dir or user_state_dir()) / "locks" / f"{digest}.lock"


def holder_path(path: Path) -> Path:
    return path.with_suffix(".holder")


@contextmanager
def pair_lock(local_dir: str, remote_id: str, *, wait_s: float = 0.0, command: str = "",
              state_dir: Path | None = None, poll_s: float = 0.2) -> Iterator[Path]:
    """Hold the pair's lock for the ``with`` body; LockHeldError (exit 5) if another run holds it
    after ``wait_s`` seconds; UsageError (exit 2) if the state folder cannot be written. ``remote_id``
    must not contain a secret (use the target's describe())."""
    from filelock import Timeout  # only mirror and watch lock: other commands skip the import

    path = lock_path(local_dir, remote_id, state_dir)
    # The state folder also holds the saved sign-in: whoever creates it first makes it private.
    ensure_private_dir(path.parent.parent)
    ensure_private_dir(path.parent)
    lock = private_lock(path)  # the run's, whichever thread ends it
    try:
        lock.acquire(timeout=max(0.0, wait_s), poll_interval=poll_s)
    except Timeout:
        raise LockHeldError(
            f"another bucket-sync run holds the lock for {local_dir} <-> {remote_id}{_holder(path)}",
            hint="wait for it to finish, or pass --wait-lock SECONDS to wait",
        ) from None
    try:
        _write_holder(path, command)
        yield path
    finally:
        try:  # before the release: once released, the file may already be the next holder's
            holder_path(path).unlink()
        except OSError:
            pass
        lock.release()


def _write_holder(path: Path, command: str) -> None:
    """Best effort: a missing holder file only makes the "held by" message shorter."""
    info = json.dumps({"pid": os.getpid(), "command": command, "since": time.time()})
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    try:
        tmp.write_text(info, encoding="utf-8")
        os.replace(tmp, holder_path(path))  # whole or not at all for a reader
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def _holder(path: Path) -> str:
    try:
        info = json.loads(holder_path(path).read_text(encoding="utf-8") or "{}")
        return f" (pid {info['pid']})" if "pid" in info else ""
    except (OSError, ValueError, KeyError, TypeError):
        return ""
