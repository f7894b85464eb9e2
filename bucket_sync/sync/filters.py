"""--include / --exclude globs on the relative path, with ``**`` spanning folders.

Rules are tried in the order given; the first that matches decides. With any --include, a path that no
rule matches is excluded (rclone's behaviour); otherwise it is included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
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
    return re.compile(f"^{regex}$", re.DOTALL)


@dataclass(frozen=True)
class PathFilter:
    rules: tuple[tuple[bool, str], ...] = ()  # (include?, glob) in command-line order

    @classmethod
    def from_options(cls, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (), ordered: tuple[tuple[bool, str], ...] | None = None) -> "PathFilter":
        if ordered is not None:
            return cls(tuple(ordered))
        # Without the interleaving, excludes win over includes (the safer reading).
        return cls(tuple((False, g) for g in exclude) + tuple((True, g) for g in include))

    @property
    def has_includes(self) -> bool:
        return any(inc for inc, _ in self.rules)

    def allows(self, key: str) -> bool:
        for include, glob in self.rules:
            if glob_to_regex(glob).match(key):
                return include
        return not self.has_includes
