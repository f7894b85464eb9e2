"""Which authorization and not-found errors the watcher outlives, and which end it.

Decisions (README.md, "Watch mode"): a missing permission, missing credentials, or a SAS URL given directly
that storage refuses (it cannot be refreshed) end the watcher with exit 3 at once: retrying cannot fix
them. Other authorization or not-found errors from a target whose SAS is fetched from the API (a token or
SAS that could not be renewed, a 401 from the API) are retried with backoff and end the watcher with their
exit code (3 or 4) only after they persisted for ``GIVE_UP_S`` without one success. Before the first
reconcile has succeeded, they end it at once: a misconfigured unit should fail visibly, not loop.
"""

from __future__ import annotations

import logging
from typing import Callable

from ..errors import BucketSyncError, ExitCode
from ..redact import redact
from ..sas import SasSource
from ..storage.errors import retry_may_cure
from .watch_credentials import ObservedSas

log = logging.getLogger("bucket_sync.watch")


class AuthPolicy:
    """Which authorization and not-found errors the watcher outlives (module docstring)."""

    GIVE_UP_S = 600.0

    def __init__(self, source: SasSource, clock: Callable[[], float]) -> None:
        while isinstance(source, ObservedSas):  # --metrics only observes the SAS: judge what it wraps
            source = source.inner
        self.source = source
        self.clock = clock
        self.started = False
        self.first_failure: float | None = None

    def succeeded(self) -> None:
        self.started = True
        self.first_failure = None

    def survivable(self, exc: BucketSyncError) -> bool:
        if exc.exit_code not in (ExitCode.AUTH, ExitCode.NOT_FOUND):
            return exc.exit_code != ExitCode.USAGE  # storage and network trouble: back off and retry
        if not self.started or not retry_may_cure(exc, self.source):
            return False
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        if now - self.first_failure >= self.GIVE_UP_S:
            return False
        log.warning("%s; retrying (the watcher exits with code %d if this lasts %.0f minutes)",
                    redact(exc.message), int(exc.exit_code), self.GIVE_UP_S / 60)
        return True
