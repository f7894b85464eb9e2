"""One mirror or watch at a time per (absolute local folder, remote) pair.

An advisory ``flock`` on a file in the user's state directory: the kernel drops it when the holder dies,
however it dies (SIGKILL included), so a stale lock can never block the next cron run. The file keeps the
holder's pid and command line for the "held by" message, nothing more.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..config import user_state_dir
from ..errors import LockHeldError


def lock_path(local_dir: str, remote_id: str, state_dir: Path | None = None) -> Path:
    pair = f"{os.path.realpath(os.path.abspath(local_dir))}\n{remote_id}"
    digest = hashlib.sha256(pair.encode()).hexdigest()[:24]
    return (state_dir or user_state_dir()) / "locks" / f"{digest}.lock"


@contextmanager
def pair_lock(local_dir: str, remote_id: str, *, wait_s: float = 0.0, command: str = "",
              state_dir: Path | None = None, poll_s: float = 0.2) -> Iterator[Path]:
    """Hold the pair's lock for the ``with`` body; LockHeldError (exit 5) if another run holds it
    after ``wait_s`` seconds. ``remote_id`` must not contain a secret (use the target's describe())."""
    path = lock_path(local_dir, remote_id, state_dir)
    # The state folder also holds the saved sign-in: whoever creates it first makes it private.
    path.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.mkdir(exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeldError(
                        f"another bucket-sync run holds the lock for {local_dir} <-> {remote_id}{_holder(path)}",
                        hint="wait for it to finish, or pass --wait-lock SECONDS to wait",
                    ) from None
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode())
        yield path
    finally:
        os.close(fd)  # closing releases the flock


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        return f" (pid {info['pid']})" if "pid" in info else ""
    except (OSError, ValueError, KeyError):
        return ""
