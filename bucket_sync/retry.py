"""How long to wait before trying again, for every kind of retry bucket-sync makes: named policies, one place.

A policy is a schedule (the n-th wait grows from ``base_s`` up to ``cap_s``, spread by jitter), how many
tries it allows, and how it reads a server's ``Retry-After``. The differences between the policies below are
deliberate; each says why. No HTTP library here: sync/, storage/, platform/ and app/ all use it.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Callable

# Storage answers worth another attempt (timeouts, throttling, server trouble); the rest are final.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Jitter: the wait is drawn from [low, high] times the schedule's step.
FULL_JITTER = (0.0, 1.0)  # many clients hitting one account spread out the most
EQUAL_JITTER = (0.5, 1.0)  # never much sooner than the schedule: a rate-limited API is not hammered
NO_JITTER = (1.0, 1.0)


@dataclass(frozen=True)
class RetryAfterRule:
    """How a ``Retry-After`` header (delta-seconds or an HTTP date) becomes a wait, within [floor_s, cap_s].

    ``unreadable_s`` is what a header that says nothing usable (garbage, NaN) means: None treats it as
    absent, so the policy's own schedule decides."""

    floor_s: float
    cap_s: float
    unreadable_s: float | None

    def seconds(self, value: str | None, *, now: float | None = None) -> float | None:
        """The wait, or None when there is no hint (``now``: the epoch time an HTTP date is relative to)."""
        if value is None or not value.strip():
            return None
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError, IndexError, OverflowError):
                return self.unreadable_s
        if math.isnan(seconds):
            return self.unreadable_s
        return max(self.floor_s, min(seconds, self.cap_s))


# Two rules, deliberately. Where the retries are counted (storage, webhooks), a "0" or a date already past
# costs at most the few attempts left, so it is taken at its word, and an unreadable header is ignored (the
# backoff is a wait anyway).
HINT_WITHIN_ATTEMPTS = RetryAfterRule(floor_s=0.0, cap_s=60.0, unreadable_s=None)
# The API's 429/503 are retried for as long as a total wait allows (--max-retry-wait), not a number of
# times: a floor of 1 s keeps a repeated "0" from becoming a request loop, and an unreadable header still
# waits that second, since the server did say "not now". Beyond the cap is a broken proxy: ask again.
HINT_WITHIN_BUDGET = RetryAfterRule(floor_s=1.0, cap_s=120.0, unreadable_s=1.0)


@dataclass(frozen=True)
class RetryPolicy:
    """A schedule: the n-th wait (n = 1 after the first failure) is ``base_s * 2**(n-1)`` (``linear``:
    ``base_s * n``), at most ``cap_s``, times a jitter drawn from ``jitter``. ``attempts`` counts the first
    try; None means the caller bounds the retries otherwise (a total wait, or forever)."""

    name: str
    base_s: float
    cap_s: float
    jitter: tuple[float, float]
    attempts: int | None = None
    linear: bool = False
    retry_after: RetryAfterRule | None = None

    def step(self, n: int) -> float:
        """The n-th wait before jitter."""
        grown = self.base_s * n if self.linear else self.base_s * 2 ** max(0, n - 1)
        return min(self.cap_s, grown)

    def backoff(self, n: int, rng: Callable[[], float] = random.random) -> float:
        low, high = self.jitter
        return self.step(n) * (low + rng() * (high - low))

    def wait(self, n: int, retry_after: str | None = None, *, now: float | None = None,
             rng: Callable[[], float] = random.random) -> float:
        """The n-th wait: the server's ``Retry-After`` when the policy reads it and it says something, else
        the backoff."""
        hinted = self.retry_after.seconds(retry_after, now=now) if self.retry_after else None
        return hinted if hinted is not None else self.backoff(n, rng)

    def with_attempts(self, attempts: int) -> "RetryPolicy":
        return replace(self, attempts=attempts)


# Azure Storage requests (SDK pipeline and our own list client): 408/429/5xx and dropped connections.
STORAGE = RetryPolicy("storage", base_s=0.5, cap_s=20.0, jitter=FULL_JITTER, attempts=6,
                      retry_after=HINT_WITHIN_ATTEMPTS)
# iTwin Platform API and IMS (one transport, platform/http.py): 500/502/504 and dropped connections on
# idempotent requests.
PLATFORM_API = RetryPolicy("platform API", base_s=0.5, cap_s=30.0, jitter=EQUAL_JITTER, attempts=5)
# The API's 429/503: the service asked us to slow down, so the steps are longer; bounded by --max-retry-wait.
PLATFORM_THROTTLED = RetryPolicy("platform API throttled", base_s=2.0, cap_s=60.0, jitter=EQUAL_JITTER,
                                 retry_after=HINT_WITHIN_BUDGET)
# A whole file again after its requests' own retries gave up (sync/engine.py; how many times is the
# engine's Settings.file_attempts): linear, since the requests already backed off exponentially; spread so
# files that failed together do not retry together.
FILE = RetryPolicy("file", base_s=1.0, cap_s=math.inf, jitter=(0.5, 1.5), linear=True)
# watch: a storage outage or a file that failed waits 1, 2, 4 ... 30 s, for as long as the watcher runs.
# No jitter: one watcher per folder, and the metrics and tests show the exact steps.
WATCH_OUTAGE = RetryPolicy("watch outage", base_s=1.0, cap_s=30.0, jitter=NO_JITTER)
# --notify-url: a webhook POST, 1, 2, 4, 8 s apart, a little later rather than sooner.
WEBHOOK = RetryPolicy("webhook", base_s=1.0, cap_s=60.0, jitter=(1.0, 1.25), attempts=5,
                      retry_after=HINT_WITHIN_ATTEMPTS)


# A credential renewed early (an access token, a SAS) whose renewal failed still works: it is kept, and the
# renewal tried again this soon, and at the latest halfway to its expiry, so several tries come before it.
# One rule for both (the token's used to wait 30 s and the SAS's 15 s, for no reason either could name).
RENEWAL_RETRY_S = 15.0


def renewal_retry_in(left_s: float) -> float:
    """Seconds until the next try after a failed early renewal of a credential still valid for ``left_s``."""
    return min(RENEWAL_RETRY_S, left_s / 2)


class Backoff:
    """One request's retries under ``policy``: whether another attempt may follow, and the (cancellable)
    wait before it. ``attempts`` overrides the policy's (watch and check give up sooner)."""

    def __init__(self, policy: RetryPolicy = STORAGE, *, attempts: int | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random,
                 cancel: threading.Event | None = None) -> None:
        self.policy = policy
        self.attempts = max(1, attempts if attempts is not None else policy.attempts or 1)
        self._sleep = sleep
        self._rng = rng
        self._cancel = cancel

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        return self.policy.wait(attempt, retry_after, rng=self._rng)

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
