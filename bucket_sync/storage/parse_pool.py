"""List Blobs pages parsed in a helper process once a listing is big, so the run uses a second core.

Why: a no-op mirror of a million files is CPU-bound in one process (the GIL): reading the pages was ~10 µs
per blob of the ~30 µs a file cost, beside the local scan, the diff and the bookkeeping. Parsed in a helper
process, a page comes back as pickled tuples (~0.35 µs per blob to unpickle), and the main process keeps
its core for the rest. Small listings never start it (a process costs ~0.1 s): only after ``after_pages``
pages in one run, and then parsing goes on in-process until the helper is ready.

Nothing depends on it: a helper that cannot start, dies or answers oddly is dropped for the rest of the
run and pages are parsed in-process again; a page the helper could not read is parsed again here, so its
error is raised exactly as without the helper. POSIX only (forkserver: a fresh process, never a fork of
this multi-threaded one) and only in the bucket-sync command itself; elsewhere, on one CPU, and under the
Python API, pages are always parsed in-process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from .list_pages import Page, parse_page

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)

AFTER_PAGES = 8  # 40,000 blobs: below that, a helper process would not pay for its start


def _parse_or_none(body: bytes) -> Page | None:
    try:
        return parse_page(body)
    except Exception:  # noqa: BLE001 - re-parsed by the caller, whose error is the one to raise
        return None


def _main_is_ours() -> bool:
    """Whether this process is the bucket-sync command. A new process imports the parent's __main__ again:
    harmless for our entry points, but a user's script calling the Python API without a ``__main__`` guard
    would run again in the helper, so there pages are parsed in-process."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and (spec.name or "").startswith("bucket_sync."):
        return True  # python -m bucket_sync
    return os.path.basename(getattr(main, "__file__", None) or "").startswith("bucket-sync")  # the console script


def _available() -> bool:
    return os.name == "posix" and (os.cpu_count() or 1) >= 2 and _main_is_ours()


class ParsePool:
    def __init__(self, *, after_pages: int = AFTER_PAGES, enabled: bool | None = None) -> None:
        self.after_pages = after_pages
        self._enabled = _available() if enabled is None else enabled
        self._lock = threading.Lock()
        self._pages = 0
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[int] | None = None
        self._closed = False

    def parse(self, body: bytes) -> Page:
        pool = self._helper()
        if pool is not None:
            try:
                page = pool.submit(_parse_or_none, body).result()
            except Exception as exc:  # noqa: BLE001 - BrokenProcessPool, OSError, a pickling error
                self._drop(f"{type(exc).__name__}: {exc}")
            else:
                if isinstance(page, Page):
                    return page
        return parse_page(body)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- the helper ----------------------------------------------------------------------------------
    def _helper(self) -> ProcessPoolExecutor | None:
        """The pool when it is ready to take pages, else None (start it when it is due)."""
        with self._lock:
            if not self._enabled or self._closed:
                return None
            if self._pool is None:
                self._pages += 1
                if self._pages < self.after_pages:
                    return None
                try:
                    import multiprocessing
                    from concurrent.futures import ProcessPoolExecutor

                    self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))
                    self._ready = self._pool.submit(int)  # started in the background; pages go on here meanwhile
                except Exception as exc:  # noqa: BLE001
                    self._enabled = False
                    log.debug("no page-parsing helper process (%s: %s)", type(exc).__name__, exc)
                return None
            if self._ready is not None:
                if not self._ready.done():
                    return None
                if self._ready.exception() is not None:
                    self._enabled = False
                    pool, self._pool = self._pool, None
                    log.debug("the page-parsing helper did not start (%s)", self._ready.exception())
                    pool.shutdown(wait=False, cancel_futures=True)
                    return None
                self._ready = None
            return self._pool

    def _drop(self, why: str) -> None:
        log.debug("page-parsing helper dropped (%s): parsing in-process", why)
        with self._lock:
            self._enabled = False
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
