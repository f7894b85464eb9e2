"""Turn a REMOTE target into a :class:`SasSource`: the core asks it for the SAS, and for a new one.

A SAS URL given on the command line cannot be renewed; one from the API is fetched lazily, refreshed
before its ``se=`` expiry and again after storage answers 403 with it, for as long as the run lasts. Many
transfer threads ask at once, so at most one fetch is in flight and the others wait for its result (or
keep using the current SAS while it is still valid).

With a :class:`SasCacheSlot`, the first ``current()`` takes the SAS an earlier run stored if it is still
fresh by the same rule (its lifetime counted from when it was fetched), and every SAS fetched is stored.
The API client (and with it credentials' tokens and httpx) is created only when a fetch happens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..retry import renewal_retry_in
from ..sas import ContainerSas, SasSource, StaticSasSource
from ..targets import ItwinBucketTarget, RealityDataTarget, Remote, SasUrlTarget
from ..timefmt import readable_utc
from .sas_cache import CachedSas, SasCache, SasCacheSlot

if TYPE_CHECKING:  # api imports httpx: only a fetch needs it
    from .api import PlatformApi

log = logging.getLogger(__name__)

# Refresh this long before expiry at most; for short-lived SAS, a fifth of the lifetime instead.
_MAX_REFRESH_MARGIN_S = 300.0
_REFRESH_FRACTION = 0.2
# A SAS without se= has an unknown lifetime: Bentley's clients treat API SAS as valid about an hour and
# refresh after 50 minutes.
_NO_EXPIRY_REFRESH_S = 3000.0
# A 403 with a SAS fetched moments ago is not about expiry (a missing permission, clock skew): fetching
# again would only spend the API's rate limit, once per failing file.
_MIN_REFETCH_INTERVAL_S = 5.0


def refresh_due_at(fetched_at: float, expires_at: float | None) -> float:
    """When a SAS fetched at ``fetched_at`` (epoch s) is due for renewal: min(5 min, 20% of its lifetime)
    before its ``se=``; without ``se=``, 50 minutes after the fetch. Runs and the cache share this rule."""
    if expires_at is None:
        return fetched_at + _NO_EXPIRY_REFRESH_S
    lifetime = max(expires_at - fetched_at, 0.0)
    return expires_at - min(_MAX_REFRESH_MARGIN_S, _REFRESH_FRACTION * lifetime)


def is_fresh(cached: CachedSas, now: float) -> bool:
    """Whether a stored SAS may start a run: not yet due for renewal by :func:`refresh_due_at`."""
    expires = cached.sas.expires_at.timestamp() if cached.sas.expires_at else None
    return now < refresh_due_at(cached.fetched_at, expires)


class ApiSasSource(SasSource):
    """A SAS fetched from the API by ``fetch()`` (which returns the SAS container URL), kept fresh."""

    def __init__(self, fetch: Callable[[], str], *, clock: Callable[[], float] = time.time, what: str = "the container",
                 cache: SasCacheSlot | None = None) -> None:
        self._fetch_url = fetch
        self._clock = clock  # wall-clock seconds: compared with the SAS's se= time
        self._what = what
        self._cache = cache  # written after every fetch
        self._cache_unread = cache is not None  # looked at once, by the first current()
        self._from_cache = False  # the current SAS came from the cache (not yet fetched by this run)
        self._cond = threading.Condition()
        self._sas: ContainerSas | None = None
        self._fetched_at = 0.0
        self._refresh_at = 0.0
        self._min_interval = 0.0
        self._fetching = False
        self._generation = 0  # counts finished fetches, so waiters know theirs is done
        self._error: BaseException | None = None

    def current(self) -> ContainerSas:
        with self._cond:
            if self._cache_unread:
                self._take_cached()
            while True:
                now = self._clock()
                if self._sas is not None and now < self._refresh_at:
                    return self._sas
                if not self._fetching:
                    self._fetching = True
                    break
                usable = self._usable(now)
                if usable is not None:  # another thread is refreshing ahead of expiry
                    return usable
                self._wait_for_fetch()
        return self._fetch(keep_valid_on_failure=True)

    def refresh(self, stale: ContainerSas) -> ContainerSas:
        with self._cond:
            while True:
                if self._sas is not None and self._sas != stale:
                    return self._sas  # already replaced by another thread
                if self._fetching:
                    self._wait_for_fetch()
                    continue
                # A cached SAS may have been revoked since another run fetched it, however recently.
                if self._sas is not None and not self._from_cache and self._clock() - self._fetched_at < self._min_interval:
                    return self._sas
                self._fetching = True
                break
        return self._fetch(keep_valid_on_failure=False)

    def _take_cached(self) -> None:
        """Install the cached SAS if it is still fresh (lock held; one small file read, first call only)."""
        self._cache_unread = False
        cached = self._cache.load() if self._cache is not None else None
        if cached is None:
            return
        if not is_fresh(cached, self._clock()):
            log.debug("the cached SAS for %s is due for renewal: fetching a new one", self._what)
            return
        self._install(cached.sas, fetched_at=cached.fetched_at)
        self._from_cache = True
        until = readable_utc(cached.sas.expires_at) if cached.sas.expires_at else "unknown (no se=)"
        log.debug("using the cached SAS for %s, valid until %s", self._what, until)

    def _usable(self, now: float) -> ContainerSas | None:
        """The current SAS while it has not expired, else None."""
        sas = self._sas
        return sas if sas is not None and (sas.expires_at is None or now < sas.expires_at.timestamp()) else None

    def _wait_for_fetch(self) -> None:
        """Wait (lock held) until the fetch in flight finishes; raise its error if it failed."""
        generation = self._generation
        while self._generation == generation:
            self._cond.wait()
        if self._error is not None:
            raise self._error

    def _fetch(self, *, keep_valid_on_failure: bool) -> ContainerSas:
        """Fetch a new SAS (lock not held; this thread set ``_fetching``) and publish it to the others."""
        try:
            sas = ContainerSas.from_url(self._fetch_url())
        except BaseException as exc:
            with self._cond:
                # Waiters get this fetch's error; after an interrupt they simply try again themselves.
                self._finish(error=exc if isinstance(exc, Exception) else None)
                now = self._clock()
                usable = self._usable(now) if keep_valid_on_failure and isinstance(exc, Exception) else None
                if usable is not None:
                    expires = usable.expires_at
                    left = expires.timestamp() - now if expires else float("inf")
                    self._refresh_at = now + renewal_retry_in(left)
                    log.warning("could not refresh the SAS for %s yet, the current one still works: %s", self._what, exc)
                    return usable
            raise
        fetched_at = self._clock()
        if self._cache is not None:
            self._cache.store(sas.url, fetched_at=fetched_at)  # before waiters go on: one small file
        with self._cond:
            first = self._sas is None
            self._install(sas, fetched_at=fetched_at)
            self._from_cache = self._cache_unread = False  # newer than anything in the cache
            self._finish(error=None)
        until = readable_utc(sas.expires_at) if sas.expires_at else "unknown (no se=)"
        log.log(logging.DEBUG if first else logging.INFO, "%s SAS for %s, valid until %s",
                "got" if first else "refreshed", self._what, until)
        return sas

    def _install(self, sas: ContainerSas, *, fetched_at: float) -> None:
        """Make ``sas`` current; its lifetime counts from ``fetched_at`` (earlier than now when cached)."""
        self._sas, self._fetched_at = sas, fetched_at
        expires_at = sas.expires_at
        expires = expires_at.timestamp() if expires_at else None
        if expires_at is None or expires is None:
            self._min_interval = _MIN_REFETCH_INTERVAL_S
            self._refresh_at = refresh_due_at(fetched_at, None)
            return
        lifetime = expires - fetched_at
        if lifetime <= 0:
            log.warning("the SAS for %s expired at %s, before it arrived: check the system clock",
                        self._what, readable_utc(expires_at))
        # Never due again at once, or a bad clock would turn every call into a fetch.
        self._min_interval = min(_MIN_REFETCH_INTERVAL_S, lifetime / 10) if lifetime > 0 else _MIN_REFETCH_INTERVAL_S
        self._refresh_at = max(refresh_due_at(fetched_at, expires), self._clock() + self._min_interval)

    def _finish(self, *, error: BaseException | None) -> None:
        self._fetching = False
        self._error = error
        self._generation += 1
        self._cond.notify_all()


class ReadsThroughWriteAccess(SasSource):
    """A reality data's reads (list, look up, read) for a run that writes: through the write access when
    that SAS grants list and read itself (one SAS is enough), else through the read access, fetched only
    then. Bentley's SDK lists only through read access, whose ``sp=rl`` is documented; write access
    permissions are not, so the write SAS is trusted to read only when its ``sp=`` says so."""

    def __init__(self, writes: SasSource, reads: Callable[[], SasSource]) -> None:
        self._writes = writes
        self._make_reads = reads
        self._reads: SasSource | None = None
        self._lock = threading.Lock()

    def _read_source(self) -> SasSource:
        with self._lock:
            if self._reads is None:
                self._reads = self._make_reads()
            return self._reads

    def current(self) -> ContainerSas:
        sas = self._writes.current()
        if sas.permissions and not sas.lacks("lr"):
            return sas
        return self._read_source().current()

    def refresh(self, stale: ContainerSas) -> ContainerSas:
        if self._reads is None or stale.token == self._writes.current().token:
            return self._writes.refresh(stale)
        return self._reads.refresh(stale)


def cache_target_key(target: Remote, *, write: bool) -> str:
    """What a cached SAS is for, within one API and principal: a bucket serves reads and writes alike; a
    reality data's read and write access are separate SAS."""
    if isinstance(target, ItwinBucketTarget):
        return f"itwin-bucket:{target.itwin_id.lower()}"
    if isinstance(target, RealityDataTarget):
        itwin = (target.itwin_id or "").lower()
        return f"reality-data:{target.reality_data_id.lower()}:{itwin}:{'write' if write else 'read'}"
    raise UsageError(f"not an API target: {target!r}")


def resolve_sas_sources(
    target: Remote,
    *,
    write: bool,
    api_factory: Callable[[], PlatformApi],
    cache_factory: Callable[[], SasCache | None] | None = None,
) -> tuple[SasSource, SasSource | None]:
    """(source, reads) for a Storage: a reality data that is written to is read through its read access
    (unless the write SAS can list and read); anything else is one SAS for both (reads None). A run that
    only reads never asks for write access."""
    source = resolve_sas_source(target, write=write, api_factory=api_factory, cache_factory=cache_factory)
    if not (write and isinstance(target, RealityDataTarget)):
        return source, None
    return source, ReadsThroughWriteAccess(source, lambda: resolve_sas_source(
        target, write=False, api_factory=api_factory, cache_factory=cache_factory))


def resolve_sas_source(
    target: Remote,
    *,
    write: bool,
    api_factory: Callable[[], PlatformApi],
    cache_factory: Callable[[], SasCache | None] | None = None,
) -> SasSource:
    """The SAS source for ``target``. A SAS URL needs neither factory. For API targets ``cache_factory``
    (choosing the credentials, whose errors therefore come here, before any work) is called at once and
    ``api_factory`` only when a SAS must be fetched: never on a run the cache serves. No network call
    happens here: API targets fetch (or read the cache) on first ``current()``."""
    if isinstance(target, SasUrlTarget):
        return StaticSasSource(target.sas)
    if not isinstance(target, (ItwinBucketTarget, RealityDataTarget)):
        raise UsageError(f"not a remote location: {target!r}")
    cache = cache_factory() if cache_factory is not None else None
    slot = cache.slot(cache_target_key(target, write=write)) if cache is not None else None
    api: list[PlatformApi] = []  # made once, by the first fetch (fetches never overlap)

    def fetch() -> str:
        if not api:
            api.append(api_factory())
        if isinstance(target, ItwinBucketTarget):
            return api[0].bucket_container_url(target.itwin_id)
        return api[0].reality_data_container_url(target.reality_data_id, write=write, itwin_id=target.itwin_id)

    return ApiSasSource(fetch, what=target.describe(), cache=slot)
