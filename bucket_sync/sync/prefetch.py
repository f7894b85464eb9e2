"""Run a producer (the local scan) ahead in a thread, so it overlaps the remote listing.

Bounded: at most ``maxsize`` items wait in the queue, so memory stays constant however large the tree;
past that the producer simply waits for the diff to catch up. An exception in the producer is re-raised
in the consumer, where the rest of the run can report it.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], *, maxsize: int = 50_000) -> Iterator[T]:
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, not lost in the thread
            q.put(exc)

    thread = threading.Thread(target=produce, name="scan-ahead", daemon=True)
    thread.start()

    def consume() -> Iterator[T]:
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

    return consume()
