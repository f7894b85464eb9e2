"""Ctrl+C (SIGINT), and Ctrl+Break (SIGBREAK) on Windows: how a command ends when the user stops it.

Ctrl+C raises KeyboardInterrupt in the main thread, wherever it waits. A run catches it (:func:`interruptible`):
its stop event is set, so the engine starts nothing new, uploads and downloads end at their next block, and
backoff and --bwlimit waits end at once; the pair lock is released by its ``with`` as the run unwinds; the
summary (JSON too) is printed as for any run, and the exit code is 130 (README.md, "Exit codes"). Watch keeps its own
handlers (app/watch.py): a clean stop there is exit 0.

Ctrl+Break would end a Windows process on the spot, with no summary and no cleanup: it is routed to whatever
handles Ctrl+C at that moment, so both keys do the same everywhere, in watch too.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

from ..errors import ExitCode
from ..sync.listener import Tally

log = logging.getLogger("bucket_sync")

INTERRUPTED = int(ExitCode.INTERRUPTED)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    elif handler != signal.SIG_IGN:
        raise KeyboardInterrupt


def route_ctrl_break() -> None:
    """Make Ctrl+Break do what Ctrl+C does (Windows; elsewhere there is no SIGBREAK and nothing to do)."""
    sigbreak = getattr(signal, "SIGBREAK", None)
    if sigbreak is not None and threading.current_thread() is threading.main_thread():
        signal.signal(sigbreak, _as_ctrl_c)


def exit_at_next_interrupt() -> None:
    """Once the summary is out: a further Ctrl+C while the process waits for its last threads (a request in
    flight) ends it at once with 130, instead of a traceback from the interpreter's shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return

    def now(signum: int, frame: FrameType | None) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)

    for sig in (signal.SIGINT, getattr(signal, "SIGBREAK", None)):
        if sig is not None:
            signal.signal(sig, now)


@contextmanager
def interruptible(stop: threading.Event, tally: Tally) -> Iterator[None]:
    """The body ends early on Ctrl+C: ``stop`` is set, the tally says 130, and the caller goes on to print
    the summary."""
    try:
        yield
    except KeyboardInterrupt:
        stop.set()
        tally.set_interrupted()
        log.warning("interrupted: transfers in flight were stopped (a later run resumes them); "
                    "nothing else was started")
