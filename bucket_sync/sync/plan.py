"""The planner: two sorted streams of entries and a policy in, a frozen Plan out. No I/O, no events.

Every fact about the destination that needs a look at it (does its filesystem fold case? how much of an
mtime does it keep?) is decided before the scan starts and arrives in the policy (app/sync_run.py probes
the download folder), so planning writes nothing anywhere and runs the same in a test as in a real run.
What is done with the plan is the engine's (engine.py); watch builds a new plan for each batch, or narrows
one with :meth:`Plan.keeping`, and never edits one in place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Generic, Iterable, Iterator, TypeVar

from .diff import DiffPolicy, diff
from .keys import CaseClashGuard
from .model import Action, Entry, PlannedAction, Reason

CLASH_DETAIL = ("name differs only in case from {other!r} and the destination folder is case-insensitive: "
                "one would overwrite the other")


@dataclass(frozen=True)
class Plan:
    """What a run will do. Skipped keys are counted, not kept (a no-op run holds nothing per file), unless
    the policy asks for them (``keep_unchanged``: -v reports each one)."""

    work: tuple[PlannedAction, ...] = ()
    deletes: tuple[PlannedAction, ...] = ()
    rejected: tuple[PlannedAction, ...] = ()
    skipped: int = 0
    dest_count: int = 0
    source_count: int = 0
    unchanged: tuple[PlannedAction, ...] = ()

    def __post_init__(self) -> None:
        # Callers may hand lists: stored as tuples, so a plan shared with a renderer cannot change under it.
        for name in ("work", "deletes", "rejected", "unchanged"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def work_bytes(self) -> int:
        return sum(a.size for a in self.work)

    def keeping(self, *, work: Iterable[PlannedAction] | None = None,
                deletes: Iterable[PlannedAction] | None = None) -> "Plan":
        """A new plan with only these transfers and deletes (watch leaves out keys still changing); the
        counts stay those of the streams that were planned (the mirror guards compare with them)."""
        return dataclasses.replace(self, work=self.work if work is None else tuple(work),
                                   deletes=self.deletes if deletes is None else tuple(deletes))


_E = TypeVar("_E", bound=Entry)


class Counted(Generic[_E]):
    """Counts entries as they are consumed: the mirror guard needs the destination's size, a download
    whether its listing found anything at all."""

    def __init__(self, entries: Iterable[_E]) -> None:
        self._it = iter(entries)
        self.n = 0

    def __iter__(self) -> Iterator[_E]:
        return self

    def __next__(self) -> _E:
        item = next(self._it)
        self.n += 1
        return item


def plan(sources: Iterable[Entry], dests: Iterable[Entry], policy: DiffPolicy) -> Plan:
    """Decide every key of two streams sorted by key (diff.py's pair rules), refuse what a case-insensitive
    destination would merge, and sort the decisions into the plan's lists."""
    work: list[PlannedAction] = []
    deletes: list[PlannedAction] = []
    rejected: list[PlannedAction] = []
    unchanged: list[PlannedAction] = []
    skipped = 0
    counted_sources, counted_dests = Counted(sources), Counted(dests)
    clashes = CaseClashGuard() if policy.case_insensitive else None
    for action in diff(counted_sources, counted_dests, policy):
        if clashes is not None and action.source is not None and action.action is not Action.REJECT:
            other = clashes.clash(action.key)
            if other is not None:
                action = PlannedAction(Action.REJECT, Reason.NAME_CLASH, action.key, action.source, action.dest,
                                       CLASH_DETAIL.format(other=other))
        if action.action is Action.SKIP:
            skipped += 1
            if policy.keep_unchanged:
                unchanged.append(action)
        elif action.action is Action.DELETE:
            deletes.append(action)
        elif action.action is Action.REJECT:
            rejected.append(action)
        else:
            work.append(action)
    if clashes is not None and deletes:
        # 'readme.md' here and 'README.md' remote are one file on this destination: not an extra.
        deletes = [d for d in deletes if not clashes.knows(d.key)]
    return Plan(work=tuple(work), deletes=tuple(deletes), rejected=tuple(rejected), skipped=skipped,
                dest_count=counted_dests.n, source_count=counted_sources.n, unchanged=tuple(unchanged))


__all__ = ["Counted", "Plan", "plan"]
