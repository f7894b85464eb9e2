"""The SAS cache without a network: the freshness rule (the resolver's own), the key (API, target,
principal; never a secret), the entry file (atomic, private, damage ignored), and ApiSasSource using it."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest

from bucket_sync.app.context import Globals
from bucket_sync.config import Config
from bucket_sync.errors import ConfigError
from bucket_sync.platform.credentials import ClientCredentials, StaticToken
from bucket_sync.platform.login_store import CachedLogin, SavedLogin
from bucket_sync.platform.resolver import ApiSasSource, cache_target_key, is_fresh, refresh_due_at
from bucket_sync.platform.sas_cache import CachedSas, SasCache, clear_cache, entry_name
from bucket_sync.sas import ContainerSas
from bucket_sync.targets import parse_remote
from tests.support.fake_clock import FakeClock

T0 = 1_748_600_000.0
ITWIN = "90b86d36-ca6f-4d9f-a795-e3118d2a0073"
RD = "11111111-2222-3333-4444-555555555555"
API = "https://api.bentley.com"


def sas_url(expires: float | None, n: int = 1) -> str:
    se = ""
    if expires is not None:
        se = "&se=" + quote(datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return f"https://acct.blob.core.windows.net/bucket-{ITWIN}?sv=2024-08-04{se}&sr=c&sp=racwdl&sig=cachedSig{n}XYZ"


def cached(fetched_at: float, expires: float | None) -> CachedSas:
    return CachedSas(ContainerSas.from_url(sas_url(expires)), fetched_at)


# -- the freshness rule --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [(3600, 300), (1500, 300), (1000, 200), (60, 12), (10, 2)],  # min(5 min, 20% of the lifetime)
)
def test_due_min_of_five_minutes_and_a_fifth_of_the_original_lifetime_before_expiry(lifetime, margin):
    assert refresh_due_at(T0, T0 + lifetime) == pytest.approx(T0 + lifetime - margin)
    entry = cached(T0, T0 + lifetime)
    assert is_fresh(entry, T0 + lifetime - margin - 1)
    assert not is_fresh(entry, T0 + lifetime - margin)
    assert not is_fresh(entry, T0 + lifetime + 1)


def test_the_lifetime_counts_from_the_fetch_not_from_the_reading():
    # Fetched 50 minutes ago with an hour to live: 10 minutes left, due 5 minutes before expiry.
    entry = cached(T0 - 3000, T0 + 600)
    assert is_fresh(entry, T0) and is_fresh(entry, T0 + 299)
    assert not is_fresh(entry, T0 + 300)


def test_without_se_a_sas_is_fresh_for_fifty_minutes_after_its_fetch():
    entry = cached(T0, None)
    assert is_fresh(entry, T0 + 2999) and not is_fresh(entry, T0 + 3000)


def test_a_sas_expired_on_arrival_is_never_fresh():
    assert not is_fresh(cached(T0, T0 - 10), T0)


# -- the key ---------------------------------------------------------------------------------------------------

def test_each_part_of_the_key_gives_another_entry():
    base = entry_name(API, f"itwin-bucket:{ITWIN}", "a" * 64)
    assert base.endswith(".json") and len(base) == 64 + 5
    assert entry_name(API + "/", f"itwin-bucket:{ITWIN}", "a" * 64) == base  # same API
    assert entry_name("https://qa-api.bentley.com", f"itwin-bucket:{ITWIN}", "a" * 64) != base
    assert entry_name(API, f"itwin-bucket:{RD}", "a" * 64) != base
    assert entry_name(API, f"itwin-bucket:{ITWIN}", "b" * 64) != base


def test_target_keys_separate_read_and_write_access_but_not_for_a_bucket():
    bucket = parse_remote(f"itwin://{ITWIN}/some/prefix")
    other_prefix = parse_remote(f"itwin://{ITWIN.upper()}/other")
    assert cache_target_key(bucket, write=False) == cache_target_key(bucket, write=True) == cache_target_key(other_prefix, write=True)
    rd = parse_remote(f"reality-data://{RD}/x")
    rd_in_itwin = parse_remote(f"reality-data://{RD}/x", itwin_id=ITWIN)
    keys = {cache_target_key(rd, write=False), cache_target_key(rd, write=True),
            cache_target_key(rd_in_itwin, write=False), cache_target_key(rd_in_itwin, write=True),
            cache_target_key(bucket, write=False)}
    assert len(keys) == 5


def test_credential_identities_name_the_principal_without_a_secret():
    app = ClientCredentials("https://ims.bentley.com", "app-1", "very-secret-value")
    same_app = ClientCredentials("https://ims.bentley.com/", "app-1", "rotated-secret-value")
    assert app.cache_identity() == same_app.cache_identity()  # a rotated secret is the same principal
    assert ClientCredentials("https://ims.bentley.com", "app-2", "x" * 10).cache_identity() != app.cache_identity()
    assert ClientCredentials("https://qa-ims.bentley.com", "app-1", "x" * 10).cache_identity() != app.cache_identity()

    token = StaticToken("eyJ.header.token-value")
    assert token.cache_identity() != StaticToken("eyJ.header.other-token").cache_identity()
    assert token.cache_identity() != app.cache_identity()

    login = SavedLogin(client_id="native", ims_url="https://ims.bentley.com", refresh_token="refresh-secret",
                       scope="itwin-platform", account="a@example.com", access_token="access-secret")
    alice = CachedLogin(login, path=Path("/nonexistent/login.json"))
    bob = CachedLogin(SavedLogin(**{**login.__dict__, "account": "b@example.com"}), path=Path("/nonexistent/l.json"))
    assert alice.cache_identity() != bob.cache_identity()
    assert CachedLogin(SavedLogin(**{**login.__dict__, "account": None}), path=Path("/x")).cache_identity() is None

    for identity in (app.cache_identity(), token.cache_identity(), alice.cache_identity()):
        assert len(identity) == 64 and int(identity, 16) >= 0
        for secret in ("very-secret-value", "eyJ.header.token-value", "refresh-secret", "access-secret"):
            assert secret not in identity


# -- the entry file --------------------------------------------------------------------------------------------

def slot(tmp_path: Path, clock: FakeClock, key: str = f"itwin-bucket:{ITWIN}"):
    return SasCache(API, "f" * 64, directory=tmp_path / "state" / "sas-cache", clock=clock).slot(key)


def test_store_then_load_keeps_the_url_and_the_fetch_time_in_a_private_file(tmp_path):
    clock = FakeClock(T0)
    s = slot(tmp_path, clock)
    assert s.load() is None
    s.store(sas_url(T0 + 3600), fetched_at=T0 - 5)
    got = s.load()
    assert got is not None and got.fetched_at == T0 - 5 and got.sas.url == sas_url(T0 + 3600)
    assert stat.S_IMODE(s.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(s.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(s.path.parent.parent.stat().st_mode) == 0o700
    assert [p.name for p in s.path.parent.iterdir()] == [s.path.name]  # no temp file left


@pytest.mark.parametrize("content", [
    b"", b"{", b"\xff\xfe", b"null", b"[1, 2]", b'{"version": 2, "url": "x", "fetched_at": 1}',
    b'{"version": 1, "fetched_at": 1}', b'{"version": 1, "url": "https://acct/c?sv=1", "fetched_at": 1}',
    b'{"version": 1, "url": "https://acct/c?sig=abcdefg", "fetched_at": true}',
])
def test_a_damaged_entry_reads_as_none(tmp_path, content):
    s = slot(tmp_path, FakeClock(T0))
    s.path.parent.mkdir(parents=True)
    s.path.write_bytes(content)
    assert s.load() is None


def test_an_entry_fetched_in_the_future_is_not_trusted(tmp_path):
    clock = FakeClock(T0)
    s = slot(tmp_path, clock)
    s.store(sas_url(T0 + 7200), fetched_at=T0 + 3600)
    assert s.load() is None


def test_a_failed_write_is_not_an_error(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")
    s = slot(tmp_path, FakeClock(T0))
    s.store(sas_url(T0 + 3600), fetched_at=T0)  # no exception
    assert s.load() is None


def test_concurrent_writers_never_leave_a_partial_entry(tmp_path):
    # Two cron runs refreshing at once: a reader sees one whole entry or the other, never a mix or nothing.
    clock = FakeClock(T0)
    writers = [slot(tmp_path, clock) for _ in range(4)]
    writers[0].store(sas_url(T0 + 3600, 0), fetched_at=T0)
    seen: set[str] = set()
    misses: list[int] = []  # an assert in a thread would not fail the test: count, then assert here
    stop = threading.Event()

    def write(n: int) -> None:
        for i in range(60):
            writers[n].store(sas_url(T0 + 3600, n * 100 + i), fetched_at=T0)

    def read() -> None:
        while not stop.is_set():
            got = writers[0].load()
            if got is None:
                misses.append(1)
            else:
                seen.add(got.sas.token)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    assert not misses and seen and all("cachedSig" in token for token in seen)
    assert [p.name for p in writers[0].path.parent.iterdir()] == [writers[0].path.name]


def test_old_entries_are_pruned_when_another_is_written_and_clear_removes_all(tmp_path):
    clock = FakeClock(T0)
    old, new = slot(tmp_path, clock, "itwin-bucket:old"), slot(tmp_path, clock, "itwin-bucket:new")
    old.store(sas_url(T0 + 3600), fetched_at=T0)
    os.utime(old.path, (T0 - 2 * 86400, T0 - 2 * 86400))
    new.store(sas_url(T0 + 3600), fetched_at=T0)
    assert not old.path.exists() and new.path.exists()
    assert clear_cache(new.path.parent) == 1
    assert not new.path.parent.exists()
    assert clear_cache(new.path.parent) == 0


# -- ApiSasSource with the cache -------------------------------------------------------------------------------

class Fetcher:
    def __init__(self, clock: FakeClock, lifetime: float = 3600) -> None:
        self.clock, self.lifetime, self.calls = clock, lifetime, 0

    def __call__(self) -> str:
        self.calls += 1
        return sas_url(self.clock.t + self.lifetime, 100 + self.calls)


def test_a_fresh_entry_starts_the_run_without_a_fetch_and_is_renewed_on_the_same_schedule(tmp_path):
    clock = FakeClock(T0)
    s = slot(tmp_path, clock)
    s.store(sas_url(T0 + 600), fetched_at=T0 - 3000)
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock, cache=s)
    assert source.current().url == sas_url(T0 + 600) and fetch.calls == 0
    clock.t = T0 + 299
    assert fetch.calls == 0 and source.current().url == sas_url(T0 + 600)
    clock.t = T0 + 300  # 5 min before se=, as if this run had fetched it
    renewed = source.current()
    assert fetch.calls == 1 and "cachedSig101" in renewed.token
    assert s.load().sas == renewed and s.load().fetched_at == T0 + 300


def test_a_stale_entry_is_fetched_anew_and_overwritten(tmp_path):
    clock = FakeClock(T0)
    s = slot(tmp_path, clock)
    s.store(sas_url(T0 + 200), fetched_at=T0 - 3400)  # due since 100 s ago
    fetch = Fetcher(clock)
    assert "cachedSig101" in ApiSasSource(fetch, clock=clock, cache=s).current().token
    assert fetch.calls == 1 and "cachedSig101" in s.load().sas.token


def test_a_revoked_entry_fetched_a_moment_ago_still_gets_one_refresh_then_no_loop(tmp_path):
    clock = FakeClock(T0)
    s = slot(tmp_path, clock)
    s.store(sas_url(T0 + 3600), fetched_at=T0 - 1)  # another run stored it a second ago
    fetch = Fetcher(clock)
    source = ApiSasSource(fetch, clock=clock, cache=s)
    stale = source.current()
    fresh = source.refresh(stale)  # storage answered 403
    assert fetch.calls == 1 and fresh != stale and s.load().sas == fresh
    assert source.refresh(fresh) is fresh and fetch.calls == 1  # a 403 with a just-fetched SAS: no refetch


def test_every_fetch_is_stored(tmp_path):
    clock = FakeClock(T0)
    s = slot(tmp_path, clock)
    fetch = Fetcher(clock, lifetime=100)
    source = ApiSasSource(fetch, clock=clock, cache=s)
    first = source.current()
    assert s.load().sas == first
    clock.t += 81  # 20% of 100 s before expiry
    second = source.current()
    assert fetch.calls == 2 and s.load().sas == second != first


# -- the off switch, and what an entry holds --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "auth", "enabled"), [
    ({}, {}, True), ({"BUCKET_SYNC_NO_SAS_CACHE": ""}, {}, True), ({"BUCKET_SYNC_NO_SAS_CACHE": "1"}, {}, False),
    ({"BUCKET_SYNC_NO_SAS_CACHE": "yes"}, {}, False), ({"BUCKET_SYNC_NO_SAS_CACHE": "0"}, {}, True),
    ({}, {"cache-sas": False}, False), ({"BUCKET_SYNC_NO_SAS_CACHE": "0"}, {"cache-sas": False}, False),
])
def test_the_cache_is_on_unless_turned_off(env, auth, enabled):
    assert Globals(env=env, config=Config(path=None, auth=auth)).sas_cache_enabled() is enabled


@pytest.mark.parametrize(("env", "auth"), [({"BUCKET_SYNC_NO_SAS_CACHE": "perhaps"}, {}), ({}, {"cache-sas": "no"})])
def test_an_unclear_switch_is_a_config_error(env, auth):
    with pytest.raises(ConfigError):
        Globals(env=env, config=Config(path=None, auth=auth)).sas_cache_enabled()


def test_an_entry_holds_only_the_url_and_its_fetch_time(tmp_path):
    # Plain JSON a user can inspect: no token, no client id, no secret besides the SAS itself.
    s = slot(tmp_path, FakeClock(T0))
    s.store(sas_url(T0 + 3600), fetched_at=T0)
    assert set(json.loads(s.path.read_text())) == {"version", "url", "fetched_at"}
