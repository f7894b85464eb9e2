"""Watch mode's eyes: watchdog events turned into ChangeQueue entries, and the observer: started, revived, stopped.

Native watching (inotify on Linux) can fail to start: the per-user watch or instance limit is reached, or
the folder is on a network share that sends no events. Then a polling observer (a snapshot diff every
second or so) takes over, with a warning, and ``--polling`` asks for it from the start.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ..sync.filters import PathFilter
from ..sync.keys import key_from_local
from ..sync.scan import PARTIAL_SUFFIX
from .watch_queue import ChangeQueue, Sig

log = logging.getLogger("bucket_sync.watch")

# Opened / closed-without-write (our own reads while uploading) and folder "modified" (a child changed,
# and the child has its own event) carry nothing to act on.
WANTED_EVENTS = [FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent,
                 FileMovedEvent, DirMovedEvent, FileDeletedEvent, DirDeletedEvent]


class QueueingHandler(FileSystemEventHandler):
    """Every event becomes a touch of the affected key(s); the state found at the re-check is what counts."""

    def __init__(self, root: str, queue: ChangeQueue, filters: PathFilter, *, follow_symlinks: bool) -> None:
        super().__init__()
        self.root = os.path.abspath(root)
        self.queue = queue
        self.filters = filters
        self.follow_symlinks = follow_symlinks
        self.close_events = False  # set when the observer reports close-for-write (inotify)

    def key_for(self, path: str | bytes) -> str | None:
        path = os.fsdecode(path)
        if not path:
            return None
        rel = os.path.relpath(path, self.root)
        if rel == "." or rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
            return None
        if rel.endswith(PARTIAL_SUFFIX):
            return None
        return key_from_local(rel)

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._handle(event)
        except Exception:  # an event is only a hint: never let one kill the observer thread
            log.debug("could not handle %r", event, exc_info=True)

    def _handle(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write") or (event.is_directory and kind in ("modified", "attrib", "closed")):
            return
        self._touch(event.src_path, event)
        if kind == "moved":
            self._touch(event.dest_path, event)

    def _touch(self, path: str | bytes, event: FileSystemEvent) -> None:
        key = self.key_for(path)
        if key is None:
            return
        if not event.is_directory and not self.filters.allows(key):
            return
        kind = event.event_type
        sig = Sig.of(os.fsdecode(path), follow_symlinks=self.follow_symlinks)
        self.queue.touch(key, sig, wrote=self.close_events and kind == "modified",
                         closed=kind == "closed", was_dir=event.is_directory)


def start_observer(root: str, handler: QueueingHandler, *, polling: bool, poll_interval_s: float = 1.0,
                   native_cls: Callable[..., BaseObserver] = Observer,
                   polling_cls: Callable[..., BaseObserver] = PollingObserver) -> tuple[BaseObserver, str]:
    """Start watching ``root``; return (observer, description). Falls back to polling on OSError."""
    if not polling:
        observer = native_cls()
        try:
            observer.schedule(handler, root, recursive=True, event_filter=WANTED_EVENTS)
            observer.start()
            handler.close_events = type(observer).__name__ == "InotifyObserver"
            return observer, "native"
        except OSError as exc:
            stop_quietly(observer)
            log.warning("native file watching failed (%s); falling back to polling every %.1f s "
                        "(raise fs.inotify.max_user_watches, or pass --polling to skip this attempt)",
                        exc.strerror or exc, poll_interval_s)
    handler.close_events = False
    observer = polling_cls(timeout=poll_interval_s)
    observer.schedule(handler, root, recursive=True)
    observer.start()
    return observer, "polling"


def healthy(observer: BaseObserver) -> bool:
    """The observer and every emitter alive: an inotify emitter dies alone (watch limit hit while adding a
    new folder, the watched folder deleted) while the observer thread carries on, seeing nothing."""
    return observer.is_alive() and all(e.is_alive() for e in getattr(observer, "emitters", ()))


def stop_quietly(observer: BaseObserver) -> None:
    try:
        observer.stop()
    except Exception:  # noqa: BLE001 - it never really started: nothing to clean up
        pass


class FolderObserver:
    """The observer over LOCAL_DIR for the whole run: started before the first reconcile (whatever changes
    during that scan is queued, not lost), restarted when it dies, stopped at the end."""

    def __init__(self, root: str, handler: QueueingHandler, *, polling: bool, poll_interval_s: float) -> None:
        self.root = root
        self.handler = handler
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.observer: BaseObserver | None = None  # set by start(), which comes before revive() and stop()
        self.mode = ""  # "native" or "polling": what the status line and /metrics show
        self._root_missing = False

    def start(self) -> None:
        self.observer, self.mode = start_observer(self.root, self.handler, polling=self.polling,
                                                  poll_interval_s=self.poll_interval_s)

    def revive(self) -> bool:
        """Restart a watcher that died (inotify limit hit while adding a new folder, LOCAL_DIR deleted and
        created again); start_observer falls back to polling if native watching cannot start. True when
        restarted: events may have been missed."""
        assert self.observer is not None, "revive() before start()"
        if healthy(self.observer):
            return False
        if not os.path.isdir(self.root):
            if not self._root_missing:
                log.warning("%s is missing; waiting for it to come back (nothing is deleted meanwhile)", self.root)
            self._root_missing = True
            return False
        self._root_missing = False
        log.warning("the file watcher stopped; restarting it and rescanning")
        stop_quietly(self.observer)
        self.observer, self.mode = start_observer(self.root, self.handler,
                                                  polling=self.polling or self.mode == "polling",
                                                  poll_interval_s=self.poll_interval_s)
        return True

    def stop(self) -> None:
        assert self.observer is not None, "stop() before start()"
        self.observer.stop()
        self.observer.join(timeout=2)
