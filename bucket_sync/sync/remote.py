"""What the engine needs from a container: the interface it is typed against.

``bucket_sync.storage.container.Storage`` implements it over Azure Blob Storage (the SDK for writes, plain
HTTP for listing, HEAD and ranged reads); the functional tests implement it in memory. The engine, the
uploader and the downloader see nothing else, so ``bucket_sync/sync/`` imports neither the Azure SDK nor an
HTTP library.
"""
from __future__ import annotations

from typing import Callable, Protocol

from .model import BlobExtras


class Remote(Protocol):
    """Blob writes, reads and deletes by full blob name (the prefix already joined)."""

    def put(self, name: str, data: bytes, md5: bytes, mtime_ns: int, extras: BlobExtras = ...) -> None:
        """Write a whole blob in one request, with its Content-MD5 and our mtime metadata."""

    def stage_block(self, name: str, block_id: str, data: bytes) -> None:
        """Stage one block of a large blob (uncommitted until ``commit``)."""

    def uncommitted_blocks(self, name: str) -> dict[str, int]:
        """Blocks staged but not committed (an interrupted upload), id -> size; {} when there are none."""

    def commit(self, name: str, block_ids: list[str], md5: bytes, mtime_ns: int, extras: BlobExtras = ...,
               *, digest: str | None = None) -> None:
        """Commit staged blocks in this order as the blob's content (``digest``: its piece digest's text)."""

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        """Rewrite only the mtime metadata, keeping the content, its MD5 and its type."""

    def delete(self, name: str) -> None:
        """Delete one blob (absent already counts as deleted)."""

    def stream_range(self, name: str, offset: int, length: int, etag: str | None,
                     sink: Callable[[int, bytes | memoryview], None]) -> None:
        """Hand bytes [offset, offset+length) to ``sink(position, piece)`` as they arrive; fail if the ETag moved.
        ``piece`` may be a view of a buffer reused for the next read: the sink consumes it before returning."""


__all__ = ["Remote"]
