"""The piece digest: a whole-blob check that hashes in parallel, for the large blobs bucket-sync writes.

Why: a blob's Content-MD5 is one MD5 over the whole content, which only one core can compute, in file
order, at ~0.7 GB/s here: a verified 1 GiB download cannot be faster than that MD5, however fast the
transfer. So a chunked upload also stores, in the metadata ``sha256pieces``, the SHA-256 of each piece of
``piece`` bytes (its blocks), hashed again in order (a hash list):

    sha256pieces = "v1:<piece size>:<Content-MD5, hex>:<SHA-256 of the pieces' SHA-256 digests, hex>"

Each ranged GET of a download hashes its own pieces as the bytes arrive (SHA-256 runs at ~1.7 GB/s on one
core with the SHA extensions, and the ranges run on every core), and the list of digests is checked once
at the end.

What it guarantees, exactly. The digest is used only when the Content-MD5 it names is the blob's current
Content-MD5 (``usable``). bucket-sync computed both from the same bytes in one read of the file, so:
- the download is kept only if every byte equals what bucket-sync read at upload (up to SHA-256
  collisions), which is what the Content-MD5 check establishes (up to MD5 collisions);
- a blob rewritten by another tool loses our metadata (Put Blob and Put Block List replace it) or, if that
  tool kept the metadata, the Content-MD5 no longer matches the one named here: either way the download
  checks the Content-MD5 instead, as it does for every blob without a usable digest.
The piece digest never weakens the check, it replaces one end-to-end hash by another over the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import BucketSyncError

PIECES_KEY = "sha256pieces"  # sorts after "mtime": the listing's fast reader finds ours first
_VERSION = "v1"
_VALUE = re.compile(r"v1:([1-9][0-9]{0,12}):([0-9a-f]{32}):([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class PieceDigest:
    piece: int  # bytes per piece: every piece but the last has exactly this size
    md5: bytes  # the Content-MD5 the upload set from the same bytes
    root: bytes  # SHA-256 of the pieces' SHA-256 digests, concatenated in order

    def text(self) -> str:
        return f"{_VERSION}:{self.piece}:{self.md5.hex()}:{self.root.hex()}"

    def range_size(self, near: int) -> int:
        """The range size closest to ``near`` in whole pieces (at least one): each range hashes its own."""
        return max(1, round(near / self.piece)) * self.piece


def parse(text: str | None) -> PieceDigest | None:
    """The digest a blob's metadata carries; None when absent or not one this version writes."""
    if not text:
        return None
    m = _VALUE.fullmatch(text.strip())
    if m is None:
        return None
    return PieceDigest(int(m.group(1)), bytes.fromhex(m.group(2)), bytes.fromhex(m.group(3)))


def usable(text: str | None, md5: bytes | None) -> PieceDigest | None:
    """The digest to check a download against, or None to check the Content-MD5 (see the module's why)."""
    digest = parse(text)
    if digest is None or md5 is None or digest.md5 != md5:
        return None
    return digest


def root_of(pieces: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(pieces)).digest()


def digest_of(piece: int, md5: bytes, pieces: list[bytes]) -> PieceDigest:
    return PieceDigest(piece, md5, root_of(pieces))


class PieceCheck:
    """A download checked against ``digest``: a RangeHasher for each range (any order, in parallel), and
    the digests they fill checked once every range is done."""

    def __init__(self, digest: PieceDigest, size: int) -> None:
        self._digest = digest
        self._pieces = [b""] * -(-size // digest.piece)

    def range_at(self, offset: int) -> "RangeHasher":
        return RangeHasher(self._digest.piece, self._pieces, offset // self._digest.piece)

    def matches(self) -> bool:
        return all(self._pieces) and root_of(self._pieces) == self._digest.root


class RangeHasher:
    """The SHA-256 of each piece of one range, fed its bytes in order as they arrive.

    The range starts on the boundary of piece ``first``; its pieces' digests land in ``into`` from there
    on (each range writes its own slots of one list, so ranges running in parallel need no lock)."""

    def __init__(self, piece: int, into: list[bytes], first: int) -> None:
        self._piece = piece
        self._into = into
        self._index = first
        self._hash = hashlib.sha256()
        self._left = piece  # bytes still to come in the current piece
        self._at = first * piece  # where the next bytes must start

    def update(self, at: int, data: bytes | memoryview) -> None:
        """``data`` is the range's content at ``at``: the next bytes, or the hash would be of a gap."""
        if at != self._at:
            raise BucketSyncError(f"internal error: range bytes at {at}, expected at {self._at}")
        self._at += len(data)
        view = memoryview(data)
        while len(view) >= self._left:
            self._hash.update(view[:self._left])
            view = view[self._left:]
            self._close()
        if view:
            self._hash.update(view)
            self._left -= len(view)

    def finish(self, end: int) -> None:
        """The range has ended at ``end``: its last piece, if short (the blob's last), is complete."""
        if self._at != end:
            raise BucketSyncError(f"internal error: range hashed up to {self._at}, not {end}")
        if self._left != self._piece:
            self._close()

    def _close(self) -> None:
        self._into[self._index] = self._hash.digest()
        self._index += 1
        self._hash = hashlib.sha256()
        self._left = self._piece


__all__ = ["PIECES_KEY", "PieceCheck", "PieceDigest", "RangeHasher", "digest_of", "parse", "root_of", "usable"]
