"""Waiting on another thread's result where Ctrl+C must still be seen.

Why: on Windows a blocking lock wait (what ``Future.result()`` does without a timeout) is not interrupted
by Ctrl+C, so a listing or look-up the main thread waits for would hold the interrupt until it finished.
Waiting in short slices lets KeyboardInterrupt through between them, on every OS.
"""

from __future__ import annotations

from concurrent.futures import Future, TimeoutError
from typing import TypeVar

T = TypeVar("T")
SLICE_S = 0.25


def result(future: "Future[T]") -> T:
    """``future.result()``, waited for in slices."""
    while True:
        try:
            return future.result(timeout=SLICE_S)
        except TimeoutError:
            continue


__all__ = ["result"]
