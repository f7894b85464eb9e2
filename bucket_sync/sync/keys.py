"""The one mapping between local relative paths and blob names, used by both directions and the guard.

A blob name is ``<prefix>/<key>`` where the key is the relative POSIX path. Names coming from the remote
side are hostile until proven otherwise: :func:`local_path_for` refuses anything that could land outside
the destination folder.

Where local names follow Windows' rules (on Windows; elsewhere with ``BUCKET_SYNC_LOCAL_ENCODING=windows``,
for a FAT/exFAT/NTFS/SMB mount, and for the tests), each segment is mapped through winnames.py: what
Windows cannot hold becomes a look-alike on the way down and is read back on the way up. Every rule of
path <-> name is here; the scan, the downloader and the watcher only call these functions.
"""

from __future__ import annotations

import os
import unicodedata
import uuid
from pathlib import PurePosixPath

from ..errors import UnsafeBlobNameError, UsageError
from . import winnames

MAX_BLOB_NAME = 1024

# rclone's --local-encoding, reduced to the one choice that matters: "windows" maps names as on Windows
# wherever bucket-sync runs; "auto" (the default) does so on Windows only. Nothing turns it off on Windows:
# unmapped, "a:b" would become an alternate data stream.
LOCAL_ENCODING_ENV = "BUCKET_SYNC_LOCAL_ENCODING"


def join_blob_name(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def key_from_blob_name(prefix: str, name: str) -> str | None:
    """The key of ``name`` under ``prefix``, or None when the blob is not under it."""
    if not prefix:
        return name
    if name.startswith(prefix + "/"):
        return name[len(prefix) + 1:]
    return None


class LocalNames:
    """How local file names and key segments map onto each other: as they are (POSIX), or through the
    Windows table (winnames.py). One instance per run is enough: :func:`local_names` picks it."""

    windows = False

    def segment_key(self, name: str) -> str:
        """The key segment a local file name stands for (UnsafeBlobNameError when none can)."""
        return name

    def segment_name(self, segment: str) -> str:
        """The local file name for one key segment."""
        return segment

    def child_key(self, parent_key: str, name: str) -> str:
        """The key of the entry ``name`` in the folder whose key is ``parent_key`` ("" for the root)."""
        segment = self.segment_key(name)
        return f"{parent_key}/{segment}" if parent_key else segment

    def key_from_local(self, rel_path: str) -> str:
        """A relative OS path as a key: always '/'-separated, whatever the OS."""
        return PurePosixPath(*rel_path.split(os.sep)).as_posix() if os.sep != "/" else rel_path

    def local_relpath(self, key: str) -> list[str]:
        """The local names of ``key``'s segments, in order."""
        return key.split("/")


class WindowsNames(LocalNames):
    windows = True

    def segment_key(self, name: str) -> str:
        segment = winnames.decode_name(name)
        if winnames.encode_name(segment) != name:
            # Only on a filesystem that holds what Windows cannot (a POSIX one, with the mapping forced):
            # "a:b" and "a：b" would both claim the blob "a:b", so neither may (reported, never merged).
            problem = winnames.windows_problem(name) or "is not in the Windows name mapping"
            raise UnsafeBlobNameError(
                f"{name!r} {problem}, which no Windows file name can, and with Windows names "
                f"{winnames.encode_name(segment)!r} stands for the same blob name: rename it")
        if segment in (".", ".."):
            raise UnsafeBlobNameError(f"the name stands for the blob name segment {segment!r}")
        return segment

    def segment_name(self, segment: str) -> str:
        return winnames.encode_name(segment)

    def key_from_local(self, rel_path: str) -> str:
        parts = rel_path.replace(os.altsep, os.sep).split(os.sep) if os.altsep else rel_path.split(os.sep)
        return "/".join(self.segment_key(p) for p in parts)

    def local_relpath(self, key: str) -> list[str]:
        return [winnames.encode_name(s) for s in key.split("/")]


POSIX_NAMES = LocalNames()
WINDOWS_NAMES = WindowsNames()


def local_names() -> LocalNames:
    """The rules for this run: Windows' on Windows or with ``BUCKET_SYNC_LOCAL_ENCODING=windows``."""
    if os.name == "nt":
        return WINDOWS_NAMES
    value = os.environ.get(LOCAL_ENCODING_ENV, "").strip().lower()
    if value in ("", "auto"):
        return POSIX_NAMES
    if value == "windows":
        return WINDOWS_NAMES
    raise UsageError(f"{LOCAL_ENCODING_ENV}={value!r} is not understood",
                     hint="use windows (map names as on Windows, see README) or auto (the default)")


def key_from_local(rel_path: str) -> str:
    """A relative OS path as a key: always '/'-separated, whatever the OS; with Windows names, each
    look-alike read back as the character it stands for (UnsafeBlobNameError when none can be)."""
    return local_names().key_from_local(rel_path)


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
    if len(parts[0]) >= 2 and parts[0][1] == ":" and not local_names().windows:
        # "C:x" is a drive-relative path for Windows' file API. With Windows names the colon is written
        # as its look-alike, so such a blob is safe there (and reads back as itself).
        raise UnsafeBlobNameError("name starts with a drive letter")


def local_path_for(root: str, key: str) -> str:
    """The local path where ``key`` is written below ``root``, or UnsafeBlobNameError. On Windows, a path
    too long for the classic file API comes in its ``\\\\?\\`` form (winnames.extended_path)."""
    check_key(key)
    root_abs = os.path.abspath(root)
    target = os.path.abspath(os.path.join(root_abs, *local_names().local_relpath(key)))
    if os.path.commonpath([root_abs, target]) != root_abs or target == root_abs:
        raise UnsafeBlobNameError("name resolves outside the destination folder")
    return winnames.long_path_if_needed(target) if os.name == "nt" else target


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
    """Remembers keys by the folded form of the local path they are written to; a second key that folds
    the same would overwrite the first on a case-insensitive destination, so it is refused (and reported)
    instead of silently merged."""

    def __init__(self, names: LocalNames | None = None) -> None:
        self._seen: dict[str, str] = {}
        self._names = names or local_names()

    def _fold(self, key: str) -> str:
        return fold_key("/".join(self._names.local_relpath(key))) if self._names.windows else fold_key(key)

    def knows(self, key: str) -> bool:
        """Whether a remembered key names the same file as ``key`` on a case-insensitive destination."""
        return self._fold(key) in self._seen

    def clash(self, key: str) -> str | None:
        """The earlier key ``key`` collides with, or None (and ``key`` is remembered)."""
        other = self._seen.setdefault(self._fold(key), key)
        return other if other != key else None
