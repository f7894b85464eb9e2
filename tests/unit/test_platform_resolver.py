"""SAS sources: a given SAS URL is used until it expires, with a clear message then; one from the API is
refreshed before expiry and after a 403, with one fetch however many threads ask."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from bucket_sync.errors import ApiError, ExitCode, SasExpiredError
from bucket_sync.platform.resolver import ApiSasSource, resolve_sas_source
from bucket_sync.sas import StaticSasSource
from bucket_sync.sas import ContainerSas
from bucket_sync.targets import parse_remote
from tests.support.counting import returning
from tests.support.fake_clock import FakeClock

T0 = 1_748_600_000  # 2025-05-30 10:13:20 UTC
ITWIN = "90b86d36-ca6f-4d9f-a795-e3118d2a0073"
RD = "11111111-2222-3333-4444-555555555555"



def sas_url(expires: float | None, n: int = 1, *, host: str = "https://acct.blob.core.windows.net") -> str:
    se = ""
    if expires is not None:
        se = "&se=" + quote(datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return f"{host}/bucket-{ITWIN}?sv=2024-08-04{se}&sr=c&sp=racwdl&sig=secretSig{n}XYZ"


class Fetcher:
    """Hands out SAS number 1, 2, ... each valid ``lifetime`` seconds from the clock's now."""

    def __init__(self, clock: FakeClock, lifetime: float | None = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail: Exception | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            n = self.calls
        self.entered.set()
        assert self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        return sas_url(None if self.lifetime is None else self.clock.t + self.lifetime, n)


def sig(sas: ContainerSas) -> str:
    return sas.token.rsplit("sig=", 1)[1]


# -- a SAS URL given directly --------------------------------------------------------------------------------

def test_static_sas_is_used_as_is_until_it_expires():
    sas = ContainerSas.from_url(sas_url(T0 + 60))
    source = StaticSasSource(sas, now=lambda: datetime.fromtimestamp(T0, timezone.utc))
    assert source.current() is sas
    assert source.refresh(sas) is sas  # nothing newer: the caller reports the 403


def test_expired_static_sas_says_when_and_what_to_do():
    sas = ContainerSas.from_url(
        "https://acct.blob.core.windows.net/c?sv=2024-08-04&se=2025-05-30T11%3A37%3A13Z&sr=c&sp=rw&sig=abcdefSIG"
    )
    source = StaticSasSource(sas, now=lambda: datetime(2025, 5, 30, 12, 0, tzinfo=timezone.utc))
    with pytest.raises(SasExpiredError) as info:
        source.current()
    assert info.value.exit_code == ExitCode.AUTH
    assert "the SAS URL expired at 2025-05-30 11:37:13 UTC; get a new one" in str(info.value)
    assert "abcdefSIG" not in str(info.value)


# -- a SAS from the API ----------------------------------------------------------------------------------------

def test_fetch_is_lazy_and_the_sas_reused():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock)
    assert fetch.calls == 0
    first = source.current()
    assert source.current() is first
    assert fetch.calls == 1


def test_one_hour_sas_is_refreshed_five_minutes_before_expiry():
    clock = FakeClock(T0)
    fetch = Fetcher(clock, lifetime=3600)
    source = ApiSasSource(fetch, clock=clock)
    assert sig(source.current()) == "secretSig1XYZ"
    clock.t = T0 + 3299
    assert sig(source.current()) == "secretSig1XYZ"
    clock.t = T0 + 3301
    assert sig(source.current()) == "secretSig2XYZ"
    assert fetch.calls == 2


def test_four_second_sas_is_refreshed_a_fifth_of_its_life_early():
    clock = FakeClock(T0)
    fetch = Fetcher(clock, lifetime=4)
    source = ApiSasSource(fetch, clock=clock)
    source.current()
    clock.t = T0 + 3.1
    assert fetch.calls == 1 and sig(source.current()) == "secretSig1XYZ"
    clock.t = T0 + 3.3
    assert sig(source.current()) == "secretSig2XYZ"


def test_sas_without_expiry_is_refreshed_every_50_minutes():
    clock = FakeClock(T0)
    fetch = Fetcher(clock, lifetime=None)
    source = ApiSasSource(fetch, clock=clock)
    source.current()
    clock.t = T0 + 2999
    source.current()
    assert fetch.calls == 1
    clock.t = T0 + 3001
    assert sig(source.current()) == "secretSig2XYZ"


def test_refresh_after_403_fetches_a_new_sas_once():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock)
    stale = source.current()
    clock.t += 600
    fresh = source.refresh(stale)
    assert sig(fresh) == "secretSig2XYZ" and source.current() is fresh
    assert source.refresh(stale) is fresh  # a late 403 with the old SAS: no second fetch
    assert fetch.calls == 2


def test_403_with_a_sas_fetched_moments_ago_does_not_refetch():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock)
    sas = source.current()
    clock.t += 1
    assert source.refresh(sas) is sas  # a missing permission, not expiry: storage reports the 403
    assert fetch.calls == 1


def overlapped(n: int, source: ApiSasSource, fetch: Fetcher, call, *, while_fetching=None) -> list:
    """Run ``call`` in ``n`` threads while the first fetch they cause is held open until the other n-1
    wait for it (or ``while_fetching()`` has run); return each thread's result or exception."""
    results: list = []

    def worker():
        try:
            results.append(call())
        except Exception as exc:  # noqa: BLE001 - collected to assert on
            results.append(exc)

    fetch.entered.clear()
    fetch.release.clear()
    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    assert fetch.entered.wait(5)
    for _ in range(5000):  # the condition's own waiter list: the callers really overlap the fetch
        with source._cond:
            if len(source._cond._waiters) >= n - 1:
                break
        threading.Event().wait(0.001)
    else:
        raise AssertionError(f"{n - 1} callers never waited")
    if while_fetching is not None:
        while_fetching()
    fetch.release.set()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    return results


def test_concurrent_first_use_makes_one_fetch():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock)
    results = overlapped(12, source, fetch, source.current)
    assert fetch.calls == 1
    assert len(results) == 12 and len({sig(r) for r in results}) == 1


def test_concurrent_403s_make_one_fetch_and_all_get_the_new_sas():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock)
    stale = source.current()
    clock.t += 600
    results = overlapped(12, source, fetch, lambda: source.refresh(stale))
    assert fetch.calls == 2
    assert {sig(r) for r in results} == {"secretSig2XYZ"}


def test_callers_keep_the_valid_sas_while_another_thread_refreshes_ahead():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock)
    old = source.current()
    clock.t = T0 + 3400  # due for refresh, not yet expired

    def meanwhile():
        assert source.current() is old  # does not wait for the slow fetch

    results = overlapped(1, source, fetch, source.current, while_fetching=meanwhile)
    assert sig(results[0]) == "secretSig2XYZ"


def test_a_failed_fetch_reaches_every_waiting_caller_and_is_retried_later():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    fetch.fail = ApiError("could not get the bucket: HTTP 503", status=503, retryable=True)
    source = ApiSasSource(fetch, clock=clock)
    results = overlapped(6, source, fetch, source.current)
    assert len(results) == 6 and all(isinstance(r, ApiError) for r in results)
    assert fetch.calls == 1  # waiting callers got the error of the fetch they waited for
    fetch.fail = None
    assert sig(source.current()) == "secretSig2XYZ"


def test_a_failed_early_refresh_keeps_the_still_valid_sas():
    clock = FakeClock(T0)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock)
    old = source.current()
    fetch.fail = ApiError("HTTP 503", status=503)
    clock.t = T0 + 3400
    assert source.current() is old
    clock.t = T0 + 3405
    assert source.current() is old and fetch.calls == 2  # not hammering the API
    clock.t = T0 + 3600  # expired: now the failure is the caller's
    with pytest.raises(ApiError):
        source.current()


def test_refresh_is_logged_with_expiry_but_never_the_signature(caplog):
    caplog.set_level(logging.DEBUG, logger="bucket_sync.platform.resolver")
    clock = FakeClock(T0)
    source = ApiSasSource(Fetcher(clock), clock=clock, what=f"itwin://{ITWIN}/")
    source.current()
    clock.t = T0 + 3500
    source.current()
    assert "refreshed SAS for itwin://" in caplog.text
    assert "valid until 2025-05-30 12:11:40 UTC" in caplog.text  # T0 + 3500 + 3600
    assert "secretSig" not in caplog.text


# -- targets ---------------------------------------------------------------------------------------------------

class FakeApi:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def bucket_container_url(self, itwin_id: str) -> str:
        self.calls.append(("bucket", itwin_id))
        return f"http://127.0.0.1:10000/devstoreaccount1/bucket-{itwin_id}?sv=2024-08-04&sr=c&sp=rwl&sig=emuSig123"

    def reality_data_container_url(self, rd_id: str, *, write: bool, itwin_id: str | None = None) -> str:
        self.calls.append(("rd", rd_id, write, itwin_id))
        return sas_url(None)


def test_a_sas_url_target_needs_no_api_and_no_credentials():
    def no_api():
        raise AssertionError("a SAS URL must not need the API")

    target = parse_remote(sas_url(T0 + 3600))
    source = resolve_sas_source(target, write=True, api_factory=no_api)
    assert isinstance(source, StaticSasSource)


def test_itwin_target_fetches_the_bucket_on_first_use_and_keeps_the_emulator_path():
    api = FakeApi()
    factory = returning(api)
    source = resolve_sas_source(parse_remote(f"itwin://{ITWIN}/some/prefix"), write=False, api_factory=factory)
    assert factory.calls == [] and api.calls == []  # the API client too waits for a fetch (the SAS cache)
    sas = source.current()
    assert factory.calls == [1] and api.calls == [("bucket", ITWIN)]
    assert sas.container_url == f"http://127.0.0.1:10000/devstoreaccount1/bucket-{ITWIN}"


@pytest.mark.parametrize("write", [False, True])
def test_reality_data_target_asks_for_read_or_write_access(write):
    api = FakeApi()
    target = parse_remote(f"reality-data://{RD}/", itwin_id=ITWIN)
    resolve_sas_source(target, write=write, api_factory=lambda: api).current()
    assert api.calls == [("rd", RD, write, ITWIN)]


def test_a_sas_already_expired_on_arrival_does_not_turn_every_call_into_a_fetch(caplog):
    clock = FakeClock(T0)
    fetch = Fetcher(clock, lifetime=-60)  # the local clock is ahead of the service's
    source = ApiSasSource(fetch, clock=clock)
    sas = source.current()
    clock.t += 1
    assert source.current() is sas and source.refresh(sas) is sas
    assert fetch.calls == 1
    assert "check the system clock" in caplog.text
