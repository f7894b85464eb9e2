"""--bwlimit: a token bucket shared by every transfer thread of a run."""

from __future__ import annotations

import threading
import time
from typing import Callable


class RateLimiter:
    """Lets ``rate`` bytes per second through on average, with a burst of one second's worth.

    ``consume(n)`` blocks the calling thread until ``n`` bytes may go; a request larger than the burst
    goes once the bucket has refilled enough, so big blocks are delayed but never starved.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:  # its result is ignored (Event.wait fits)
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = clock()  # when the bucket will have room for the next byte

    def consume(self, n: int) -> None:
        with self._lock:
            now = self._clock()
            start = max(now - 1.0, self._next_free)  # at most one second of unused credit
            self._next_free = start + n / self.rate
            wait = self._next_free - now - 1.0
        if wait > 0:
            self._sleep(wait)


class Unlimited:
    def consume(self, n: int) -> None:
        pass
