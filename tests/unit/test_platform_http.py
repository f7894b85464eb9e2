"""The API's error answers become messages a user can act on; throttling and outages are waited out within
a bound; nothing of httpx (or of a secret) leaks out."""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timezone

import httpx
import pytest

from bucket_sync.errors import ApiError, ExitCode, TransientError, UsageError
from bucket_sync.platform.http import (
    USER_AGENT,
    error_from_response,
    request_with_retries,
)
from bucket_sync.platform.urls import require_secure_url
from bucket_sync.retry import HINT_WITHIN_BUDGET
from bucket_sync.redact import register_secret
from tests.support.fake_clock import FakeClock

URL = "https://api.example.test/reality-modeling/itwins/x/bucket"



def response(status: int, body: object = None, *, text: str | None = None, headers: dict | None = None) -> httpx.Response:
    request = httpx.Request("GET", URL)
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def err(code: str, message: str, **extra: object) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


# -- error mapping: every documented answer ------------------------------------------------------------

DATA_CENTER = {
    "error": {
        "code": "InvalidRealityModelingRequest",
        "message": "Could not retrieve the bucket.",
        "details": [{"code": "InvalidProperty", "message": "iTwin data center location is not supported."}],
    }
}
MOVE_422 = {
    "error": {
        "code": "InvalidRealityDataRequest",
        "message": "Invalid RealityData request.",
        "details": [{"code": "InvalidValue", "message": "The value '028cb17d-01e5' is not valid.", "target": "iTwinId"}],
    }
}


@pytest.mark.parametrize(
    ("status", "body", "exit_code", "retryable", "in_message", "in_hint"),
    [
        (400, DATA_CENTER, ExitCode.NOT_FOUND, False, "not available", "data center"),
        (400, err("InvalidRealityModelingRequest", "Bad id."), ExitCode.USAGE, False, "Bad id.", "check the ids"),
        (401, err("HeaderNotFound", "Header Authorization was not found in the request. Access denied."),
         ExitCode.AUTH, False, "HeaderNotFound", "bucket-sync auth login"),
        (403, err("InsufficientPermissions", "The user has insufficient permissions for the requested operation."),
         ExitCode.AUTH, False, "InsufficientPermissions", "permission"),
        (404, err("iTwinNotFound", "Requested iTwin is not available."), ExitCode.NOT_FOUND, False,
         "Requested iTwin is not available.", "member"),
        (404, err("RealityDataNotFound", "Requested reality data is not available."), ExitCode.NOT_FOUND, False,
         "RealityDataNotFound", "reality data id"),
        (404, err("ResourceNotFound", "The requested resource was not found."), ExitCode.NOT_FOUND, False,
         "ResourceNotFound", "--api-url"),
        (409, err("AlreadyExists", "Reality data is already within the given iTwin."), ExitCode.FAILED, False,
         "already within", None),
        (422, MOVE_422, ExitCode.USAGE, False, "iTwinId: The value '028cb17d-01e5' is not valid.", "correct"),
        (429, err("RateLimitExceeded", "The client sent more requests than allowed."), ExitCode.FAILED, True,
         "RateLimitExceeded", "rate limit"),
        (503, None, ExitCode.FAILED, True, "HTTP 503", "try again later"),
        (500, err("InternalServerError", "Oops."), ExitCode.FAILED, True, "Oops.", "try again later"),
    ],
)
def test_documented_errors_map_to_exit_code_message_and_hint(status, body, exit_code, retryable, in_message, in_hint):
    error = error_from_response(response(status, body), what="get the bucket of iTwin X")
    assert isinstance(error, ApiError)
    assert error.status == status
    assert error.exit_code == exit_code
    assert error.retryable is retryable
    assert error.message.startswith("could not get the bucket of iTwin X: ")
    assert f"HTTP {status}" in error.message
    assert in_message in error.message
    if in_hint:
        assert in_hint in error.hint
    if body:
        assert error.code == body["error"]["code"]


def test_422_keeps_each_detail_with_its_target():
    error = error_from_response(response(422, MOVE_422), what="move")
    assert error.details == (("InvalidValue", "The value '028cb17d-01e5' is not valid.", "iTwinId"),)


def test_401_hint_names_every_way_to_fix_credentials():
    error = error_from_response(response(401, err("HeaderNotFound", "x")), what="w")
    for name in ("ITWIN_ACCESS_TOKEN", "ITWIN_CLIENT_ID", "ITWIN_CLIENT_SECRET", "bucket-sync auth login"):
        assert name in error.hint


UNKNOWN_CLIENT_API = err(  # what api.bentley.com answers for a token of an app it does not know
    "Unauthorized",
    "Access denied due to invalid client. Make sure that client was registered on https://developer.bentley.com.",
    details=[{"code": "UnknownClient", "message": "Client was not registered on https://developer.bentley.com."}],
)
UNKNOWN_CLIENT_IMS = {  # OAuth's shape, the same detail beside it
    "error": "invalid_client",
    "error_description": "Access denied due to invalid client.",
    "details": [{"code": "UnknownClient", "message": "Client was not registered on https://developer.bentley.com."}],
}


@pytest.mark.parametrize("body", [UNKNOWN_CLIENT_API, UNKNOWN_CLIENT_IMS])
def test_401_unknown_client_says_to_register_the_app_and_check_its_type(body):
    error = error_from_response(response(401, body), what="w")
    assert error.exit_code == ExitCode.AUTH
    assert "Client was not registered" in error.message
    assert error.details[0][0] == "UnknownClient"
    for words in ("not registered", "wrong type", "developer portal", "Service app", "Native/Desktop app",
                  "auth login", "itwin-platform scope"):
        assert words in error.hint
    # Not the generic 401 advice (an expired token): the app itself is the problem.
    assert "may have expired" not in error.hint


def test_a_401_without_unknown_client_keeps_the_token_advice():
    error = error_from_response(response(401, err("Unauthorized", "Access denied due to invalid access_token.")),
                                what="w")
    assert "may have expired" in error.hint and "developer portal" not in error.hint


@pytest.mark.parametrize("status,code", [(403, "InsufficientPermissions"), (404, "iTwinNotFound"), (404, None)])
def test_service_app_is_reminded_to_be_invited(status, code):
    body = err(code, "no") if code else None
    error = error_from_response(response(status, body), what="w", app_email="abc@apps.imsoidc.bentley.com")
    assert "invited" in error.hint and "abc@apps.imsoidc.bentley.com" in error.hint


def test_hint_override_per_call():
    error = error_from_response(response(403, err("InsufficientPermissions", "no")), what="w", hints={403: "need manage"})
    assert error.hint == "need manage"


# -- bodies that are not the documented JSON -------------------------------------------------------------

@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (response(502, text="<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>",
                  headers={"content-type": "text/html"}), "'502 Bad Gateway'"),
        (response(404, text="<html><body><p>Not  here</p></body></html>"), "'Not here'"),
        (response(500, text="upstream connect error"), "'upstream connect error'"),
        (response(401), "HTTP 401 Unauthorized with no error details"),
        (response(403, {"unexpected": True}), "HTTP 403 Forbidden: the server said '{\"unexpected\":true}'"),
        (response(404, {"error": None}), "HTTP 404"),
        (response(400, [1, 2]), "'[1,2]'"),
        (response(401, {"statusCode": 401, "message": "Access denied due to invalid subscription key."}),
         "Access denied due to invalid subscription key."),
    ],
)
def test_undocumented_bodies_still_give_status_and_what_the_server_said(resp, expected):
    error = error_from_response(resp, what="do it")
    assert f"HTTP {resp.status_code}" in error.message
    assert expected in error.message
    assert error.hint  # always something to do


def test_long_server_text_is_truncated_to_one_line():
    error = error_from_response(response(500, text="boom\n" * 1000), what="w")
    assert "\n" not in error.message
    assert len(error.message) < 400


def test_secrets_echoed_by_the_server_never_reach_the_message():
    register_secret("client-secret-value-123")
    body = err(
        "Weird",
        "echo: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig and client-secret-value-123",
        details=[{"code": "X", "message": "https://a.blob.core.windows.net/c?sv=1&sig=SECRETSIG%2B%3D", "target": "t"}],
    )
    message = str(error_from_response(response(400, body), what="w"))
    for secret in ("eyJhbGciOiJSUzI1NiJ9", "client-secret-value-123", "SECRETSIG"):
        assert secret not in message
    html = error_from_response(response(500, text="<p>url?sig=ANOTHERSIG&x=1</p>"), what="w")
    assert "ANOTHERSIG" not in str(html)


# -- Retry-After -------------------------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("2.5", 2.5),
        ("0", 1.0),
        ("-5", 1.0),
        ("soon", 1.0),
        ("nan", 1.0),
        ("86400", 120.0),
        (format_datetime(datetime.fromtimestamp(NOW + 30, timezone.utc), usegmt=True), 30.0),
        (format_datetime(datetime.fromtimestamp(NOW - 30, timezone.utc), usegmt=True), 1.0),
    ],
)
def test_retry_after_values(header, expected):
    assert HINT_WITHIN_BUDGET.seconds(header, now=NOW) == expected


def sequence_client(*responses, seen: list | None = None) -> httpx.Client:
    """A client whose transport answers with ``responses`` in turn (the last one repeats)."""
    items = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        status, body, headers = item
        return httpx.Response(status, json=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handler))


def call(client, clock, method="GET", **kwargs):
    return request_with_retries(client, method, URL, what="get the bucket", sleep=clock.sleep, clock=clock,
                                wall_clock=clock, rng=lambda: 1.0, **kwargs)


THROTTLED = err("RateLimitExceeded", "slow down")


def test_429_waits_for_retry_after_then_succeeds():
    clock = FakeClock()
    client = sequence_client((429, THROTTLED, {"Retry-After": "7"}), (200, {"ok": 1}, None))
    assert call(client, clock).json() == {"ok": 1}
    assert clock.sleeps == [7.0]


def test_503_honours_http_date_retry_after_relative_to_server_date():
    clock = FakeClock()
    server_now = datetime(2025, 5, 30, 11, 0, 0, tzinfo=timezone.utc)
    headers = {"Date": format_datetime(server_now, usegmt=True),
               "Retry-After": format_datetime(server_now.replace(second=12), usegmt=True)}
    client = sequence_client((503, None, headers), (200, {}, None))
    call(client, clock)
    assert clock.sleeps == [12.0]


def test_huge_retry_after_is_capped_and_negative_gets_a_small_default():
    clock = FakeClock()
    client = sequence_client((429, THROTTLED, {"Retry-After": "999999"}), (429, THROTTLED, {"Retry-After": "-3"}),
                             (200, {}, None))
    call(client, clock)
    assert clock.sleeps == [120.0, 1.0]


def test_missing_retry_after_backs_off_exponentially():
    clock = FakeClock()
    client = sequence_client((429, THROTTLED, None), (429, THROTTLED, None), (429, THROTTLED, None), (200, {}, None))
    call(client, clock)
    assert clock.sleeps == [2.0, 4.0, 8.0]  # rng=1.0: the top of each jitter range


def test_jitter_spreads_waits_between_half_and_full():
    clock = FakeClock()
    client = sequence_client((429, THROTTLED, None), (200, {}, None))
    request_with_retries(client, "GET", URL, what="w", sleep=clock.sleep, clock=clock, rng=lambda: 0.0)
    assert clock.sleeps == [1.0]


def test_total_wait_is_bounded_then_the_429_is_raised():
    clock = FakeClock()
    seen: list = []
    client = sequence_client((429, THROTTLED, {"Retry-After": "100"}), seen=seen)
    with pytest.raises(ApiError) as info:
        call(client, clock)
    assert sum(clock.sleeps) <= 300
    assert clock.sleeps == [100.0, 100.0, 100.0]
    assert len(seen) == 4
    assert info.value.status == 429 and info.value.retryable
    assert "gave up after retrying for 300 s" in info.value.message


def test_an_error_after_a_throttled_attempt_is_reported_as_itself():
    clock = FakeClock()
    client = sequence_client((429, THROTTLED, {"Retry-After": "1"}), (404, err("iTwinNotFound", "gone"), None))
    with pytest.raises(ApiError) as info:
        call(client, clock)
    assert info.value.exit_code == ExitCode.NOT_FOUND
    assert "gave up" not in info.value.message


def test_an_error_after_retries_tells_which_answers_were_retried():
    clock = FakeClock()
    client = sequence_client((429, THROTTLED, {"Retry-After": "1"}), (503, None, {"Retry-After": "1"}),
                             (409, err("AlreadyExists", "already"), None))
    with pytest.raises(ApiError) as info:
        call(client, clock, method="PATCH")
    assert info.value.status == 409 and info.value.retried_after == (429, 503)
    first = sequence_client((409, err("AlreadyExists", "already"), None))
    with pytest.raises(ApiError) as info:
        call(first, FakeClock(), method="PATCH")
    assert info.value.retried_after == ()


def test_max_wait_is_configurable():
    clock = FakeClock()
    client = sequence_client((429, THROTTLED, {"Retry-After": "10"}))
    with pytest.raises(ApiError):
        call(client, clock, max_wait_s=25)
    assert clock.sleeps == [10.0, 10.0]


def test_server_errors_on_get_are_retried_a_few_times():
    clock = FakeClock()
    seen: list = []
    client = sequence_client((502, None, None), (500, None, None), (504, None, None), (200, {"ok": 1}, None), seen=seen)
    assert call(client, clock).json() == {"ok": 1}
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_persistent_500_gives_up_with_exit_1():
    clock = FakeClock()
    seen: list = []
    client = sequence_client((500, err("Internal", "boom"), None), seen=seen)
    with pytest.raises(ApiError) as info:
        call(client, clock, max_retries=2)
    assert len(seen) == 3
    assert info.value.exit_code == ExitCode.FAILED and info.value.retryable


def test_patch_is_not_resent_after_a_500_but_is_after_a_429():
    clock = FakeClock()
    seen: list = []
    with pytest.raises(ApiError):
        call(sequence_client((500, None, None), (204, None, None), seen=seen), clock, method="PATCH")
    assert len(seen) == 1
    seen.clear()
    call(sequence_client((429, THROTTLED, {"Retry-After": "1"}), (204, None, None), seen=seen), clock, method="PATCH")
    assert len(seen) == 2


def test_connection_errors_are_retried_then_translated():
    clock = FakeClock()
    client = sequence_client(httpx.ConnectError("[Errno 111] Connection refused"), (200, {"ok": 1}, None))
    assert call(client, clock).json() == {"ok": 1}
    assert len(clock.sleeps) == 1

    client = sequence_client(httpx.ReadTimeout("timed out"))
    with pytest.raises(TransientError) as info:
        call(client, clock, max_retries=2)
    assert "cannot reach api.example.test" in info.value.message
    assert "after 3 attempt(s)" in info.value.message
    assert info.value.retryable


def test_a_patch_whose_answer_was_lost_is_not_resent():
    clock = FakeClock()
    seen: list = []
    with pytest.raises(TransientError):
        call(sequence_client(httpx.ReadError("reset"), (204, None, None), seen=seen), clock, method="PATCH")
    assert len(seen) == 1 and clock.sleeps == []


def test_no_httpx_exception_escapes():
    clock = FakeClock()
    with pytest.raises(ApiError) as info:
        call(sequence_client(httpx.TooManyRedirects("loop")), clock)
    assert not isinstance(info.value, httpx.HTTPError)
    with pytest.raises(UsageError):
        call(sequence_client(httpx.UnsupportedProtocol("ftp")), clock)


def test_requests_carry_the_user_agent():
    seen: list = []
    call(sequence_client((200, {}, None), seen=seen), FakeClock(), headers={"Accept": "application/json"})
    assert seen[0].headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("bucket-sync/")
    assert seen[0].headers["Accept"] == "application/json"


# -- URLs that would send tokens in clear ----------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://api.bentley.com", "http://10.0.0.5:8080", "ftp://x", "api.bentley.com"])
def test_plain_http_to_a_remote_host_is_refused(url):
    with pytest.raises(UsageError) as info:
        require_secure_url(url, option="--api-url")
    assert info.value.exit_code == ExitCode.USAGE
    assert "--api-url" in info.value.message


@pytest.mark.parametrize("url", ["https://api.bentley.com/", "http://127.0.0.1:8080", "http://localhost:1/", "http://[::1]:9"])
def test_https_and_loopback_are_accepted(url):
    assert require_secure_url(url, option="--api-url") == url.rstrip("/")
