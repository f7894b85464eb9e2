"""When to retry a storage request, and how long to wait first: one schedule for every HTTP path.

Exponential backoff with full jitter on 408/429/5xx and dropped connections; a Retry-After from the
service wins (bounded, so a hostile or broken header cannot hang a run). No HTTP library here: both the
azure-core policy (storage/policies.py) and our plain list client (storage/list_http.py) use it.
"""

from __future__ import annotations

import random
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Callable

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Backoff:
    def __init__(self, *, attempts: int = 6, base_delay: float = 0.5, max_delay: float = 20.0,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random,
                 cancel: threading.Event | None = None) -> None:
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = rng
        self._cancel = cancel

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.max_delay * 3)
        return self._rng() * min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))

    def may_retry(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1-based) that just failed may be followed by another."""
        return attempt < self.attempts and not self.cancelled()

    def wait(self, seconds: float) -> None:
        if self._cancel is not None:
            self._cancel.wait(seconds)
        else:
            self._sleep(seconds)

    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)
