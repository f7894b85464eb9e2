"""Files only this user may read (the saved sign-in, the SAS cache, the listing cache) and the locks beside
them: written whole or not at all, and never readable by others, not even for a moment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import FileLock


def write_private(path: Path, data: bytes, *, prefix: str, suffix: str = ".tmp", durable: bool = False) -> None:
    """Replace ``path`` with ``data``: a reader sees the old file or the new one, never a part (a temp file
    beside it, renamed over it). mkstemp creates the temp file with mode 0600 from the start. ``durable``:
    on disk before the rename (a sign-in must survive a crash); ``prefix`` and ``suffix`` name the temp file,
    so a prune that knows its folder's names removes one left by a crash. OSError on failure, the temp file
    removed."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def private_lock(path: Path) -> "FileLock":
    """An exclusive lock on the file ``path`` (mode 0600): flock on Unix, LockFileEx on Windows, both released
    by the operating system if this process dies. It belongs to the run, not to the thread that took it."""
    from filelock import FileLock  # only the commands that lock need it

    return FileLock(str(path), mode=0o600, thread_local=False)
