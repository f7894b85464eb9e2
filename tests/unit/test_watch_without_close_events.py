"""README.md, "Windows, macOS and Linux": watch where the observer reports no close-for-write (macOS FSEvents and
kqueue, Windows, and polling): a file is uploaded once its size and mtime stayed the same for the whole debounce window,
and nothing ever waits for a close event that cannot come. Real files and the real event handler, a fake clock."""

from __future__ import annotations

import os

from watchdog.events import FileCreatedEvent, FileModifiedEvent

from bucket_sync.app.watch_queue import ChangeQueue, Sig, Verdict, verdict
from bucket_sync.app.watch_observer import QueueingHandler
from bucket_sync.sync.filters import PathFilter


class Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


def judge(queue: ChangeQueue, clock: Clock, root) -> list[tuple[str, Verdict]]:
    """What the watcher decides for what is due, from what the files look like now (as watch.py does)."""
    return [(p.key, verdict(p, Sig.of(os.path.join(root, p.key)), clock(), debounce_s=queue.debounce_s,
                            open_grace_s=queue.open_grace_s))
            for p in queue.take_due()]


def test_a_file_is_ready_once_size_and_mtime_held_for_the_debounce_window(tmp_path):
    clock = Clock()
    queue = ChangeQueue(debounce_s=2.0, clock=clock)
    handler = QueueingHandler(str(tmp_path), queue, PathFilter(), follow_symlinks=False)
    handler.close_events = False  # what start_observer sets for every observer but inotify's
    path = tmp_path / "scan.las"

    path.write_bytes(b"x" * 100)
    handler.on_any_event(FileCreatedEvent(str(path)))
    for n in range(1, 4):  # the writer keeps appending: each piece an event, a new size, a new mtime
        clock.t += 1.0
        with open(path, "ab") as fh:
            fh.write(b"y" * 100)
        os.utime(path, ns=(0, 1_700_000_000_000_000_000 + n))
        handler.on_any_event(FileModifiedEvent(str(path)))
        assert judge(queue, clock, tmp_path) == [], "not due while events keep coming"

    clock.t += 2.1  # quiet for the whole window: same size and mtime as at the last event
    assert judge(queue, clock, tmp_path) == [("scan.las", Verdict.READY)]


def test_a_change_seen_only_by_stat_sends_the_file_back_to_wait(tmp_path):
    """Events are hints: a write the observer did not report (FSEvents coalesces them) is caught by the
    size and mtime at the re-check."""
    clock = Clock()
    queue = ChangeQueue(debounce_s=1.0, clock=clock)
    handler = QueueingHandler(str(tmp_path), queue, PathFilter(), follow_symlinks=False)
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"a" * 10)
    handler.on_any_event(FileCreatedEvent(str(path)))
    clock.t += 1.5
    path.write_bytes(b"a" * 20)  # no event for this one
    [p] = queue.take_due()
    now = Sig.of(str(path))
    assert verdict(p, now, clock(), debounce_s=1.0, open_grace_s=queue.open_grace_s) is Verdict.WAIT
    queue.requeue(p, delay=1.0, sig=now, changed=True)
    clock.t += 1.1
    assert judge(queue, clock, tmp_path) == [("photo.jpg", Verdict.READY)]


def test_without_close_events_a_modified_file_never_waits_for_a_close(tmp_path):
    clock = Clock()
    queue = ChangeQueue(debounce_s=1.0, clock=clock, open_grace_s=30.0)
    handler = QueueingHandler(str(tmp_path), queue, PathFilter(), follow_symlinks=False)
    path = tmp_path / "report.pdf"
    path.write_bytes(b"pdf")
    handler.on_any_event(FileModifiedEvent(str(path)))
    clock.t += 1.1  # one window, not the 30 s grace an unclosed inotify write would get
    assert judge(queue, clock, tmp_path) == [("report.pdf", Verdict.READY)]
