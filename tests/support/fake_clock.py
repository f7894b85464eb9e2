"""A clock for unit tests that only moves when the code under test sleeps (or the test advances it)."""

from __future__ import annotations


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = float(t)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
