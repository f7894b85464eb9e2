"""Run a plan: files in parallel, blocks in parallel, bounded memory, per-file retries, one result each.

A failed file is a result, not an exception: the run goes on and the Tally maps results to the exit code.
Errors that would fail every remaining file the same way (no permission, expired SAS, missing container)
stop the run early instead of hammering storage with doomed requests.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import AuthError, BucketSyncError, NotFoundError
from ..redact import redact
from .bandwidth import RateLimiter, Unlimited
from .budget import ByteBudget, MiB, return_big_buffers_to_os
from .diff import DiffPolicy, diff
from .download import Downloader
from .events import Listener, Tally
from . import winnames
from .keys import CaseClashGuard, is_case_insensitive_dir, join_blob_name
from .model import (Action, BlobExtras, Direction, Entry, LocalFile, Op, PlannedAction, Reason, RemoteBlob, Status,
                    TransferResult)
from .remote import Remote
from .upload import Uploader, file_md5

log = logging.getLogger(__name__)

# The main thread waits in slices: on Windows a lock wait without a timeout cannot be interrupted, so Ctrl+C
# would only be seen once every transfer had finished.
WAKE_S = 0.5


@dataclass(frozen=True)
class TransferSettings:
    concurrency: int = 16
    block_size: int | None = None  # None: chosen from the file size
    memory_budget: int = 64 * MiB  # bytes buffered across everything in flight (keeps peak RSS < 150 MB)
    file_attempts: int = 3  # whole-file attempts on transient errors, on top of per-request retries
    dry_run: bool = False
    bwlimit: int | None = None  # bytes per second across the whole run
    modify_window_ns: int | None = None  # --modify-window: mtimes closer than this are equal
    extras: BlobExtras = BlobExtras()  # upload: --content-type, --metadata


@dataclass
class Plan:
    """What a run will do. Skipped keys are counted, not kept: a no-op run holds nothing per file."""

    work: list[PlannedAction] = field(default_factory=list)
    deletes: list[PlannedAction] = field(default_factory=list)
    rejected: list[PlannedAction] = field(default_factory=list)
    skipped: int = 0
    dest_count: int = 0
    source_count: int = 0

    @property
    def work_bytes(self) -> int:
        return sum(a.size for a in self.work)


class Engine:
    def __init__(self, storage: Remote, *, direction: Direction, prefix: str, local_root: str | None,
                 settings: TransferSettings, listener: Listener, tally: Tally,
                 stop: threading.Event | None = None) -> None:
        self.storage = storage
        self.direction = direction
        self.prefix = prefix
        self.local_root = local_root
        self.settings = settings
        self.listener = listener
        self.tally = tally
        self.stop = stop or threading.Event()
        self.op = Op.UPLOAD if direction is Direction.UP else Op.DOWNLOAD

    # -- planning ----------------------------------------------------------------------------------
    def plan(self, sources: Iterable[Entry], dests: Iterable[Entry], policy: DiffPolicy) -> Plan:
        plan = Plan()
        policy = policy.with_window_at_least(self.settings.modify_window_ns)  # every caller's plans, watch's too
        counted_dests = Counted(dests)
        counted_sources = Counted(sources)
        clashes = self._case_clash_guard()
        each_unchanged = self.listener.wants_unchanged
        for action in diff(counted_sources, counted_dests, policy):
            if clashes is not None and action.source is not None and action.action is not Action.REJECT:
                other = clashes.clash(action.key)
                if other is not None:
                    action = PlannedAction(Action.REJECT, Reason.NAME_CLASH, action.key, action.source, action.dest,
                                           f"name differs only in case from {other!r} and the destination folder "
                                           f"is case-insensitive: one would overwrite the other")
            if action.action is Action.SKIP:
                plan.skipped += 1
                if each_unchanged:
                    self._emit(self.op, action, Status.SKIPPED)
            elif action.action is Action.DELETE:
                plan.deletes.append(action)
            elif action.action is Action.REJECT:
                plan.rejected.append(action)
            else:
                plan.work.append(action)
        if clashes is not None and plan.deletes:
            # 'readme.md' here and 'README.md' remote are one file on this destination: not an extra.
            plan.deletes = [d for d in plan.deletes if not clashes.knows(d.key)]
        plan.dest_count = counted_dests.n
        plan.source_count = counted_sources.n
        if not each_unchanged:
            self.tally.add_unchanged(self.op, plan.skipped)
        return plan

    def _case_clash_guard(self) -> CaseClashGuard | None:
        if self.direction is Direction.DOWN and self.local_root is not None and is_case_insensitive_dir(self.local_root):
            return CaseClashGuard()
        return None

    # -- running ---------------------------------------------------------------------------------
    def run(self, plan: Plan, *, delete: bool = True) -> None:
        for action in plan.rejected:
            self._emit(self.op, action, Status.FAILED, error=f"{action.detail}; not written", exit_code=1)
        self.listener.on_plan(len(plan.work) + (len(plan.deletes) if delete else 0), plan.work_bytes)
        if self.settings.dry_run:
            for action in plan.work:
                self._emit(self.op, action, Status.PLANNED)
            for action in plan.deletes if delete else ():
                self._emit(Op.DELETE, action, Status.PLANNED)
            return
        concurrency = max(1, self.settings.concurrency)
        return_big_buffers_to_os()
        budget = ByteBudget(max(self.settings.memory_budget, 2 * (self.settings.block_size or 0)))
        # A --bwlimit wait ends at once when the run is stopped (Ctrl+C), instead of holding the exit back.
        limiter = RateLimiter(self.settings.bwlimit, sleep=self.stop.wait) if self.settings.bwlimit else Unlimited()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="file") as files, \
                ThreadPoolExecutor(concurrency, thread_name_prefix="block") as blocks:
            self._uploader = Uploader(self.storage, blocks, budget, block_size=self.settings.block_size,
                                      on_bytes=self.listener.on_bytes, cancel=self.stop, limiter=limiter,
                                      extras=self.settings.extras)
            self._downloader = Downloader(self.storage, blocks, budget, chunk_size=self.settings.block_size,
                                          on_bytes=self.listener.on_bytes, cancel=self.stop, limiter=limiter)
            work, blocked = plan.work, []
            if delete and plan.deletes and self.direction is Direction.DOWN:
                work, blocked = _split_blocked(plan.work, plan.deletes)
            self._submit_all(files, work, self._transfer, concurrency)
            if delete and plan.deletes:
                failed = self.tally.count(None, Status.FAILED)
                if failed or self.tally.fatal or self.stop.is_set():
                    for action in plan.deletes:
                        self._emit(Op.DELETE, action, Status.SKIPPED,
                                   error=f"not deleted: {failed} transfer(s) failed, deletes wait for a clean run")
                    for action in blocked:
                        self._emit(self.op, action, Status.FAILED, exit_code=1,
                                   error="waits for a local extra in its way to be deleted, after a clean run")
                else:
                    self._submit_all(files, plan.deletes, self._delete, concurrency)
                    self._submit_all(files, blocked, self._transfer, concurrency)

    def _submit_all(self, pool: ThreadPoolExecutor, actions: list[PlannedAction], fn, concurrency: int) -> None:
        slots = threading.BoundedSemaphore(concurrency * 2)  # bounds files queued, not just running
        # Only the files not done yet are kept: every Future of a run, kept to the end, was ~1.6 KB a file
        # (400 MB of a first upload of 250,000 files).
        pending: set = set()
        failures: list[BaseException] = []
        lock = threading.Lock()

        def done(fut) -> None:
            with lock:
                pending.discard(fut)
                if not fut.cancelled() and fut.exception() is not None:
                    failures.append(fut.exception())
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
                    fut = next(iter(pending), None)
                if fut is None:
                    break
                try:
                    fut.result(timeout=WAKE_S)  # a file's own error is raised here (or above, if first seen there)
                except FuturesTimeout:
                    continue
                with lock:
                    pending.discard(fut)
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
                    action = PlannedAction(self.op_action, Reason.CONTENT_CHANGED, action.key, action.source, action.dest)
                sent = self._move_bytes(action)
                self._emit(self.op, action, Status.OK, bytes_sent=sent)
                return
            except BucketSyncError as exc:
                if exc.retryable and attempt < attempts and not self.stop.is_set():
                    log.info("%s: %s; retrying (attempt %d of %d)", action.key, redact(exc), attempt + 1, attempts)
                    time.sleep(random.uniform(0.5, 1.5) * attempt)
                    continue
                self._fail(self.op, action, exc)
                return
            except Exception as exc:  # a bug or an untranslated library error: report it, keep going
                log.debug("unexpected error on %s", action.key, exc_info=True)
                self._fail(self.op, action, BucketSyncError(f"{action.key}: unexpected {type(exc).__name__}: {redact(exc)}"))
                return

    @property
    def op_action(self) -> Action:
        return Action.UPLOAD if self.direction is Direction.UP else Action.DOWNLOAD

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
            self._emit(Op.DELETE, action, Status.OK)
        except BucketSyncError as exc:
            self._fail(Op.DELETE, action, exc)

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
    def _fail(self, op: Op, action: PlannedAction, exc: BucketSyncError) -> None:
        if isinstance(exc, (AuthError, NotFoundError)):
            self.tally.set_fatal(exc)
            self.stop.set()
        self._emit(op, action, Status.FAILED, error=redact(exc), exit_code=int(exc.exit_code))

    def _emit(self, op: Op, action: PlannedAction, status: Status, *, error: str | None = None,
              exit_code: int = 0, bytes_sent: int = 0) -> None:
        name = action.dest.name if isinstance(action.dest, RemoteBlob) else (
            action.source.name if isinstance(action.source, RemoteBlob) else join_blob_name(self.prefix, action.key))
        self.listener.on_result(TransferResult(op=op, key=name, bytes=action.size, status=status, reason=action.reason,
                                               error=error, exit_code=exit_code, bytes_sent=bytes_sent))


def _split_blocked(work: list[PlannedAction], deletes: list[PlannedAction]) -> tuple[list[PlannedAction], list[PlannedAction]]:
    """Downloads that a local extra stands in the way of: a file where the remote has a folder ('a' for
    'a/b'), or a folder where it has a file ('a/x' for 'a'). They can only land once that extra is deleted,
    and deletes wait for the other transfers: these go last, after the deletes."""
    doomed = {d.key for d in deletes}
    doomed_folders = {d.key[:i] for d in deletes for i, ch in enumerate(d.key) if ch == "/"}
    ready, blocked = [], []
    for action in work:
        key = action.key
        parents = (key[:i] for i, ch in enumerate(key) if ch == "/")
        (blocked if key in doomed_folders or any(p in doomed for p in parents) else ready).append(action)
    return ready, blocked


class Counted:
    """Counts entries as they are consumed: the mirror guard needs the destination's size, a download
    whether its listing found anything at all."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._it = iter(entries)
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self) -> Entry:
        item = next(self._it)
        self.n += 1
        return item
