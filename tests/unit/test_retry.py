"""Every retry bucket-sync makes waits by a named schedule in bucket_sync/retry.py; the differences between
them (and between the two Retry-After rules) are deliberate, and pinned here."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from bucket_sync.errors import AuthError, NoCredentialsError, PermissionDeniedError, SasExpiredError
from bucket_sync.platform.resolver import ApiSasSource, StaticSasSource
from bucket_sync.retry import (FILE, HINT_WITHIN_ATTEMPTS, HINT_WITHIN_BUDGET, PLATFORM_API, PLATFORM_THROTTLED,
                               STORAGE, WATCH_OUTAGE, WEBHOOK, Backoff, renewal_retry_in)
from bucket_sync.sas import ContainerSas
from bucket_sync.storage.errors import PERMISSION_MISMATCH, lacks_permission, refresh_may_cure, retry_may_cure

LOW, HIGH = (lambda: 0.0), (lambda: 1.0)
NOW = 1_700_000_000.0


def schedule(policy, n: int, rng) -> list[float]:
    return [round(policy.backoff(i, rng), 6) for i in range(1, n + 1)]


def test_storage_doubles_from_half_a_second_to_20_s_with_full_jitter():
    assert schedule(STORAGE, 7, HIGH) == [0.5, 1, 2, 4, 8, 16, 20]
    assert schedule(STORAGE, 3, LOW) == [0, 0, 0]  # full jitter: many clients on one account spread out
    assert STORAGE.attempts == 6


def test_the_platform_api_doubles_to_30_s_never_sooner_than_half_the_step():
    assert schedule(PLATFORM_API, 8, HIGH) == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert schedule(PLATFORM_API, 3, LOW) == [0.25, 0.5, 1]
    assert PLATFORM_API.attempts == 5  # the first try and 4 retries


def test_a_throttled_api_waits_longer_steps_bounded_by_time_not_by_count():
    assert schedule(PLATFORM_THROTTLED, 6, HIGH) == [2, 4, 8, 16, 32, 60]
    assert schedule(PLATFORM_THROTTLED, 2, LOW) == [1, 2]
    assert PLATFORM_THROTTLED.attempts is None


def test_a_whole_file_is_retried_on_a_linear_spread_schedule():
    assert schedule(FILE, 3, LOW) == [0.5, 1, 1.5]
    assert schedule(FILE, 3, HIGH) == [1.5, 3, 4.5]


def test_watch_outages_wait_exactly_1_2_4_up_to_30_s():
    assert schedule(WATCH_OUTAGE, 7, LOW) == schedule(WATCH_OUTAGE, 7, HIGH) == [1, 2, 4, 8, 16, 30, 30]


def test_a_webhook_waits_1_2_4_8_s_plus_up_to_a_quarter():
    assert schedule(WEBHOOK, 4, LOW) == [1, 2, 4, 8]
    assert schedule(WEBHOOK, 4, HIGH) == [1.25, 2.5, 5, 10]
    assert WEBHOOK.attempts == 5


@pytest.mark.parametrize(("header", "attempts_rule", "budget_rule"), [
    (None, None, None),
    ("", None, None),
    ("7", 7.0, 7.0),
    ("0", 0.0, 1.0),  # counted retries take "0" at its word; time-bounded ones wait at least 1 s
    ("-5", 0.0, 1.0),
    ("later", None, 1.0),  # unreadable: the schedule decides / the server did say "not now"
    ("nan", None, 1.0),
    ("86400", 60.0, 120.0),
    (format_datetime(datetime.fromtimestamp(NOW + 30, timezone.utc), usegmt=True), 30.0, 30.0),
    (format_datetime(datetime.fromtimestamp(NOW - 30, timezone.utc), usegmt=True), 0.0, 1.0),
])
def test_the_two_retry_after_rules(header, attempts_rule, budget_rule):
    assert HINT_WITHIN_ATTEMPTS.seconds(header, now=NOW) == attempts_rule
    assert HINT_WITHIN_BUDGET.seconds(header, now=NOW) == budget_rule


def test_which_policies_read_retry_after_and_by_which_rule():
    assert STORAGE.retry_after is WEBHOOK.retry_after is HINT_WITHIN_ATTEMPTS
    assert PLATFORM_THROTTLED.retry_after is HINT_WITHIN_BUDGET
    assert PLATFORM_API.retry_after is FILE.retry_after is WATCH_OUTAGE.retry_after is None
    assert STORAGE.wait(3, "5") == 5 and STORAGE.wait(3, "garbage", rng=HIGH) == STORAGE.backoff(3, HIGH) == 2
    assert PLATFORM_THROTTLED.wait(1, "garbage", rng=HIGH) == 1.0  # not the 2 s step
    assert PLATFORM_API.wait(1, "60", rng=HIGH) == 0.5  # a 500's Retry-After is not the API's throttle


def test_a_backoff_counts_attempts_and_stops_when_cancelled():
    slept: list[float] = []
    b = Backoff(attempts=3, sleep=slept.append, rng=HIGH)
    assert [b.may_retry(n) for n in (1, 2, 3)] == [True, True, False]
    b.wait(b.delay(2))
    assert slept == [1.0]
    assert Backoff().attempts == STORAGE.attempts and Backoff(PLATFORM_API).attempts == 5
    cancel = threading.Event()
    cancel.set()
    assert not Backoff(cancel=cancel).may_retry(1)


def test_a_failed_early_renewal_is_tried_again_within_15_s_and_before_half_the_time_left():
    assert renewal_retry_in(300) == 15 and renewal_retry_in(10) == 5 and renewal_retry_in(float("inf")) == 15


# -- what a 403 from storage means: decided in storage/errors.py, for every path ------------------------

def test_a_403_is_either_a_missing_permission_or_worth_a_fresh_sas():
    assert lacks_permission(403, PERMISSION_MISMATCH) and not refresh_may_cure(403, PERMISSION_MISMATCH)
    for code in ("AuthenticationFailed", "", None):
        assert refresh_may_cure(403, code) and not lacks_permission(403, code)
    assert not refresh_may_cure(404, "") and not lacks_permission(500, PERMISSION_MISMATCH)


def test_only_a_renewable_sas_outlives_an_authorization_failure():
    direct = StaticSasSource(ContainerSas.from_url("https://a.blob.core.windows.net/c?sp=rl&sig=x"))
    fetched = ApiSasSource(lambda: "https://a.blob.core.windows.net/c?sp=rl&sig=x")
    assert retry_may_cure(AuthError("refused"), fetched) and retry_may_cure(SasExpiredError("old"), fetched)
    assert not retry_may_cure(AuthError("refused"), direct)
    for final in (PermissionDeniedError("no l"), NoCredentialsError("none")):
        assert not retry_may_cure(final, fetched)
