"""Run a producer (the local scan) ahead in a thread, so it overlaps the remote listing.

Bounded: at most ``maxsize`` items wait in the queue, so memory stays constant however large the tree;
past that the producer simply waits for the diff to catch up. An exception in the producer is re-raised
in the consumer, where the rest of the run can report it.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar, cast

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], *, maxsize: int = 50_000) -> Iterator[T]:
    # Items travel in batches: a queue hand-off costs a few microseconds of locking, which for a no-op run
    # over a big tree was a good part of the consumer's time per file.
    batch_size = min(256, max(1, maxsize // 4))
    q: queue.Queue[list[T] | BaseException | object] = queue.Queue(maxsize=max(1, (maxsize - batch_size) // batch_size))
    stop = threading.Event()

    def produce() -> None:
        batch: list[T] = []
        try:
            for item in items:
                if stop.is_set():
                    return
                batch.append(item)
                if len(batch) >= batch_size:
                    q.put(batch)
                    batch = []
            if batch:
                q.put(batch)
            q.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, not lost in the thread
            if batch:
                q.put(batch)
            q.put(exc)

    thread = threading.Thread(target=produce, name="scan-ahead", daemon=True)
    thread.start()

    def consume() -> Iterator[T]:
        try:
            while True:
                try:
                    got = q.get(timeout=0.5)  # in slices: a lock wait on Windows would not see Ctrl+C
                except queue.Empty:
                    continue
                if got is _DONE:
                    return
                if isinstance(got, BaseException):
                    raise got
                yield from cast("list[T]", got)  # neither the end nor an error: a batch
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

    return consume()
