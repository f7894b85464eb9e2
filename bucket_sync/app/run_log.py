"""What a run writes besides its renderer: a log file (--log-file, rotating for watch) and periodic status
lines (--stats), both listeners of the same events, so counting stays separate from showing.

Why a log file of its own: cron and long watch runs are read afterwards, and redirecting stderr loses
the time of each line; the file gets every log record (at INFO at least, -vv for debug) with a
timestamp, plus one line per file transferred, failed or planned and the summary, all through the same
redacting filter as the console.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import UsageError
from ..redact import RedactingFilter, redact
from ..sync.listener import FanOut, Listener, Summary
from ..sync.model import Status, TransferResult

if TYPE_CHECKING:
    from .render import HumanRenderer, JsonRenderer

RESULTS_LOGGER = "bucket_sync.results"  # per-file lines: the log file only, never the console
# Without a log file the lines go nowhere (not to the console through the root, nor to logging's
# last-resort handler, which would print errors a second time).
logging.getLogger(RESULTS_LOGGER).propagate = False
logging.getLogger(RESULTS_LOGGER).addHandler(logging.NullHandler())
ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_KEEP = 5


def log_error(log: logging.Logger, message: str, hint: str | None = None) -> None:
    """An error the run reports as it ends, in the form cli/error_output.echo_error gives the terminal
    (``error: ...`` and ``  hint: ...``, redacted), but through logging, so --log-file keeps it too."""
    log.error("error: %s", redact(message))
    if hint:
        log.error("  hint: %s", redact(hint))


def file_handler(path: str, *, rotating: bool) -> logging.Handler:
    """A handler appending to ``path`` (watch: rotated at 10 MiB, 5 kept), or UsageError naming the cause."""
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if rotating:
            # Imported here: logging.handlers pulls in pickle, queue and socket, a few ms every run pays at
            # start-up when only `watch --log-file` rotates.
            from logging.handlers import RotatingFileHandler

            handler: logging.Handler = RotatingFileHandler(
                target, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP, encoding="utf-8")
        else:
            handler = logging.FileHandler(target, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the log file {target}: {exc.strerror or exc}",
                         hint="give --log-file a path in a writable folder") from None
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    results = logging.getLogger(RESULTS_LOGGER)
    results.setLevel(logging.INFO)
    for old in list(results.handlers):
        results.removeHandler(old)
    results.addHandler(handler)
    return handler


class ResultLog(Listener):
    """One log-file line per file that was transferred, failed, or (dry run) planned, and the summary."""

    wants_unchanged = False

    def __init__(self) -> None:
        self.log = logging.getLogger(RESULTS_LOGGER)

    def on_result(self, r: TransferResult) -> None:
        reason = f" ({r.reason.value})" if r.reason else ""
        if r.status is Status.FAILED:
            self.log.warning("FAILED %s %s: %s", r.op.value, r.key, r.error)
        elif r.status is Status.OK:
            self.log.info("%s %s%s, %d bytes", r.op.value, r.key, reason, r.bytes)
        elif r.status is Status.PLANNED:
            self.log.info("would %s %s%s", r.op.value, r.key, reason)
        elif r.error:
            self.log.info("skipped %s: %s", r.key, r.error)

    def on_info(self, message: str) -> None:
        self.log.info("note: %s", message)

    def finish(self, summary: Summary) -> None:
        self.log.info("%s", " ".join(f"{k}={v}" for k, v in summary.as_event().items() if k != "event"))


class Stats(Listener):
    """Counts files and bytes and, every ``interval`` seconds, hands a status to ``emit`` (a human line on
    stderr, or a JSON ``stats`` event): what a cron job's log or a CI console shows instead of a bar."""

    wants_unchanged = False

    def __init__(self, interval: float, emit: Callable[[dict[str, Any]], None], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.emit = emit
        self.clock = clock
        self.started = clock()
        self.files_total = self.bytes_total = self.files_done = self.bytes_done = self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats", daemon=True)
        self._thread.start()

    def on_plan(self, files: int, total_bytes: int) -> None:
        with self._lock:
            self.files_total += files
            self.bytes_total += total_bytes

    def on_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_done += n

    def on_result(self, r: TransferResult) -> None:
        if r.status in (Status.OK, Status.FAILED):
            with self._lock:
                self.files_done += 1
                self.failed += r.status is Status.FAILED

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            elapsed = max(self.clock() - self.started, 1e-6)
            rate = self.bytes_done / elapsed
            left = max(self.bytes_total - self.bytes_done, 0)
            eta = round(left / rate) if rate > 0 else None
            return {"event": "stats", "files_done": self.files_done, "files_total": self.files_total,
                    "failed": self.failed, "bytes_done": self.bytes_done, "bytes_total": self.bytes_total,
                    "rate": round(rate), "elapsed_s": round(elapsed, 1), "eta_s": eta}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit(self.snapshot())

    def finish(self, summary: Summary) -> None:
        self._stop.set()


def stats_line(stats: dict[str, Any]) -> str:
    from .render import human_bytes

    eta = f"ETA {stats['eta_s']} s" if stats["eta_s"] is not None else "ETA unknown"
    return (f"status: {stats['files_done']}/{stats['files_total']} files, {human_bytes(stats['bytes_done'])} of "
            f"{human_bytes(stats['bytes_total'])}, {human_bytes(stats['rate'])}/s, {eta}"
            + (f", {stats['failed']} failed" if stats["failed"] else ""))


class WithExtras(FanOut):
    """The renderer plus the run's extra listeners (log file, stats): one object for the command to hand
    to the run and to finish."""

    def __init__(self, renderer: JsonRenderer | HumanRenderer, extras: Sequence[ResultLog | Stats]) -> None:
        super().__init__(renderer, *extras)
        self.renderer = renderer
        self.extras = extras
        self.wants_unchanged = renderer.wants_unchanged  # the extras count in bulk

    def emit(self, obj: dict[str, Any], **kw: Any) -> None:  # watch's status events go through the renderer
        self.renderer.emit(obj, **kw)  # type: ignore[union-attr]  # HumanRenderer has none: with --json only

    def finish(self, summary: Summary) -> None:
        for extra in self.extras:
            extra.finish(summary)
        self.renderer.finish(summary)


__all__ = ["ResultLog", "Stats", "WithExtras", "file_handler", "stats_line"]
