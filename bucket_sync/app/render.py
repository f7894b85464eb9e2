"""Renderers: human (tqdm progress + one-line summary), JSON lines, quiet. All read the same events.

Encodings: ``--json`` output is UTF-8 whatever the locale or console code page (stdout is switched to
UTF-8: JSON is UTF-8 by definition, RFC 8259), and no output ever crashes on a character its stream cannot
encode (a file name outside cp1252 on a Windows console, a lone surrogate from an undecodable POSIX name):
such a character is written as a backslash escape (``\\u6e2c``) instead, which inside a JSON string is the
JSON escape of the same character.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ..errors import ExitCode
from ..sync.listener import Listener, Summary
from ..sync.model import Action, Status, TransferResult

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger("bucket_sync")


def _is_utf8(stream: object) -> bool:
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False


def console_safe(stream: TextIO) -> TextIO:
    """``stream``, set to escape (``\\u6e2c``) what its encoding cannot hold instead of raising
    UnicodeEncodeError; a stream that already replaces or escapes is left alone."""
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # closed, or a wrapper that refuses: the caller still writes
            pass
    return stream


def utf8_stream(stream: TextIO) -> bool:
    """Make ``stream`` write UTF-8 (unencodable surrogates escaped); False when it cannot be switched and
    is not UTF-8 already (the caller then writes ASCII-only JSON)."""
    if isinstance(stream, io.TextIOWrapper):
        try:
            if not _is_utf8(stream):
                stream.reconfigure(encoding="utf-8", errors="backslashreplace")
            elif stream.errors not in ("backslashreplace", "surrogateescape"):
                stream.reconfigure(errors="backslashreplace")
            return True
        except (ValueError, OSError):
            return _is_utf8(stream)
    # io.StringIO and the like hold str, not bytes: nothing is encoded, nothing can fail.
    return getattr(stream, "encoding", None) is None or _is_utf8(stream)


def make_console_safe() -> None:
    """For the CLI's start: no print, echo or log line of this process can crash on an encoding."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            console_safe(stream)


_second: list[int | str | None] = [None, ""]  # (whole second, its formatted text): strftime once a second, not per event


def rfc3339_now() -> str:
    """Now in UTC as RFC 3339 with milliseconds (``2026-12-01T09:50:14.123Z``)."""
    now = time.time()
    whole = int(now)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((now - whole) * 1000):03d}Z"


def with_time(obj: dict[str, Any]) -> dict[str, Any]:
    """Every JSON event carries the time it happened (README.md, "Output")."""
    return obj if "time" in obj else {**obj, "time": rfc3339_now()}


# "uploaded a.jpg": a table, not "+ed" with a fix-up (which also rewrote "seed 1.jpg" as "sed 1.jpg").
PAST = {Action.UPLOAD: "uploaded", Action.DOWNLOAD: "downloaded", Action.DELETE: "deleted"}


def result_event(r: TransferResult) -> dict[str, Any]:
    """A transfer result as the ``transfer`` event of --json (and of the Python API's on_event)."""
    obj = {"event": "transfer", "op": r.op.value, "key": r.key, "bytes": r.bytes, "status": r.status.value}
    if r.reason is not None:
        obj["reason"] = r.reason.value
    if r.error:
        obj["error"] = r.error
    return obj


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class JsonRenderer(Listener):
    """stdout carries only JSON objects, one per line (README.md, "Output")."""

    def __init__(self, out: TextIO | None = None, *, verbose: int = 0) -> None:
        self.out = out or sys.stdout
        # An unchanged file gets a line only at -v: a cron no-op over a million files printed a million
        # lines (~100 MB a run). The summary counts them either way.
        self.wants_unchanged = verbose >= 1
        # UTF-8 whatever the locale: a cp1252 Windows pipe would otherwise crash on a name like 測量.jpg,
        # and write é as a byte no JSON reader decodes.
        self._ensure_ascii = not utf8_stream(self.out)
        console_safe(sys.stderr)  # the log lines beside the JSON (a skipped file's name...)
        self._lock = threading.Lock()

    def emit(self, obj: dict[str, Any], *, flush: bool = True) -> None:
        line = json.dumps(with_time(obj), ensure_ascii=self._ensure_ascii)
        with self._lock:
            self.out.write(line + "\n")
            if flush:
                self.out.flush()

    def on_result(self, r: TransferResult) -> None:
        obj = result_event(r)
        # Lines for unchanged files wait in the buffer (a no-op run prints one per file, and a write call
        # each cost more than the rest of the run); anything that happened is flushed at once.
        self.emit(obj, flush=r.status is not Status.SKIPPED or bool(r.error))

    def on_notice(self, key: str, message: str) -> None:
        log.warning("%s: %s", key, message)

    def on_info(self, message: str) -> None:
        log.warning("note: %s", message)
        self.emit({"event": "notice", "message": message})

    def finish(self, summary: Summary) -> None:
        self.emit(summary.as_event())


class HumanRenderer(Listener):
    """A progress bar on stderr when it is a terminal; failures and (with -v) each file as log lines."""

    def __init__(self, *, quiet: bool = False, verbose: int = 0, progress: bool | None = None,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = console_safe(out or sys.stdout)
        self.err = console_safe(err or sys.stderr)
        self.quiet = quiet
        self.verbose = verbose
        self.progress = (not quiet) and (self.err.isatty() if progress is None else progress)
        self.wants_unchanged = verbose > 1  # "skipped <key>" lines, at -vv
        self._bar: "tqdm[NoReturn] | None" = None
        self._lock = threading.Lock()
        self._files_total = 0
        self._files_done = 0

    def on_plan(self, files: int, total_bytes: int) -> None:
        self._files_total = files
        if self.progress and files:
            from tqdm import tqdm  # only with a terminal to draw on: cron runs skip the import

            self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=self.err,
                             dynamic_ncols=True, desc=f"0/{files} files", mininterval=0.2, leave=True)

    def on_bytes(self, n: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def _line(self, text: str, *, to_err: bool = True) -> None:
        stream = self.err if to_err else self.out
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=stream)
            else:
                stream.write(text + "\n")
                stream.flush()

    def on_result(self, r: TransferResult) -> None:
        if r.status is Status.PLANNED:
            reason = f" ({r.reason.value})" if r.reason else ""
            self._line(f"would {r.op.value} {r.key}{reason}", to_err=False)
            return
        if r.status is Status.FAILED:
            self._line(f"FAILED {r.op.value} {r.key}: {r.error}")
        elif r.status is Status.OK:
            if self.verbose:
                self._line(f"{PAST[r.op]} {r.key}" + (f" ({r.reason.value})" if r.reason else ""))
        elif r.status is Status.SKIPPED and (self.verbose > 1 or r.error):
            self._line(f"skipped {r.key}" + (f": {r.error}" if r.error else ""))
        if r.status in (Status.OK, Status.FAILED):
            with self._lock:
                self._files_done += 1
                if self._bar is not None:
                    self._bar.set_description_str(f"{self._files_done}/{self._files_total} files", refresh=False)

    def on_notice(self, key: str, message: str) -> None:
        if not self.quiet:
            self._line(f"skipped {key}: {message}")

    def on_info(self, message: str) -> None:
        if not self.quiet:
            self._line(f"note: {message}")

    def finish(self, summary: Summary) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.quiet:
            return
        parts = ["interrupted"] if summary.exit_code == ExitCode.INTERRUPTED else []
        if summary.planned:
            parts.append(f"dry run: {summary.planned} action(s) planned")
        for word, n in (("uploaded", summary.uploaded), ("downloaded", summary.downloaded), ("deleted", summary.deleted)):
            if n:
                parts.append(f"{word} {n}")
        parts.append(f"skipped {summary.skipped}")
        parts.append(f"failed {summary.failed}")
        rate = summary.bytes / summary.seconds if summary.seconds > 0 else 0
        line = f"{summary.op}: " + ", ".join(parts) + f"; {human_bytes(summary.bytes)} in {summary.seconds:.1f} s"
        if summary.bytes:
            line += f" ({human_bytes(rate)}/s)"
        self.out.write(line + "\n")
        self.out.flush()
