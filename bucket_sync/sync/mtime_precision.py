"""How finely a local filesystem keeps modification times, so that mtimes are compared at the coarser
precision of the two sides (rclone's modify window).

Why: FAT keeps mtimes to 2 s, exFAT and HFS+ to 1 s (exFAT 10 ms where its driver writes them). A download
onto such a disk sets the file's mtime from the blob's nanosecond ``mtime``, the disk rounds it, and without a
window the next run sees "same size, different mtime" for every file: it hashes them all, finds them equal,
sets the mtime again (rounded again), and so on for ever.

How: the destination of a download is probed once per run (a temporary file's mtime is set to an instant no
coarse clock can hold and read back: what stuck tells the granularity). A source being uploaded is never
written to: its filesystem's type is looked up instead where that is cheap (Linux: /proc/self/mountinfo;
Windows: GetVolumeInformationW), and mapped through BY_FS_TYPE. Unknown stays unknown: the fine comparison,
and MD5 whenever mtimes differ, which is slow but never wrong.
"""

from __future__ import annotations

import logging
import os
import uuid

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
FAT_NS = 2 * NS_PER_S
ONE_SECOND_NS = NS_PER_S

# Filesystem type names (Linux mountinfo, Windows volume information, macOS statfs) -> mtime granularity.
BY_FS_TYPE = {
    "vfat": FAT_NS, "msdos": FAT_NS, "fat": FAT_NS, "fat12": FAT_NS, "fat16": FAT_NS, "fat32": FAT_NS,
    "exfat": ONE_SECOND_NS, "hfs": ONE_SECOND_NS, "hfsplus": ONE_SECOND_NS,
}

PROBE_PREFIX = ".bucket-sync-mtime-probe-"  # the scan never takes it for a file of the user's
# An odd second plus 123456789 ns: FAT (even seconds), HFS+ (seconds), exFAT (10 ms) and NTFS (100 ns) each
# keep a different part of it.
_PROBE_NS = 1_700_000_001_123_456_789
_STEPS_NS = (FAT_NS, ONE_SECOND_NS, 100_000_000, 10_000_000, 1_000_000, 1_000, 100)


def granularity(set_ns: int, got_ns: int) -> int | None:
    """The coarsest step that the read-back ``got_ns`` is a multiple of (1 when it kept every nanosecond);
    None when it is not the instant that was set at all (a filesystem that ignores utime)."""
    if got_ns == set_ns:
        return 1
    if abs(got_ns - set_ns) > FAT_NS:
        return None
    for step in _STEPS_NS:
        if got_ns % step == 0:
            return step
    return 1


def probe(folder: str) -> int | None:
    """The mtime granularity (ns) of the filesystem holding ``folder`` (or its nearest existing parent),
    found with a temporary file; None when it cannot be told (nothing there can be written)."""
    where = os.path.abspath(folder)
    while not os.path.isdir(where):
        parent = os.path.dirname(where)
        if parent == where:
            return None
        where = parent
    path = os.path.join(where, f"{PROBE_PREFIX}{uuid.uuid4().hex}")
    try:
        with open(path, "xb"):
            pass
    except OSError:
        return None
    try:
        os.utime(path, ns=(_PROBE_NS, _PROBE_NS))
        return granularity(_PROBE_NS, os.stat(path).st_mtime_ns)
    except OSError:
        return None
    finally:
        try:
            os.remove(path)
        except OSError:
            pass


def fs_type_from_mountinfo(mountinfo: str, path: str) -> str | None:
    """The filesystem type of the mount holding ``path`` (absolute, symlinks resolved), from the text of
    /proc/self/mountinfo: the longest mount point that contains it wins."""
    best, best_type = "", None
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")  # optional fields come before the separator
        fields, after = head.split(), tail.split()
        if not sep or len(fields) < 5 or not after:
            continue
        # The kernel escapes space, tab, newline and backslash in octal.
        mount_point = (fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
                       .replace("\\134", "\\"))
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, after[0]
    return best_type


def fs_type(path: str) -> str | None:
    """The type name of the filesystem holding ``path``, where the platform tells it cheaply, else None."""
    try:
        if os.name == "nt":
            return _windows_fs_type(path)
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            return fs_type_from_mountinfo(f.read(), os.path.realpath(path))
    except OSError:
        return None


def _windows_fs_type(path: str) -> str | None:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    volume = ctypes.create_unicode_buffer(261)
    if not kernel32.GetVolumePathNameW(os.path.abspath(path), volume, len(volume)):
        return None
    name = ctypes.create_unicode_buffer(261)
    if not kernel32.GetVolumeInformationW(volume.value, None, 0, None, None, None, name, len(name)):
        return None
    return name.value or None


def source_precision(paths: list[str]) -> int | None:
    """The coarsest mtime granularity among the filesystems of ``paths`` (upload sources: never written to,
    so known only by their filesystem's type); None when none is known to be coarse."""
    steps = [BY_FS_TYPE.get((fs_type(p) or "").lower()) for p in paths]
    known = [s for s in steps if s]
    return max(known) if known else None


def window_for(granularity_ns: int | None) -> int | None:
    """The modify window a filesystem of this granularity needs (None: the fine default will do)."""
    if granularity_ns is None or granularity_ns <= 1_000:
        return None
    if granularity_ns >= ONE_SECOND_NS:
        log.info("the local filesystem keeps modification times to %g s: comparing them at that precision",
                 granularity_ns / NS_PER_S)
    return granularity_ns
