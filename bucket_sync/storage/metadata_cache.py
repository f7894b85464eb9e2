"""Blob metadata remembered between runs, keyed by (name, ETag): lets a listing leave out the metadata.

Why: a no-op mirror is all listing, and the blobs' metadata (our ``mtime``) is a tenth of what the listing
costs the service (Azurite: 1.37 s of CPU for 20,000 blobs without, 1.5 s with). A blob's ETag changes with
every write of its content, properties or metadata, so "blob N with ETag E has mtime M" never goes stale:
a blob whose ETag is not in the cache is looked up again (listing.py decides how), and nothing is trusted
that the service did not say about that exact version of the blob.

One small file per listed folder, so memory follows the folders being listed, not the container. Files are
0600 in a 0700 folder under the user state dir; a damaged or unreadable file is a cache miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ..private_files import write_private

log = logging.getLogger(__name__)

_VERSION = 1
# Files not written for this long are removed (once per run that writes): folders that are gone, or
# containers no longer synced. One still in use merely costs a listing with metadata.
PRUNE_AFTER_S = 30 * 24 * 3600.0

# name -> (etag, mtime metadata or None)
Known = dict[str, tuple[str, str | None]]


class MetadataCache:
    def __init__(self, directory: Path, container_url: str) -> None:
        self.directory = directory
        self.container_url = container_url
        self._pruned = False

    def _path(self, folder: str, delimiter: str | None) -> Path:
        digest = hashlib.sha256(f"{self.container_url}\n{folder}\n{delimiter or ''}".encode()).hexdigest()
        return self.directory / f"{digest}.json"

    def load(self, folder: str, delimiter: str | None) -> Known | None:
        try:
            data = json.loads(self._path(folder, delimiter).read_text(encoding="utf-8"))
            if data.get("v") != _VERSION or data.get("container") != self.container_url:
                return None
            return {name: (etag, mtime) for name, etag, mtime in data["entries"]
                    if isinstance(name, str) and isinstance(etag, str) and (mtime is None or isinstance(mtime, str))}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def save(self, folder: str, delimiter: str | None, entries: list[tuple[str, str, str | None]]) -> None:
        """Replace the folder's entries (atomically: a concurrent run reads the old file or the new one)."""
        path = self._path(folder, delimiter)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            body = json.dumps({"v": _VERSION, "container": self.container_url,
                               "entries": [e for e in entries if e[1]]}, ensure_ascii=False)
            if not self._pruned:
                self._pruned = True
                self.prune()
            write_private(path, body.encode("utf-8"), prefix=".tmp-", suffix=".json")
        except OSError as exc:  # a cache that cannot be written costs speed next time, nothing else
            log.debug("could not write the listing cache %s: %s", path, exc)

    def prune(self, now: float | None = None) -> None:
        cutoff = (time.time() if now is None else now) - PRUNE_AFTER_S
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.endswith(".json") and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
        except OSError as exc:
            log.debug("could not prune the listing cache: %s", exc)
