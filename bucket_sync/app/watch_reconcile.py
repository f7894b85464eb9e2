"""Watch mode's full reconcile: scan LOCAL_DIR and list the remote, like upload (deleting extras with
--delete), at the start and every --rescan seconds; it catches whatever events were missed.

Files still changing are left to the queue, and so are paths the queue already holds. Rescans re-find
every unchanged file: only the first reconcile reports those skips.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Callable, Iterable

from ..errors import PermissionDeniedError
from ..sync.access import LIST
from ..sync.diff import DiffPolicy
from ..sync.keys import local_path_for
from ..sync.listener import Listener
from ..sync.model import Action, LocalFile, Status, TransferResult
from ..sync.plan import Plan
from ..sync.scan import Skipped, scan_tree
from .watch_batch import BatchRunner
from .watch_monitor import Scope
from .watch_queue import ChangeQueue, Kind, Sig, retry_delay

if TYPE_CHECKING:
    from .watch import WatchRequest

log = logging.getLogger("bucket_sync.watch")


class Reconciler:
    """Scan and list everything, plan like upload, and run what is not changing right now."""

    def __init__(self, req: WatchRequest, root: str, queue: ChangeQueue, runner: BatchRunner, listener: Listener,
                 report_skip: Callable[[Skipped], None]) -> None:
        self.req = req
        self.root = root
        self.queue = queue
        self.runner = runner
        self.listener = listener
        self.report_skip = report_skip

    def reconcile(self, *, initial: bool) -> None:
        """Changing files wait in the queue; with --delete, an empty LOCAL_DIR deletes nothing (refuse_emptying)."""
        req = self.req
        runner = self.runner
        on_skip = self.report_skip if initial else (lambda s: None)
        if not os.path.isdir(self.root):
            log.warning("%s is missing or not a folder; nothing uploaded or deleted until it is back", self.root)
            return
        sources: Iterable[LocalFile] = scan_tree(self.root, filters=req.filters, follow_symlinks=req.follow_symlinks,
                                                 on_skip=on_skip)
        dests = None
        if runner.can_list():
            try:
                dests = [b for b in runner.opened.list(req.prefix) if req.filters.allows(b.key)]
            except PermissionDeniedError as exc:
                if exc.permission != LIST:
                    raise
                # sp= did not rule listing out, storage did: decide again with what it said.
                runner.decide()
        if dests is None:  # file by file: the SAS cannot list
            sources = list(sources)
            dests = list(runner.opened.look_up_each(req.prefix, (f.key for f in sources)))
        listener = self.listener if initial else QuietSkips(self.listener)
        batch = runner.new_batch(listener)
        engine = runner.engine(batch)
        plan = engine.plan(sources, dests, DiffPolicy(Action.UPLOAD, delete_extras=req.delete, checksum=req.checksum))
        recent_ns = time.time_ns() - int(req.debounce_s * 1e9)
        work = []
        for action in plan.work:
            src = action.source
            assert src is not None  # a transfer: it has a source
            if action.key in self.queue or (isinstance(src, LocalFile) and src.mtime_ns > recent_ns):
                self.queue.touch(action.key, Sig(Kind.FILE, src.size, src.mtime_ns))  # still changing
            else:
                work.append(action)
        plan = plan.keeping(work=work, deletes=[a for a in plan.deletes if a.key not in self.queue])
        batch.expected = {a.key: (a.source.path, Sig(Kind.FILE, a.size, a.source.mtime_ns)) for a in work
                          if isinstance(a.source, LocalFile)}
        refusal = refuse_emptying(self.root, plan)
        plan = plan.keeping(deletes=()) if refusal else plan
        runner.run(engine, batch, plan, delete=req.delete, scope=Scope.RECONCILE, refusal=refusal)
        for key in batch.unfinished(a.key for a in plan.work):
            self.queue.touch(key, Sig.of(local_path_for(self.root, key), follow_symlinks=req.follow_symlinks),
                             delay=retry_delay(1))
        batch.raise_if_unreachable(runner.opened, plan.work)


def refuse_emptying(root: str, plan: Plan) -> str | None:
    """With --delete, a reconcile that finds LOCAL_DIR empty deletes nothing: an empty LOCAL_DIR is far
    more often an unmounted disk or share than a wish to empty the bucket. Returns the refusal (also
    logged as a warning, and sent with --notify-url); the caller then runs ``plan`` without its deletes."""
    if not (plan.deletes and plan.source_count == 0):
        return None
    refusal = (f"{root} is empty: not deleting the {len(plan.deletes)} blob(s) under the remote "
               f"(delete files one by one, or use mirror --force, to empty it)")
    log.warning("%s", refusal)
    return refusal


class QuietSkips(Listener):
    """Rescans re-find every unchanged file: neither print nor count thousands of skips every time."""

    def __init__(self, inner: Listener) -> None:
        self.inner = inner

    def on_plan(self, files: int, total_bytes: int) -> None:
        self.inner.on_plan(files, total_bytes)

    def on_bytes(self, n: int) -> None:
        self.inner.on_bytes(n)

    def on_result(self, result: TransferResult) -> None:
        if result.status is Status.SKIPPED and not result.error:
            return
        self.inner.on_result(result)

    def on_notice(self, key: str, message: str) -> None:
        self.inner.on_notice(key, message)

    def on_info(self, message: str) -> None:
        self.inner.on_info(message)
