"""--include / --exclude globs on the relative path, with ``**`` spanning folders; and bounds on a file's
size and age (--min-size/--max-size, --min-age/--max-age).

Rules are tried in the order given; the first that matches decides. With any --include, a path that no
rule matches is excluded (rclone's behaviour); otherwise it is included. ``--ignore-case`` matches the
globs regardless of case (DJI cameras write ``.JPG``). The same filter is applied to both sides of a
transfer, so a file it leaves out is neither copied nor compared nor deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from .shard import Shard

if TYPE_CHECKING:
    from .model import Entry


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """'*' stays within a segment, '**' crosses segments, '?' one character, '[...]' a class.

    A pattern without '/' matches the base name at any depth (like .gitignore), so ``*.tmp`` excludes
    ``a/b/c.tmp``; a pattern with '/' is anchored at the root of the transfer.
    """
    anchored = "/" in pattern.strip("/")
    pat = pattern.strip("/")
    out: list[str] = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pat.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    body = "".join(out)
    # A directory pattern also covers everything inside it.
    regex = ("" if anchored else "(?:.*/)?") + body + "(?:/.*)?"
    return re.compile(f"^{regex}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@dataclass(frozen=True)
class PathFilter:
    rules: tuple[tuple[bool, str], ...] = ()  # (include?, glob) in command-line order
    ignore_case: bool = False
    min_size: int | None = None  # bytes, inclusive
    max_size: int | None = None
    newest_ns: int | None = None  # --min-age: modified at or before this time (epoch ns)
    oldest_ns: int | None = None  # --max-age: modified at or after this time
    shard: Shard | None = None  # --shard K/N: only this run's share of the keys (shard.py)

    @classmethod
    def from_options(cls, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (), **bounds: Any) -> "PathFilter":
        # click gives the includes and the excludes apart, not interleaved: excludes win (the safer reading).
        return cls(tuple((False, g) for g in exclude) + tuple((True, g) for g in include), **bounds)

    @property
    def has_includes(self) -> bool:
        return any(inc for inc, _ in self.rules)

    @property
    def has_bounds(self) -> bool:
        return any(v is not None for v in (self.min_size, self.max_size, self.newest_ns, self.oldest_ns))

    @cached_property
    def passes_everything(self) -> bool:
        """No rule, bound or shard: every file passes. Asked once per file and blob of a run, so computed once."""
        return not self.rules and not self.has_bounds and self.shard is None

    def allows(self, key: str) -> bool:
        if self.passes_everything:
            return True
        if self.shard is not None and not self.shard.owns(key):
            return False
        for include, glob in self.rules:
            if glob_to_regex(glob, self.ignore_case).match(key):
                return include
        return not self.has_includes

    def allows_file(self, key: str, size: int, mtime_ns: int) -> bool:
        """The path rules and the size and age bounds: for files (and blobs), not for folders."""
        if self.passes_everything:
            return True
        if self.has_bounds:
            if (self.min_size is not None and size < self.min_size) or (self.max_size is not None and size > self.max_size):
                return False
            if (self.newest_ns is not None and mtime_ns > self.newest_ns) or (self.oldest_ns is not None and mtime_ns < self.oldest_ns):
                return False
        return self.allows(key)

    def allows_entry(self, entry: Entry) -> bool:
        return self.allows_file(entry.key, entry.size, entry.mtime_ns)

    def allows_top_folder(self, name: str) -> bool:
        """Whether a folder right under the root can hold anything this run handles (--shard-by folder
        skips the others whole: neither scanned nor listed)."""
        return self.shard is None or self.shard.owns_folder(name)
