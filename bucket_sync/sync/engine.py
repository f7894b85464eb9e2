"""Run a plan: files in parallel, blocks in parallel, bounded memory, per-file retries, one result each.

A failed file is a result, not an exception: the run goes on and the Tally maps results to the exit code.
Errors that would fail every remaining file the same way (no permission, expired SAS, missing container)
stop the run early instead of hammering storage with doomed requests.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Callable, Iterable, Sequence

from ..errors import AuthError, BucketSyncError, NotFoundError
from ..redact import redact
from ..retry import FILE
from .bandwidth import RateLimiter, Unlimited
from .budget import ByteBudget, return_big_buffers_to_os
from .diff import DiffPolicy
from .download import Downloader
from .listener import Listener, Tally
from . import winnames
from .executors import ExecutorFactory, thread_pools
from .keys import join_blob_name
from .model import (Action, Direction, Entry, LocalFile, PlannedAction, Reason, RemoteBlob, Status,
                    TransferResult)
from .plan import Plan, plan as make_plan
from .remote import Remote
from .settings import TransferSettings
from .upload import Uploader, file_md5

log = logging.getLogger(__name__)

# The main thread waits in slices: on Windows a lock wait without a timeout cannot be interrupted, so Ctrl+C
# would only be seen once every transfer had finished.
WAKE_S = 0.5




class Engine:
    def __init__(self, storage: Remote, *, direction: Direction, prefix: str, local_root: str | None,
                 settings: TransferSettings, listener: Listener, tally: Tally,
                 stop: threading.Event | None = None, executors: ExecutorFactory = thread_pools) -> None:
        self.storage = storage
        self.direction = direction
        self.prefix = prefix
        self.local_root = local_root
        self.settings = settings
        self.listener = listener
        self.tally = tally
        self.stop = stop or threading.Event()
        self.executors = executors  # executors.inline runs a whole plan in the calling thread (tests)
        self.op = direction.transfer  # what every result of a file reports (deletes report Action.DELETE)

    # -- planning ----------------------------------------------------------------------------------
    def plan(self, sources: Iterable[Entry], dests: Iterable[Entry], policy: DiffPolicy) -> Plan:
        """plan.py's pure plan, with what every caller's plans share (watch's too): --modify-window from
        the settings, and the unchanged files reported (each one at -v, else their count)."""
        policy = dataclasses.replace(policy.with_window_at_least(self.settings.modify_window_ns),
                                     keep_unchanged=self.listener.wants_unchanged)
        made = make_plan(sources, dests, policy)
        self.report_unchanged(made)
        return made

    def report_unchanged(self, plan: Plan) -> None:
        """Before the run (and before a mirror guard may refuse it): the summary counts them either way."""
        if plan.unchanged:
            for action in plan.unchanged:
                self._emit(self.op, action, Status.SKIPPED)
        else:
            self.tally.add_unchanged(self.op, plan.skipped)

    # -- running ---------------------------------------------------------------------------------
    def run(self, plan: Plan, *, delete: bool = True) -> None:
        for action in plan.rejected:
            self._emit(self.op, action, Status.FAILED, error=f"{action.detail}; not written", exit_code=1)
        self.listener.on_plan(len(plan.work) + (len(plan.deletes) if delete else 0), plan.work_bytes)
        if self.settings.dry_run:
            for action in plan.work:
                self._emit(self.op, action, Status.PLANNED)
            for action in plan.deletes if delete else ():
                self._emit(Action.DELETE, action, Status.PLANNED)
            return
        if not plan.work and not (delete and plan.deletes):
            return  # a no-op: no pools to start and stop, no allocator to tune (that imports ctypes)
        concurrency = max(1, self.settings.concurrency)
        return_big_buffers_to_os()
        budget = ByteBudget(max(self.settings.memory_budget, 2 * (self.settings.block_size or 0)))
        # A --bwlimit wait ends at once when the run is stopped (Ctrl+C), instead of holding the exit back.
        limiter = RateLimiter(self.settings.bwlimit, sleep=self.stop.wait) if self.settings.bwlimit else Unlimited()
        with self.executors(concurrency, "file") as files, self.executors(concurrency, "block") as blocks:
            self._uploader = Uploader(self.storage, blocks, budget, block_size=self.settings.block_size,
                                      on_bytes=self.listener.on_bytes, cancel=self.stop, limiter=limiter,
                                      extras=self.settings.extras)
            self._downloader = Downloader(self.storage, blocks, budget, chunk_size=self.settings.block_size,
                                          on_bytes=self.listener.on_bytes, cancel=self.stop, limiter=limiter,
                                          streams=concurrency)
            work: Sequence[PlannedAction]
            blocked: Sequence[PlannedAction]
            work, blocked = plan.work, []
            if delete and plan.deletes and self.direction is Direction.DOWN:
                work, blocked = _split_blocked(plan.work, plan.deletes)
            self._submit_all(files, work, self._transfer, concurrency)
            if delete and plan.deletes:
                failed = self.tally.count(None, Status.FAILED)
                if failed or self.tally.fatal or self.stop.is_set():
                    for action in plan.deletes:
                        self._emit(Action.DELETE, action, Status.SKIPPED,
                                   error=f"not deleted: {failed} transfer(s) failed, deletes wait for a clean run")
                    for action in blocked:
                        self._emit(self.op, action, Status.FAILED, exit_code=1,
                                   error="waits for a local extra in its way to be deleted, after a clean run")
                else:
                    self._submit_all(files, plan.deletes, self._delete, concurrency)
                    self._submit_all(files, blocked, self._transfer, concurrency)

    def _submit_all(self, pool: Executor, actions: Iterable[PlannedAction], fn: Callable[[PlannedAction], None],
                    concurrency: int) -> None:
        slots = threading.BoundedSemaphore(concurrency * 2)  # bounds files queued, not just running
        # Only the files not done yet are kept: every Future of a run, kept to the end, was ~1.6 KB a file
        # (400 MB of a first upload of 250,000 files).
        pending: set[Future[None]] = set()
        failures: list[BaseException] = []
        lock = threading.Lock()

        def done(fut: Future[None]) -> None:
            with lock:
                pending.discard(fut)
                error = None if fut.cancelled() else fut.exception()
                if error is not None:
                    failures.append(error)
            slots.release()

        try:
            for action in actions:
                if self.stop.is_set():
                    break
                while not slots.acquire(timeout=WAKE_S):  # a bounded wait: see WAKE_S
                    pass
                fut = pool.submit(fn, action)
                with lock:
                    pending.add(fut)
                fut.add_done_callback(done)
            while True:
                with lock:
                    if failures:
                        raise failures[0]
                    waiting = next(iter(pending), None)
                if waiting is None:
                    break
                try:
                    waiting.result(timeout=WAKE_S)  # a file's own error is raised here (or above, if first seen there)
                except FuturesTimeout:
                    continue
                with lock:
                    pending.discard(waiting)
        except BaseException as exc:
            self.stop.set()  # Ctrl-C: let in-flight requests end, start nothing new
            if isinstance(exc, KeyboardInterrupt):
                self.tally.set_interrupted()  # what is queued and not started yet stays untouched
            raise

    def _transfer(self, action: PlannedAction) -> None:
        if self.tally.interrupted:
            return  # queued before Ctrl+C, never started: neither done nor failed
        attempts = max(1, self.settings.file_attempts)
        for attempt in range(1, attempts + 1):
            try:
                if action.action is Action.COMPARE:
                    if self._same_content(action):
                        return
                    action = PlannedAction(self.op, Reason.CONTENT_CHANGED, action.key, action.source, action.dest)
                sent = self._move_bytes(action)
                self._emit(self.op, action, Status.OK, bytes_sent=sent)
                return
            except BucketSyncError as exc:
                if exc.retryable and attempt < attempts and not self.stop.is_set():
                    log.info("%s: %s; retrying (attempt %d of %d)", action.key, redact(exc), attempt + 1, attempts)
                    time.sleep(FILE.backoff(attempt))
                    continue
                self._fail(self.op, action, exc)
                return
            except Exception as exc:  # a bug or an untranslated library error: report it, keep going
                log.debug("unexpected error on %s", action.key, exc_info=True)
                self._fail(self.op, action, BucketSyncError(f"{action.key}: unexpected {type(exc).__name__}: {redact(exc)}"))
                return

    def _move_bytes(self, action: PlannedAction) -> int:
        src = action.source
        if self.direction is Direction.UP:
            assert isinstance(src, LocalFile)
            return self._uploader.upload(src, join_blob_name(self.prefix, src.key))
        assert isinstance(src, RemoteBlob) and self.local_root is not None
        return self._downloader.download(src, self.local_root)

    def _same_content(self, action: PlannedAction) -> bool:
        """Sizes equal: compare MD5; when equal only the mtime is fixed (no bytes move)."""
        local, remote = (action.source, action.dest) if self.direction is Direction.UP else (action.dest, action.source)
        assert isinstance(local, LocalFile) and isinstance(remote, RemoteBlob)
        if remote.md5 is None or file_md5(local.path) != remote.md5:
            return False
        if self.direction is Direction.UP:
            self.storage.set_mtime(remote.name, local.mtime_ns)
        else:
            os.utime(local.path, ns=(remote.mtime_ns, remote.mtime_ns))
        self._emit(self.op, action, Status.SKIPPED, error=None)
        return True

    def _delete(self, action: PlannedAction) -> None:
        if self.tally.interrupted:
            return
        dest = action.dest
        try:
            if isinstance(dest, RemoteBlob):
                self.storage.delete(dest.name)
            else:
                assert isinstance(dest, LocalFile)
                try:
                    os.remove(dest.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise BucketSyncError(f"{dest.key}: cannot delete: {exc.strerror or exc}") from None
                self._prune_empty_parents(dest.path)
            self._emit(Action.DELETE, action, Status.OK)
        except BucketSyncError as exc:
            self._fail(Action.DELETE, action, exc)

    def _prune_empty_parents(self, path: str) -> None:
        """A download mirror leaves no folder the remote no longer has: remove the folders its deletes
        emptied, up to (not including) the local root. rmdir only removes empty folders, so a folder
        another delete or a user still fills is left alone."""
        if self.local_root is None:
            return
        root = os.path.abspath(self.local_root)
        # A long path comes in its \\?\ form on Windows (keys.local_path_for): compare without it.
        parent = os.path.dirname(winnames.plain_path(os.path.abspath(path)))
        while parent != root and parent.startswith(root + os.sep):
            try:
                os.rmdir(winnames.long_path_if_needed(parent) if os.name == "nt" else parent)
            except OSError:
                return
            parent = os.path.dirname(parent)

    # -- results ---------------------------------------------------------------------------------
    def _fail(self, op: Action, action: PlannedAction, exc: BucketSyncError) -> None:
        if isinstance(exc, (AuthError, NotFoundError)):
            self.tally.set_fatal(exc)
            self.stop.set()
        self._emit(op, action, Status.FAILED, error=redact(exc), exit_code=int(exc.exit_code))

    def _emit(self, op: Action, action: PlannedAction, status: Status, *, error: str | None = None,
              exit_code: int = 0, bytes_sent: int = 0) -> None:
        name = action.dest.name if isinstance(action.dest, RemoteBlob) else (
            action.source.name if isinstance(action.source, RemoteBlob) else join_blob_name(self.prefix, action.key))
        self.listener.on_result(TransferResult(op=op, key=name, bytes=action.size, status=status, reason=action.reason,
                                               error=error, exit_code=exit_code, bytes_sent=bytes_sent))


def _split_blocked(work: Iterable[PlannedAction], deletes: Sequence[PlannedAction]) -> tuple[list[PlannedAction], list[PlannedAction]]:
    """Downloads that a local extra stands in the way of: a file where the remote has a folder ('a' for
    'a/b'), or a folder where it has a file ('a/x' for 'a'). They can only land once that extra is deleted,
    and deletes wait for the other transfers: these go last, after the deletes."""
    doomed = {d.key for d in deletes}
    doomed_folders = {d.key[:i] for d in deletes for i, ch in enumerate(d.key) if ch == "/"}
    ready: list[PlannedAction] = []
    blocked: list[PlannedAction] = []
    for action in work:
        key = action.key
        parents = (key[:i] for i, ch in enumerate(key) if ch == "/")
        (blocked if key in doomed_folders or any(p in doomed for p in parents) else ready).append(action)
    return ready, blocked
