"""Watch mode's changed paths: each due path is re-checked; stable files go up in one batch, paths now gone
are deleted remotely (only with --delete), folders are scanned, links and special files reported.

A failed upload goes back to the queue with a growing delay, and waits for a change (or the next full
rescan) after ``MAX_ATTEMPTS`` while storage works; when storage is unreachable, nothing is counted.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Callable

from ..errors import BucketSyncError, UnsafeBlobNameError
from ..sync.diff import DiffPolicy
from ..sync.plan import Plan
from ..sync.keys import local_path_for
from ..sync.listener import Listener
from ..sync.model import Action, LocalFile, PlannedAction, Reason
from ..sync.scan import Skipped, scan_tree
from .watch_batch import BatchRunner
from .watch_lookup import lookup_remote, remote_under
from .watch_monitor import Scope
from .watch_queue import ChangeQueue, Kind, Pending, Sig, Verdict, retry_delay, verdict

if TYPE_CHECKING:
    from .watch import WatchRequest

log = logging.getLogger("bucket_sync.watch")

MAX_ATTEMPTS = 5  # failed uploads of one unchanged file while storage works, before waiting for a change


class ChangeHandler:
    """What the queue hands over when due: judged now, then uploaded, deleted, scanned or reported."""

    def __init__(self, req: WatchRequest, root: str, queue: ChangeQueue, runner: BatchRunner, listener: Listener,
                 report_skip: Callable[[Skipped], None], *, stopping: threading.Event,
                 clock: Callable[[], float]) -> None:
        self.req = req
        self.root = root
        self.queue = queue
        self.runner = runner
        self.listener = listener
        self.report_skip = report_skip
        self.stopping = stopping
        self.clock = clock

    def handle(self, due: list[Pending]) -> None:
        req = self.req
        now = self.clock()
        ready: list[tuple[Pending, LocalFile]] = []
        gone: list[Pending] = []
        for p in due:
            # keys.py's one rule: on Windows the key 'a:b' is the file 'a：b', never a stream of 'a'
            path = local_path_for(self.root, p.key)
            sig = Sig.of(path, follow_symlinks=req.follow_symlinks)
            v = verdict(p, sig, now, debounce_s=req.debounce_s, open_grace_s=self.queue.open_grace_s)
            if v is Verdict.WAIT:
                self.queue.requeue(p, delay=req.debounce_s, sig=sig, changed=sig != p.sig)
            elif v is Verdict.READY:
                ready.append((p, LocalFile(p.key, path, sig.size, sig.mtime_ns)))
            elif v is Verdict.GONE:
                gone.append(p)
            elif v is Verdict.FOLDER:
                for f in scan_tree(path, filters=req.filters, follow_symlinks=req.follow_symlinks,
                                   on_skip=self.report_skip, base_key=p.key):
                    self.queue.touch(f.key, Sig(Kind.FILE, f.size, f.mtime_ns))
            elif v is Verdict.SKIP:
                why = "symbolic link (use --follow-symlinks to follow it)" if sig.kind is Kind.LINK else "not a regular file"
                self.report_skip(Skipped(p.key, why))
        try:
            if ready:
                self._upload(ready)
        finally:
            if gone:
                self._delete_gone(gone)

    def _upload(self, ready: list[tuple[Pending, LocalFile]]) -> None:
        runner = self.runner
        ready.sort(key=lambda t: t[1].key)
        files = [f for _, f in ready]
        pending = {p.key: p for p, _ in ready}
        try:
            dests = lookup_remote(runner.opened, self.req.prefix, [f.key for f in files], can_list=runner.can_list())
        except BucketSyncError:
            for p in pending.values():
                self.queue.requeue(p, delay=0)
            raise
        batch = runner.new_batch(self.listener, expected={f.key: (f.path, Sig(Kind.FILE, f.size, f.mtime_ns)) for f in files})
        engine = runner.engine(batch)
        plan = engine.plan(iter(files), iter(dests), DiffPolicy(Action.UPLOAD, checksum=self.req.checksum))
        runner.run(engine, batch, plan, delete=False, scope=Scope.CHANGES)
        unfinished = list(batch.unfinished(a.key for a in plan.work))
        if not unfinished:
            return
        reachable = batch.reachable(runner.opened, unfinished)
        for key in unfinished:
            p = pending[key]
            if reachable and not self.stopping.is_set():
                p.attempts += 1
                if p.attempts >= MAX_ATTEMPTS:
                    log.warning("%s: failed %d times; waiting for it to change (or the next full rescan)", key, p.attempts)
                    continue
            self.queue.requeue(p, delay=retry_delay(p.attempts + 1) if reachable else 0)
        batch.raise_if_fatal()
        if not reachable:
            raise batch.outage_error()

    def _delete_gone(self, gone: list[Pending]) -> None:
        if not self.req.delete:
            for p in gone:
                log.info("%s: removed locally; kept in the bucket (no --delete)", p.key)
            return
        if not os.path.isdir(self.root):
            log.warning("%s is missing: deletions are not propagated until it is back", self.root)
            return
        runner = self.runner
        try:
            blobs = remote_under(runner.opened, self.req.prefix, [(p.key, p.was_dir) for p in gone])
        except BucketSyncError:
            for p in gone:
                self.queue.requeue(p, delay=0)
            raise
        actions = [PlannedAction(Action.DELETE, Reason.EXTRA, b.key, None, b) for b in blobs
                   if self.req.filters.allows(b.key)
                   and not self._exists_locally(b.key)]
        if not actions:
            return
        batch = runner.new_batch(self.listener)
        runner.run(runner.engine(batch), batch, Plan(deletes=tuple(actions)), delete=True, scope=Scope.DELETIONS)
        if batch.unfinished(a.key for a in actions):
            for p in gone:
                self.queue.requeue(p, delay=retry_delay(2))
        batch.raise_if_fatal()

    def _exists_locally(self, key: str) -> bool:
        """A remote name no local file can have (a backslash, '..') has no local twin."""
        try:
            return os.path.lexists(local_path_for(self.root, key))
        except UnsafeBlobNameError:
            return False
