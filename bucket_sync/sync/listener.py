"""The Listener protocol the engine reports to, and the listeners every run has: FanOut and the Tally (counting
results into the run's Summary and exit code) are listeners, each renderer is another."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import BucketSyncError, ExitCode
from .model import RESULT_ACTIONS, Action, Status, TransferResult


class Listener:
    """What the engine reports. Called from worker threads: implementations must be thread-safe."""

    # Whether on_result wants one call per file skipped as unchanged. A no-op run over a big tree skips
    # every file: when nobody prints them, the engine only counts them (Tally.add_unchanged).
    wants_unchanged = True

    def on_plan(self, files: int, total_bytes: int) -> None: ...
    def on_bytes(self, n: int) -> None: ...
    def on_result(self, result: TransferResult) -> None: ...
    def on_notice(self, key: str, message: str) -> None: ...
    def on_info(self, message: str) -> None:
        """Something about the whole run the user should know once (e.g. that the SAS cannot list)."""


class FanOut(Listener):
    def __init__(self, *listeners: Listener) -> None:
        self.listeners = listeners
        self.wants_unchanged = any(listener.wants_unchanged for listener in listeners)

    def on_plan(self, files: int, total_bytes: int) -> None:
        for listener in self.listeners:
            listener.on_plan(files, total_bytes)

    def on_bytes(self, n: int) -> None:
        for listener in self.listeners:
            listener.on_bytes(n)

    def on_result(self, result: TransferResult) -> None:
        for listener in self.listeners:
            listener.on_result(result)

    def on_notice(self, key: str, message: str) -> None:
        for listener in self.listeners:
            listener.on_notice(key, message)

    def on_info(self, message: str) -> None:
        for listener in self.listeners:
            listener.on_info(message)


@dataclass(frozen=True)
class Summary:
    op: str
    uploaded: int
    downloaded: int
    deleted: int
    skipped: int
    failed: int
    bytes: int
    seconds: float
    exit_code: int
    planned: int = 0

    def as_event(self) -> dict[str, Any]:
        return {"event": "summary", "op": self.op, "uploaded": self.uploaded, "downloaded": self.downloaded,
                "deleted": self.deleted, "skipped": self.skipped, "failed": self.failed, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "exit_code": self.exit_code}


class Tally(Listener):
    """Counts results; the one place that turns them into the run's exit code."""

    wants_unchanged = False  # counted in bulk through add_unchanged

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.started = clock()
        self.counts = {(op, st): 0 for op in RESULT_ACTIONS for st in Status}
        self.bytes = 0  # bytes that crossed the wire
        self.worst_failure = 0
        self.fatal: BucketSyncError | None = None
        self.interrupted = False  # Ctrl+C: the run ended early (app/interrupt.py)

    def on_result(self, result: TransferResult) -> None:
        with self._lock:
            self.counts[(result.op, result.status)] += 1
            if result.status is Status.OK:
                self.bytes += result.bytes_sent
            if result.status is Status.FAILED:
                self.worst_failure = max(self.worst_failure, result.exit_code or ExitCode.FAILED)

    def add_unchanged(self, op: Action, n: int) -> None:
        with self._lock:
            self.counts[(op, Status.SKIPPED)] += n

    def set_interrupted(self) -> None:
        with self._lock:
            self.interrupted = True

    def set_fatal(self, error: BucketSyncError) -> None:
        with self._lock:
            if self.fatal is None:
                self.fatal = error

    def count(self, op: Action | None, status: Status) -> int:
        return sum(n for (o, s), n in self.counts.items() if s is status and (op is None or o is op))

    @property
    def exit_code(self) -> int:
        if self.interrupted:  # whatever else happened: the run did not finish, and the user knows why
            return int(ExitCode.INTERRUPTED)
        if self.fatal is not None:
            return int(self.fatal.exit_code)
        if self.count(None, Status.FAILED):
            # Auth/permission failures say more to a cron job than a plain "some files failed".
            return int(self.worst_failure if self.worst_failure in (ExitCode.AUTH, ExitCode.NOT_FOUND) else ExitCode.FAILED)
        return 0

    def summary(self, op: str) -> Summary:
        return Summary(
            op=op,
            uploaded=self.count(Action.UPLOAD, Status.OK),
            downloaded=self.count(Action.DOWNLOAD, Status.OK),
            deleted=self.count(Action.DELETE, Status.OK),
            skipped=self.count(None, Status.SKIPPED),
            failed=self.count(None, Status.FAILED),
            bytes=self.bytes,
            seconds=self._clock() - self.started,
            exit_code=self.exit_code,
            planned=self.count(None, Status.PLANNED),
        )
