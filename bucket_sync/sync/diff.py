"""The pure diff: one pass over two sorted streams, a decision per key, each with its reason.

No I/O here. What to do with a key seen on one side only is the policy's (``delete_extras`` swaps the
strategy for destination-only keys); what to do with a pair is :func:`decide_pair`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator

from ..errors import UnsafeBlobNameError
from .keys import check_key
from .model import Action, Entry, LocalFile, PlannedAction, Reason, RemoteBlob

# Local filesystems keep nanoseconds and we store them in the `mtime` metadata, so equal means equal;
# a remote mtime that only comes from Last-Modified has whole seconds.
FINE_WINDOW_NS = 1_000
COARSE_WINDOW_NS = 1_000_000_000


@dataclass(frozen=True)
class DiffPolicy:
    transfer: Action  # UPLOAD or DOWNLOAD
    delete_extras: bool = False
    checksum: bool = False
    overwrite: bool = False
    # Mtimes closer than this are equal (rclone's modify window): the coarser precision of the two sides
    # (a FAT disk keeps 2 s, exFAT and HFS+ 1 s: mtime_precision.py), or --modify-window, whichever is larger.
    modify_window_ns: int = FINE_WINDOW_NS
    # The destination folder folds case (keys.is_case_insensitive_dir, probed before its scan starts): the
    # planner refuses a second key that would land on the same file. Downloads only; plan.py applies it.
    case_insensitive: bool = False
    keep_unchanged: bool = False  # the plan keeps each unchanged pair (-v reports them), not just their count

    def with_window_at_least(self, window_ns: int | None) -> "DiffPolicy":
        if window_ns is None or window_ns <= self.modify_window_ns:
            return self
        return dataclasses.replace(self, modify_window_ns=window_ns)


def mtimes_equal(src: Entry, dst: Entry, window_ns: int = FINE_WINDOW_NS) -> bool:
    # Called for every unchanged file of a no-op run: plain tests, no generator.
    delta = abs(src.mtime_ns - dst.mtime_ns)
    if delta < window_ns:
        return True
    coarse = ((isinstance(src, RemoteBlob) and not src.mtime_from_metadata)
              or (isinstance(dst, RemoteBlob) and not dst.mtime_from_metadata))
    return coarse and src.mtime_ns // COARSE_WINDOW_NS == dst.mtime_ns // COARSE_WINDOW_NS


def decide_pair(src: Entry, dst: Entry, policy: DiffPolicy) -> tuple[Action, Reason]:
    if policy.overwrite:
        return policy.transfer, Reason.OVERWRITE
    if src.size != dst.size:
        return policy.transfer, Reason.SIZE_CHANGED
    if policy.checksum:
        return Action.COMPARE, Reason.CHECKSUM
    if mtimes_equal(src, dst, policy.modify_window_ns):
        return Action.SKIP, Reason.UNCHANGED
    return Action.COMPARE, Reason.MTIME_DIFFERS


def _guard(entry: Entry) -> str | None:
    """Remote names must be safe local paths before anything is planned for them."""
    if isinstance(entry, RemoteBlob):
        try:
            check_key(entry.key)
        except UnsafeBlobNameError as exc:
            return exc.message
    return None


def diff(sources: Iterable[Entry], dests: Iterable[Entry], policy: DiffPolicy) -> Iterator[PlannedAction]:
    """Walk both sorted streams together and yield one PlannedAction per key."""
    src_it, dst_it = iter(sources), iter(dests)
    src, dst = next(src_it, None), next(dst_it, None)
    while src is not None or dst is not None:
        if dst is None or (src is not None and src.key < dst.key):
            assert src is not None  # the loop runs while either side has an entry: no dst means a src
            problem = _guard(src) if policy.transfer is Action.DOWNLOAD else None
            if problem:
                yield PlannedAction(Action.REJECT, Reason.UNSAFE_NAME, src.key, src, None, problem)
            else:
                yield PlannedAction(policy.transfer, Reason.NEW, src.key, src, None)
            src = next(src_it, None)
        elif src is None or dst.key < src.key:
            if policy.delete_extras:
                # Deleting a destination entry writes nothing locally, so even an unsafe remote name may go.
                yield PlannedAction(Action.DELETE, Reason.EXTRA, dst.key, None, dst)
            dst = next(dst_it, None)
        else:
            problem = _guard(src) if policy.transfer is Action.DOWNLOAD else None
            if problem:
                yield PlannedAction(Action.REJECT, Reason.UNSAFE_NAME, src.key, src, dst, problem)
            else:
                action, reason = decide_pair(src, dst, policy)
                yield PlannedAction(action, reason, src.key, src, dst)
            src, dst = next(src_it, None), next(dst_it, None)


__all__ = ["DiffPolicy", "decide_pair", "diff", "mtimes_equal", "LocalFile", "RemoteBlob"]
