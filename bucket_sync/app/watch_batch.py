"""Watch mode's batches: what one engine run finished, whether storage was reachable, remote look-ups,
and which authorization failures end the watcher.

Decisions (README.md, "Watch mode"):
- A batch in which nothing succeeded and several files failed in a row is taken for a storage outage: it
  is stopped early, one cheap request probes storage, and if that fails too every file goes back to the
  queue (no attempt counted) and the watcher backs off (1 s doubling to 30 s). Storage being down never
  ends the watcher.
- Authorization: a missing permission, missing credentials, or a SAS URL given directly that storage
  refuses (it cannot be refreshed) end the watcher with exit 3 at once: retrying cannot fix them. Other
  authorization or not-found errors from a target whose SAS is fetched from the API (a token or SAS that
  could not be renewed, a 401 from the API) are retried with backoff and end the watcher with their exit
  code (3 or 4) only after they persisted for ``GIVE_UP_S`` without one success. Before the first
  reconcile has succeeded, they end it at once: a misconfigured unit should fail visibly, not loop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Iterable

from ..errors import BucketSyncError, ExitCode, TransientError
from ..redact import redact
from ..sas import SasSource
from ..sync.events import Listener, Tally
from ..sync.keys import join_blob_name, key_from_blob_name
from ..sync.model import RemoteBlob, Status, TransferResult
from ..storage.container import Storage
from ..storage.errors import retry_may_cure
from .watch_credentials import ObservedSas
from .watch_events import Sig

log = logging.getLogger("bucket_sync.watch")

LOOKUP_ONE_BY_ONE = 32  # up to this many keys: one request each; more: one listing of their common folder


class BatchWatch(Listener):
    """Sits between one engine run and the run-wide listener: remembers what finished, spots an outage."""

    def __init__(self, prefix: str, listener: Listener, *, outage_after: int,
                 expected: dict[str, tuple[str, Sig]] | None = None, follow_symlinks: bool = False) -> None:
        self.prefix = prefix
        self.follow_symlinks = follow_symlinks  # judge a file as the rest of watch does (watch.py, watch_observer.py)
        self.expected = expected or {}  # key -> (path, what it looked like when judged ready)
        self.listener = listener
        self.outage_after = outage_after
        self.tally = Tally()  # everything the engine reported: its delete guard reads it
        self.reported = Tally()  # what was passed on to the user (the batch's summary for the monitors)
        self.stop = threading.Event()
        self.done: set[str] = set()
        self.results = 0
        self.any_ok = False
        self._failed_in_row = 0
        self._lock = threading.Lock()

    def on_plan(self, files: int, total_bytes: int) -> None:
        self.listener.on_plan(files, total_bytes)

    def on_bytes(self, n: int) -> None:
        self.listener.on_bytes(n)

    def on_notice(self, key: str, message: str) -> None:
        self.listener.on_notice(key, message)

    def on_info(self, message: str) -> None:
        self.listener.on_info(message)

    def on_result(self, result: TransferResult) -> None:
        key = key_from_blob_name(self.prefix, result.key) or result.key
        with self._lock:
            self.results += 1
            if result.status in (Status.OK, Status.SKIPPED, Status.PLANNED):
                self.done.add(key)
                self.any_ok = True
                self._failed_in_row = 0
            elif result.status is Status.FAILED and self._changed_since(key):
                # Written to again while it went up (the uploader refused it): not a failure, the newer
                # version is already queued by its own event.
                log.info("%s: changed while it was uploaded; queued again", key)
                return
            elif result.status is Status.FAILED:
                self._failed_in_row += 1
                if not self.any_ok and self._failed_in_row >= self.outage_after:
                    self.stop.set()  # looks like an outage: don't grind through the rest of the batch
        self.reported.on_result(result)
        self.listener.on_result(result)

    def _changed_since(self, key: str) -> bool:
        seen = self.expected.get(key)
        return seen is not None and Sig.of(seen[0], follow_symlinks=self.follow_symlinks) != seen[1]

    def unfinished(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self.done]

    def reachable(self, storage: Storage, keys: list[str]) -> bool:
        """Did the failures come from the files, or from storage being unreachable?"""
        if self.any_ok or not keys:
            return True
        try:
            storage.get(join_blob_name(self.prefix, keys[0]), keys[0])
        except TransientError:
            return False
        return True

    def raise_if_fatal(self) -> None:
        if self.tally.fatal is not None:
            raise self.tally.fatal

    def outage_error(self) -> TransientError:
        return TransientError("storage is unreachable")

    def raise_if_unreachable(self, storage: Storage, work) -> None:
        self.raise_if_fatal()
        if not self.reachable(storage, self.unfinished(a.key for a in work)):
            raise self.outage_error()


def refuse_emptying(root: str, plan) -> str | None:
    """With --delete, a reconcile that finds LOCAL_DIR empty deletes nothing: an empty LOCAL_DIR is far
    more often an unmounted disk or share than a wish to empty the bucket. Returns the refusal (also
    logged as a warning, and sent with --notify-url), after taking the deletes out of ``plan``."""
    if not (plan.deletes and plan.source_count == 0):
        return None
    refusal = (f"{root} is empty: not deleting the {len(plan.deletes)} blob(s) under the remote "
               f"(delete files one by one, or use mirror --force, to empty it)")
    log.warning("%s", refusal)
    plan.deletes = []
    return refusal


class AuthPolicy:
    """Which authorization and not-found errors the watcher outlives (module docstring)."""

    GIVE_UP_S = 600.0

    def __init__(self, source: SasSource, clock) -> None:
        while isinstance(source, ObservedSas):  # --metrics only observes the SAS: judge what it wraps
            source = source.inner
        self.source = source
        self.clock = clock
        self.started = False
        self.first_failure: float | None = None

    def succeeded(self) -> None:
        self.started = True
        self.first_failure = None

    def survivable(self, exc: BucketSyncError) -> bool:
        if exc.exit_code not in (ExitCode.AUTH, ExitCode.NOT_FOUND):
            return exc.exit_code != ExitCode.USAGE  # storage and network trouble: back off and retry
        if not self.started or not retry_may_cure(exc, self.source):
            return False
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        if now - self.first_failure >= self.GIVE_UP_S:
            return False
        log.warning("%s; retrying (the watcher exits with code %d if this lasts %.0f minutes)",
                    redact(exc.message), int(exc.exit_code), self.GIVE_UP_S / 60)
        return True


def _rekey(prefix: str, blobs: Iterable[RemoteBlob]) -> list[RemoteBlob]:
    out = []
    for b in blobs:
        key = key_from_blob_name(prefix, b.name)
        if key:
            out.append(dataclasses.replace(b, key=key))
    return out


def common_folder(keys: list[str]) -> str:
    parents = [k.rsplit("/", 1)[0] if "/" in k else "" for k in keys]
    if any(p == "" for p in parents):
        return ""
    return os.path.commonpath(parents).replace(os.sep, "/")


def lookup_remote(storage: Storage, prefix: str, keys: list[str], *, can_list: bool = True) -> list[RemoteBlob]:
    """The remote side of ``keys``, sorted by key (what the diff walks against the local files): looked up
    one by one (concurrently) when they are few or the SAS cannot list, else one listing of their folder."""
    wanted = set(keys)
    if len(keys) <= LOOKUP_ONE_BY_ONE or not can_list:
        blobs = list(storage.look_up_each(prefix, keys))
    else:
        folder = common_folder(keys)
        listed = _rekey(prefix, storage.list(join_blob_name(prefix, folder) if folder else prefix))
        blobs = [b for b in listed if b.key in wanted]
    return sorted({b.key: b for b in blobs}.values(), key=lambda b: b.key)


def remote_under(storage: Storage, prefix: str, gone: list[tuple[str, bool]]) -> list[RemoteBlob]:
    """Blobs at each gone key, and under it when it was a folder (a whole folder deleted or moved away)."""
    keys = [k for k, _ in gone]
    wanted = set(keys)
    blobs: list[RemoteBlob] = []
    if len(gone) <= LOOKUP_ONE_BY_ONE:
        for key, _was_dir in gone:
            blob = storage.get(join_blob_name(prefix, key), key)
            if blob is not None:
                blobs.append(blob)
            # Listed even when the event did not say "folder": a missed hint must not leave blobs behind.
            blobs.extend(_rekey(prefix, storage.list(join_blob_name(prefix, key))))
    else:
        folder = common_folder(keys)
        for b in _rekey(prefix, storage.list(join_blob_name(prefix, folder) if folder else prefix)):
            parts = b.key.split("/")
            if any("/".join(parts[:i]) in wanted for i in range(1, len(parts) + 1)):
                blobs.append(b)
    return sorted({b.key: b for b in blobs}.values(), key=lambda b: b.key)


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
