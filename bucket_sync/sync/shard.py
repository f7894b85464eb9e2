"""--shard K/N: this run handles only its share of the keys, so N runs (on N machines) split one job.

A key's share is a stable hash (CRC-32 of its UTF-8 bytes: the same on every machine, OS and Python
version, unlike hash()) modulo N. By default the whole key is hashed, which spreads files evenly;
``--shard-by folder`` hashes the first path segment instead, so a folder and everything in it belong to
one shard, and each shard lists and scans only its own folders. The shard is a filter like the others:
applied to both sides, so a shard never copies, compares or deletes another shard's keys, and the
delete guards count within the share.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from ..errors import UsageError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as users count (K of N)
    count: int
    by_folder: bool = False

    def owns(self, key: str) -> bool:
        part = key.split("/", 1)[0] if self.by_folder else key
        return zlib.crc32(part.encode("utf-8", "surrogatepass")) % self.count == self.index - 1

    def owns_folder(self, top_level: str) -> bool:
        """Whether a folder right under the root may hold keys of this shard (always, by key)."""
        return not self.by_folder or self.owns(top_level)

    def describe(self) -> str:
        return f"shard {self.index}/{self.count}" + (" by folder" if self.by_folder else "")


def parse_shard(value: str | None, by: str | None = None) -> Shard | None:
    """'2/8' -> Shard(2, 8); None/'' -> None. K counts from 1 (a Kubernetes JOB_COMPLETION_INDEX counts
    from 0: pass $((JOB_COMPLETION_INDEX + 1))/N)."""
    if value is None or str(value).strip() == "":
        if by not in (None, "", "key"):
            raise UsageError("--shard-by needs --shard K/N", hint="e.g. --shard 1/4 --shard-by folder")
        return None
    m = _SPEC.match(str(value))
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise UsageError(f"--shard {value!r} is not K/N with 1 <= K <= N",
                         hint="e.g. --shard 1/4 ... --shard 4/4 on four machines")
    if by not in (None, "", "key", "folder"):
        raise UsageError(f"--shard-by {by!r} is not key or folder")
    return Shard(int(m.group(1)), int(m.group(2)), by_folder=by == "folder")


__all__ = ["Shard", "parse_shard"]
