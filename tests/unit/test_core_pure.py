"""Pure pieces of the core: remote parsing, SAS parsing, mtime metadata, filters, block sizes, redaction."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from bucket_sync.errors import UsageError
from bucket_sync.redact import RedactingFilter, redact, register_secret
from bucket_sync.sas import ContainerSas
from bucket_sync.sync.bandwidth import RateLimiter
from bucket_sync.sync.budget import MAX_BLOCKS, MiB, ByteBudget, choose_block_size, choose_range_size
from bucket_sync.sync.filters import PathFilter
from bucket_sync.sync.mtime import format_mtime, parse_mtime
from bucket_sync.targets import ItwinBucketTarget, RealityDataTarget, SasUrlTarget, parse_remote

GUID = "90b86d36-ca6f-4d9f-a795-e3118d2a0073"
SAS = "sv=2024-08-04&se=2025-05-30T11%3A37%3A13Z&sr=c&sp=rw&sig=SECRETSIGNATURE%2Babc"


class TestRemotes:
    def test_itwin_prefix_is_normalised(self):
        assert parse_remote(f"itwin://{GUID.upper()}//a//b/") == ItwinBucketTarget(GUID, "a/b")
        assert parse_remote(f"itwin://{GUID}").prefix == ""

    def test_reality_data_with_itwin(self):
        t = parse_remote(f"reality-data://{GUID}/x", itwin_id=GUID)
        assert t == RealityDataTarget(GUID, "x", GUID)

    @pytest.mark.parametrize("text", ["itwin://abc/x", f"itwin://{GUID}/a/../b", "s3://bucket/x", "reality-data://1/x"])
    def test_bad_remotes_are_usage_errors(self, text):
        with pytest.raises(UsageError):
            parse_remote(text)

    def test_azure_url_container_is_first_segment(self):
        t = parse_remote(f"https://acct.blob.core.windows.net/bucket-{GUID}/photos/day1?{SAS}")
        assert isinstance(t, SasUrlTarget)
        assert t.sas.container_url == f"https://acct.blob.core.windows.net/bucket-{GUID}"
        assert t.prefix == "photos/day1"

    def test_azurite_url_is_path_style(self):
        t = parse_remote(f"http://127.0.0.1:10000/devstoreaccount1/cont/p?{SAS}")
        assert t.sas.container_url == "http://127.0.0.1:10000/devstoreaccount1/cont" and t.prefix == "p"

    def test_errors_never_echo_the_signature(self):
        with pytest.raises(UsageError) as err:
            parse_remote(f"http://example.com/cont?{SAS}")
        assert "SECRETSIGNATURE" not in str(err.value)


class TestSas:
    def test_expiry_and_permissions(self):
        sas = ContainerSas.from_url(f"https://a.blob.core.windows.net/c?{SAS}")
        assert sas.expires_at == datetime(2025, 5, 30, 11, 37, 13, tzinfo=timezone.utc)
        assert sas.permissions == "rw" and sas.lacks("rl") == "l" and sas.lacks("w") == ""
        assert "SECRETSIGNATURE" not in sas.redacted_url and "sig=REDACTED" in sas.redacted_url

    def test_missing_signature_is_refused(self):
        with pytest.raises(UsageError, match="signature"):
            ContainerSas.from_url("https://a.blob.core.windows.net/c?sv=1&sp=r")


class TestMtime:
    def test_rclone_format_round_trips_nanoseconds(self):
        assert format_mtime(1_600_000_000_123_456_789) == "2020-09-13T12:26:40.123456789Z"
        assert format_mtime(1_600_000_000_000_000_000) == "2020-09-13T12:26:40Z"
        assert format_mtime(1_600_000_000_100_000_000) == "2020-09-13T12:26:40.1Z"
        for ns in (0, 1, 1_600_000_000_123_456_789, 1_700_000_000_500_000_000):
            assert parse_mtime(format_mtime(ns)) == ns

    def test_offsets_and_garbage(self):
        assert parse_mtime("2020-09-13T14:26:40+02:00") == 1_600_000_000 * 10**9
        assert parse_mtime("yesterday") is None and parse_mtime("") is None and parse_mtime("2020-13-45T00:00:00Z") is None


class TestFilters:
    def test_exclude_base_name_anywhere_and_anchored_paths(self):
        f = PathFilter.from_options(exclude=("*.tmp", "cache/**"))
        assert not f.allows("a/b/c.tmp") and not f.allows("cache/x/y") and f.allows("a/cache.txt")

    def test_include_excludes_everything_else(self):
        f = PathFilter.from_options(include=("**/*.jpg",))
        assert f.allows("x.jpg") and f.allows("d/e/x.jpg") and not f.allows("x.png")

    def test_exclude_wins_over_include(self):
        f = PathFilter.from_options(include=("*.jpg",), exclude=("bad/**",))
        assert not f.allows("bad/x.jpg") and f.allows("good/x.jpg")


class TestBlocks:
    def test_block_size_respects_the_50000_block_limit(self):
        assert choose_block_size(10 * 1024 * MiB) == 8 * MiB
        huge = 1000 * 1024 * MiB  # ~1 TB
        block = choose_block_size(huge)
        assert -(-huge // block) <= MAX_BLOCKS and block % MiB == 0
        assert choose_block_size(100, 64 * 1024) == 64 * 1024

    def test_download_ranges_are_long_for_big_files_yet_spread_over_every_stream(self):
        assert choose_range_size(1024 * MiB, None, 16) == 32 * MiB  # 32 requests, not 128
        assert choose_range_size(200 * MiB, None, 16) == 13 * MiB  # 16 requests of whole MiB
        assert choose_range_size(20 * MiB, None, 16) == 8 * MiB
        assert choose_range_size(1024 * MiB, 64 * 1024, 16) == 64 * 1024  # --block-size decides when given
        assert choose_range_size(1024 * MiB, None, 1) == 32 * MiB

    def test_budget_clamps_oversized_requests(self):
        """A request larger than the budget runs (no deadlock) and holds the whole budget meanwhile."""
        import threading

        budget = ByteBudget(10)
        got = threading.Event()

        def another() -> None:
            budget.acquire(1)
            got.set()

        with budget.hold(100):
            waiter = threading.Thread(target=another, daemon=True)
            waiter.start()
            assert not got.wait(0.2)  # nothing is left while the big one runs
        assert got.wait(5)  # released whole
        waiter.join(5)


class TestRedaction:
    def test_patterns_and_registered_secrets(self):
        register_secret("tok-123456-secret")
        text = redact("GET https://x/c?sv=1&sig=abc%2Fdef&sp=r Authorization: Bearer eyJabc.def tok-123456-secret")
        assert "abc%2Fdef" not in text and "eyJabc" not in text and "tok-123456-secret" not in text

    def test_log_filter_redacts_args_and_exceptions(self):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "url %s", ("https://a/c?sig=SECRET1",), None)
        try:
            raise ValueError("boom https://a/c?sig=SECRET2")
        except ValueError:
            import sys
            record.exc_info = sys.exc_info()
        RedactingFilter().filter(record)
        assert "SECRET1" not in record.getMessage() and "SECRET2" not in record.getMessage()


def test_rate_limiter_paces_to_the_rate():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.consume(1000)
    # one second of burst, then one second per 1000 bytes
    assert now[0] == pytest.approx(4.0)


def test_size_and_rate_options():
    from bucket_sync.cli.options import parse_rate, parse_size

    assert parse_size("8M") == parse_size("8MiB") == parse_size("8mb") == 8 * MiB
    assert parse_size("64K") == 64 * 1024 and parse_size(None) is None
    assert parse_rate("10M") == 10 * MiB and parse_rate("0") is None
    for bad in ("1X", "1K", "5000G"):
        with pytest.raises(UsageError):
            parse_size(bad)
    with pytest.raises(UsageError):
        parse_rate("5")


def test_the_scan_never_takes_our_own_files_for_the_users(tmp_path):
    """The case probe appears for a moment in the destination while the scan walks it in another thread
    (it once made a download mirror plan to delete it); partial files are reported, not yielded."""
    from bucket_sync.sync.keys import CASE_PROBE_PREFIX, is_case_insensitive_dir
    from bucket_sync.sync.scan import PARTIAL_SUFFIX, scan_tree

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "real.txt").write_text("x")
    (tmp_path / f"{CASE_PROBE_PREFIX}0123").write_text("")
    (tmp_path / "d" / f"half.bin{PARTIAL_SUFFIX}").write_text("")
    partials = []
    keys = [f.key for f in scan_tree(str(tmp_path), on_partial=lambda key, path: partials.append(key))]
    assert keys == ["d/real.txt"] and partials == ["d/half.bin"]
    assert is_case_insensitive_dir(str(tmp_path)) is False  # this machine's filesystems are case-sensitive
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{CASE_PROBE_PREFIX}0123", "d"]  # probe removed
