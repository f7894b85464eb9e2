"""What bucket-sync writes into a blob's metadata besides the --metadata entries, one rule for every Remote.

``mtime`` (mtime.py's form, as rclone writes it) on every upload, and ``sha256pieces`` (piece_digest.py)
on chunked ones. Neither can be set by --metadata: the skip rules need the first, downloads trust the
second (cli/options.py refuses both names).
"""

from __future__ import annotations

from .model import BlobExtras
from .mtime import format_mtime
from .piece_digest import PIECES_KEY

MTIME_KEY = "mtime"
OWN_KEYS = {MTIME_KEY: "the file's modification time", PIECES_KEY: "the digest downloads are checked against"}


def metadata_for(mtime_ns: int, extras: BlobExtras, digest: str | None = None) -> dict[str, str]:
    # mtime first: the listing's fast reader (storage/list_pages.py) reads it without a search
    metadata = {MTIME_KEY: format_mtime(mtime_ns)}
    metadata.update((key, value) for key, value in extras.metadata if key.lower() not in OWN_KEYS)
    if digest is not None:
        metadata[PIECES_KEY] = digest
    return metadata


__all__ = ["MTIME_KEY", "OWN_KEYS", "metadata_for"]
