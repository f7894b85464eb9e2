"""The one mapping between local relative paths and blob names, used by both directions and the guard.

A blob name is ``<prefix>/<key>`` where the key is the relative POSIX path. Names coming from the remote
side are hostile until proven otherwise: :func:`local_path_for` refuses anything that could land outside
the destination folder.
"""

from __future__ import annotations

import os
import unicodedata
import uuid
from pathlib import PurePosixPath

from ..errors import UnsafeBlobNameError

MAX_BLOB_NAME = 1024


def join_blob_name(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def key_from_blob_name(prefix: str, name: str) -> str | None:
    """The key of ``name`` under ``prefix``, or None when the blob is not under it."""
    if not prefix:
        return name
    if name.startswith(prefix + "/"):
        return name[len(prefix) + 1:]
    return None


def key_from_local(rel_path: str) -> str:
    """A relative OS path as a key: always '/'-separated, whatever the OS."""
    return PurePosixPath(*rel_path.split(os.sep)).as_posix() if os.sep != "/" else rel_path


def check_key(key: str) -> None:
    """Raise UnsafeBlobNameError when ``key`` cannot safely be a path below a destination folder."""
    if not key:
        raise UnsafeBlobNameError("empty name")
    if "\x00" in key:
        raise UnsafeBlobNameError("name contains a NUL character")
    if "\\" in key:
        raise UnsafeBlobNameError("name contains a backslash")
    if key.startswith("/"):
        raise UnsafeBlobNameError("name is an absolute path")
    if len(key) > MAX_BLOB_NAME:
        raise UnsafeBlobNameError(f"name longer than {MAX_BLOB_NAME} characters")
    parts = key.split("/")
    if any(p in ("..",) for p in parts):
        raise UnsafeBlobNameError("name contains a '..' segment")
    if any(p in ("", ".") for p in parts):
        raise UnsafeBlobNameError("name contains an empty or '.' segment")
    if len(parts[0]) >= 2 and parts[0][1] == ":":
        raise UnsafeBlobNameError("name starts with a drive letter")


def local_path_for(root: str, key: str) -> str:
    """The local path where ``key`` is written below ``root``, or UnsafeBlobNameError."""
    check_key(key)
    root_abs = os.path.abspath(root)
    target = os.path.abspath(os.path.join(root_abs, *key.split("/")))
    if os.path.commonpath([root_abs, target]) != root_abs or target == root_abs:
        raise UnsafeBlobNameError("name resolves outside the destination folder")
    return target


def fold_key(key: str) -> str:
    """What a case-insensitive (and normalization-insensitive, as on macOS) filesystem compares."""
    return unicodedata.normalize("NFC", key).casefold()


# The probe file below lives for a moment in the destination, which the local scan may be walking at the
# same time (it runs ahead in a thread): the scan must never take it for a file of the user's.
CASE_PROBE_PREFIX = ".bucket-sync-case-probe-"


def is_case_insensitive_dir(path: str) -> bool:
    """Probe the destination (or its nearest existing parent): does a file answer to its upper-case name?

    A probe, not a guess from the OS: Linux can mount case-insensitive filesystems, macOS and Windows can
    have case-sensitive ones. A folder we cannot write to is reported as case-sensitive (nothing will be
    written there anyway)."""
    probe_dir = os.path.abspath(path)
    while not os.path.isdir(probe_dir):
        parent = os.path.dirname(probe_dir)
        if parent == probe_dir:
            return False
        probe_dir = parent
    name = f"{CASE_PROBE_PREFIX}{uuid.uuid4().hex}"
    probe = os.path.join(probe_dir, name)
    try:
        with open(probe, "x"):
            pass
    except OSError:
        return False
    try:
        return os.path.exists(os.path.join(probe_dir, name.upper()))
    finally:
        try:
            os.remove(probe)
        except OSError:
            pass


class CaseClashGuard:
    """Remembers keys by their folded form; a second key that folds the same would overwrite the first
    on a case-insensitive destination, so it is refused (and reported) instead of silently merged."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def knows(self, key: str) -> bool:
        """Whether a remembered key names the same file as ``key`` on a case-insensitive destination."""
        return fold_key(key) in self._seen

    def clash(self, key: str) -> str | None:
        """The earlier key ``key`` collides with, or None (and ``key`` is remembered)."""
        folded = fold_key(key)
        other = self._seen.setdefault(folded, key)
        return other if other != key else None
