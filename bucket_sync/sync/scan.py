"""Walk local folders in blob-name order, streaming (memory: one directory's entries per level).

Entries are sorted so that the walk yields keys in plain string order: a folder ``a`` sorts as ``a/``, so
``a.txt`` comes before ``a/b``. That lets the diff walk the scan and the remote listing in one pass.
"""

from __future__ import annotations

import heapq
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from .filters import PathFilter
from .keys import CASE_PROBE_PREFIX, key_from_local
from .model import LocalFile

PARTIAL_SUFFIX = ".bucket-sync-partial"


@dataclass(frozen=True)
class Skipped:
    """A path the scan passed over on purpose (symlink, special file, unreadable folder)."""

    key: str
    why: str


def scan_tree(root: str, *, filters: PathFilter = PathFilter(), follow_symlinks: bool = False,
              on_skip: Callable[[Skipped], None] = lambda s: None, base_key: str = "",
              on_partial: Callable[[str, str], None] | None = None) -> Iterator[LocalFile]:
    """Yield every regular file below ``root`` as a LocalFile, keys relative to ``root`` (plus base_key).

    Our own in-progress downloads (``*.bucket-sync-partial``) are never yielded; ``on_partial(key, path)``
    hears of each, with the key of the file it was becoming.
    """
    root = os.path.abspath(root)
    seen_dirs: set[tuple[int, int]] = set()
    yield from _walk(root, base_key, filters, follow_symlinks, on_skip, seen_dirs, on_partial)


def _walk(path: str, prefix: str, filters: PathFilter, follow: bool, on_skip, seen: set,
          on_partial=None) -> Iterator[LocalFile]:
    try:
        st = os.stat(path)
        seen.add((st.st_dev, st.st_ino))  # guards --follow-symlinks against loops
        with os.scandir(path) as it:
            entries = list(it)
    except OSError as exc:
        on_skip(Skipped(prefix or ".", f"cannot read folder: {exc.strerror or exc}"))
        return
    keyed = []
    for entry in entries:
        if entry.name.endswith(PARTIAL_SUFFIX):
            if on_partial is not None:
                name = entry.name[:-len(PARTIAL_SUFFIX)]
                on_partial(key_from_local(f"{prefix}/{name}" if prefix else name), entry.path)
            continue  # our own in-progress downloads are never a source
        if entry.name.startswith(CASE_PROBE_PREFIX):
            continue  # nor is the case-sensitivity probe (keys.is_case_insensitive_dir)
        key = f"{prefix}/{entry.name}" if prefix else entry.name
        key = key_from_local(key)
        try:
            is_link = entry.is_symlink()
            if is_link and not follow:
                on_skip(Skipped(key, "symbolic link (use --follow-symlinks to follow it)"))
                continue
            st = entry.stat(follow_symlinks=True)
        except OSError as exc:
            on_skip(Skipped(key, f"cannot stat: {exc.strerror or exc}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                on_skip(Skipped(key, "folder loop through a symbolic link"))
                continue
            keyed.append((key + "/", key, entry.path, None))
        elif stat.S_ISREG(st.st_mode):
            if filters.allows(key):
                keyed.append((key, key, entry.path, st))
        else:
            on_skip(Skipped(key, "not a regular file (device, socket or pipe)"))
    keyed.sort(key=lambda t: t[0])
    for sort_key, key, full, st in keyed:
        if st is None:
            yield from _walk(full, key, filters, follow, on_skip, seen, on_partial)
        else:
            yield LocalFile(key=key, path=full, size=st.st_size, mtime_ns=st.st_mtime_ns)


def top_level_folders(root: str) -> list[str]:
    """Names of the folders directly in ``root`` ([] when it cannot be read): hints for the remote listing,
    whose folders usually mirror these."""
    try:
        with os.scandir(root) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def scan_sources(paths: Iterable[str], *, filters: PathFilter = PathFilter(), follow_symlinks: bool = False,
                 on_skip: Callable[[Skipped], None] = lambda s: None) -> Iterator[LocalFile]:
    """The upload sources: a file's key is its base name; a folder's contents keep their relative paths.

    Several sources are merged into one sorted stream.
    """
    streams = []
    for p in paths:
        st = os.stat(p) if follow_symlinks else os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            streams.append(scan_tree(p, filters=filters, follow_symlinks=follow_symlinks, on_skip=on_skip))
        elif stat.S_ISREG(st.st_mode):
            name = os.path.basename(os.path.abspath(p))
            if filters.allows(name):
                streams.append(iter([LocalFile(name, os.path.abspath(p), st.st_size, st.st_mtime_ns)]))
        elif stat.S_ISLNK(st.st_mode):
            on_skip(Skipped(os.path.basename(p), "symbolic link (use --follow-symlinks to follow it)"))
        else:
            on_skip(Skipped(os.path.basename(p), "not a regular file"))
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda f: f.key)
