"""The API calls bucket-sync makes: the right request goes out, the container URL comes back from every
answer shape seen so far, and each refusal reaches the user with the right exit code and hint."""

from __future__ import annotations

import json

import httpx
import pytest

from bucket_sync.errors import ApiError, ExitCode, UsageError
from bucket_sync.platform.api import ACCEPT_V1, ACCEPT_V2, MoveOutcome, PlatformApi
from bucket_sync.platform.credentials import ClientCredentials, StaticToken
from bucket_sync.platform.http import ApiTransport
from bucket_sync.redact import REDACTED, redact

API = "https://api.example.test"
ITWIN = "90b86d36-ca6f-4d9f-a795-e3118d2a0073"
OTHER_ITWIN = "028cb17d-01e5-4d92-bfee-89b201a92000"
RD = "11111111-2222-3333-4444-555555555555"
TOKEN = "api-access-token-xyz"
SAS_URL = (
    f"https://cccsprodeusbsa01.blob.core.windows.net/bucket-{ITWIN}"
    "?sv=2024-08-04&se=2025-05-30T11%3A37%3A13Z&sr=c&sp=rw&sig=SIGNATURE%2Bvalue%3D"
)


class Recorder:
    """An API that answers each request with the next of ``replies``: (status, json body, headers)."""

    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, headers = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers) if body is not None else httpx.Response(status, headers=headers)


def make_api(recorder: Recorder, tokens=None, sleeps: list | None = None) -> PlatformApi:
    sleeps = sleeps if sleeps is not None else []
    return PlatformApi(API, tokens or StaticToken(TOKEN), http=httpx.Client(transport=httpx.MockTransport(recorder)),
                       sleep=sleeps.append, clock=lambda: float(sum(sleeps)))


def error(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


BUCKET = {"bucket": {"iTwinId": ITWIN}, "_links": {"containerUrl": {"href": SAS_URL}}}


def test_bucket_request_and_documented_answer():
    recorder = Recorder((200, BUCKET, None))
    assert make_api(recorder).bucket_container_url(ITWIN) == SAS_URL
    request = recorder.requests[0]
    assert request.method == "GET"
    assert str(request.url) == f"{API}/reality-modeling/itwins/{ITWIN}/bucket"
    assert request.headers["Accept"] == ACCEPT_V2
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"].startswith("bucket-sync/")


@pytest.mark.parametrize(
    "body",
    [
        {"containerUrl": SAS_URL},
        {"containerUrl": {"href": SAS_URL}},
        {"bucket": {"iTwinId": ITWIN, "containerUrl": SAS_URL}},
        {"bucket": {"_links": {"containerUrl": {"href": SAS_URL}}}},
        {"_links": {"containerUrl": SAS_URL}},
    ],
)
def test_bucket_url_is_found_in_earlier_answer_shapes(body):
    assert make_api(Recorder((200, body, None))).bucket_container_url(ITWIN) == SAS_URL


@pytest.mark.parametrize("body", [{"bucket": {"iTwinId": ITWIN}}, {"_links": {"containerUrl": {"href": ""}}},
                                  "<html><title>Sign in</title></html>", None])
def test_a_200_without_a_url_is_a_clear_error(body):
    with pytest.raises(ApiError) as info:
        make_api(Recorder((200, body, None))).bucket_container_url(ITWIN)
    assert info.value.exit_code == ExitCode.FAILED
    assert "without a container URL" in info.value.message
    assert ITWIN in info.value.message


def test_the_signature_of_a_fetched_url_is_registered_as_secret():
    make_api(Recorder((200, BUCKET, None))).bucket_container_url(ITWIN)
    assert redact("SIGNATURE+value=") == REDACTED  # the decoded form, as it might appear elsewhere


@pytest.mark.parametrize(("write", "path", "itwin", "query"), [
    (False, "readaccess", None, ""),
    (True, "writeaccess", None, ""),
    (True, "writeaccess", ITWIN, f"?iTwinId={ITWIN}"),
])
def test_reality_data_access_requests(write, path, itwin, query):
    body = {"type": "AzureBlobSasUrl", "access": "Write" if write else "Read", "_links": {"containerUrl": {"href": SAS_URL}}}
    recorder = Recorder((200, body, None))
    assert make_api(recorder).reality_data_container_url(RD, write=write, itwin_id=itwin) == SAS_URL
    request = recorder.requests[0]
    assert str(request.url) == f"{API}/reality-management/reality-data/{RD}/{path}{query}"
    assert request.headers["Accept"] == ACCEPT_V1


def test_move_sends_the_destination_and_accepts_204():
    recorder = Recorder((204, None, None))
    assert make_api(recorder).move_reality_data(RD, OTHER_ITWIN).outcome is MoveOutcome.MOVED
    request = recorder.requests[0]
    assert request.method == "PATCH"
    assert str(request.url) == f"{API}/reality-management/reality-data/{RD}/move"
    assert json.loads(request.content) == {"iTwinId": OTHER_ITWIN}
    assert request.headers["Accept"] == ACCEPT_V1


def test_move_into_the_same_itwin_says_so():
    recorder = Recorder((409, error("AlreadyExists", "Reality data is already within the given iTwin."), None))
    with pytest.raises(ApiError) as info:
        make_api(recorder).move_reality_data(RD, OTHER_ITWIN)
    assert info.value.exit_code == ExitCode.FAILED
    assert "reality data is already within that iTwin" in info.value.message


ALREADY = error("AlreadyExists", "Reality data is already within the given iTwin.")


@pytest.mark.parametrize("first", [429, 503])
def test_a_move_retried_after_throttling_that_finds_it_already_there_has_succeeded(first):
    # The first attempt went through, its answer did not (a gateway gave up): the retry hears 409.
    sleeps: list = []
    recorder = Recorder((first, error("ServiceUnavailable", "later"), {"Retry-After": "2"}), (409, ALREADY, None))
    result = make_api(recorder, sleeps=sleeps).move_reality_data(RD, OTHER_ITWIN)
    assert result.outcome is MoveOutcome.ALREADY_THERE_AFTER_RETRY and result.retried_after == (first,)
    assert sleeps == [2.0] and len(recorder.requests) == 2


@pytest.mark.parametrize("replies", [
    [(409, ALREADY, None)],  # on the first attempt: it was there before, nothing moved
    [(429, error("RateLimitExceeded", "slow"), {"Retry-After": "1"}), (409, error("Conflict", "locked"), None)],
    [(429, error("RateLimitExceeded", "slow"), {"Retry-After": "1"}), (409, None, None)],  # no body: unsure
])
def test_other_409s_are_still_failures(replies):
    with pytest.raises(ApiError) as info:
        make_api(Recorder(*replies)).move_reality_data(RD, OTHER_ITWIN)
    assert info.value.exit_code == ExitCode.FAILED and "already within that iTwin" in info.value.message


@pytest.mark.parametrize(("write", "permission"), [(False, "realitydata_use"), (True, "realitydata_manage")])
def test_forbidden_reality_data_access_without_an_itwin_says_to_pass_it(write, permission):
    recorder = Recorder((403, error("InsufficientPermissions", "The user has insufficient permissions."), None))
    with pytest.raises(ApiError) as info:
        make_api(recorder).reality_data_container_url(RD, write=write)
    assert info.value.exit_code == ExitCode.AUTH
    assert "--itwin <iTwinId>" in info.value.hint and "only in some cases" in info.value.hint
    assert permission in info.value.hint


@pytest.mark.parametrize(("write", "permission", "other"), [(False, "realitydata_use", "realitydata_manage"),
                                                             (True, "realitydata_manage", "realitydata_use")])
def test_forbidden_reality_data_access_with_an_itwin_names_the_permission(write, permission, other):
    recorder = Recorder((403, error("InsufficientPermissions", "The user has insufficient permissions."), None))
    with pytest.raises(ApiError) as info:
        make_api(recorder).reality_data_container_url(RD, write=write, itwin_id=ITWIN)
    hint = info.value.hint
    assert f"needs the {permission} permission on iTwin {ITWIN}" in hint
    assert other not in hint and "--itwin" not in hint


def test_forbidden_reality_data_access_reminds_a_service_app_to_be_invited():
    ims = httpx.MockTransport(lambda r: httpx.Response(200, json={"access_token": "svc-token-123", "expires_in": 3600}))
    tokens = ClientCredentials("https://ims.example.test", "svc-client", "svc-secret-value",
                               transport=ApiTransport(httpx.Client(transport=ims)))
    recorder = Recorder((403, error("InsufficientPermissions", "no"), None))
    with pytest.raises(ApiError) as info:
        make_api(recorder, tokens).reality_data_container_url(RD, write=True, itwin_id=ITWIN)
    assert "realitydata_manage" in info.value.hint and "svc-client@apps.imsoidc.bentley.com" in info.value.hint


@pytest.mark.parametrize(("status", "body", "exit_code", "expected"), [
    (403, error("InsufficientPermissions", "The user has insufficient permissions."), ExitCode.AUTH, "realitydata_manage"),
    (404, error("RealityDataNotFound", "Requested reality data is not available."), ExitCode.NOT_FOUND, "destination iTwin id"),
    (422, error("InvalidRealityDataRequest", "Invalid RealityData request.",
                details=[{"code": "InvalidValue", "message": "The value 'x' is not valid.", "target": "iTwinId"}]),
     ExitCode.USAGE, "same organization and data center"),
    (401, error("HeaderNotFound", "Header Authorization was not found in the request."), ExitCode.AUTH, "auth login"),
])
def test_move_refusals(status, body, exit_code, expected):
    with pytest.raises(ApiError) as info:
        make_api(Recorder((status, body, None))).move_reality_data(RD, OTHER_ITWIN)
    assert info.value.exit_code == exit_code
    assert expected in info.value.hint
    if status == 422:
        assert "iTwinId: The value 'x' is not valid." in info.value.message


def test_unsupported_data_center_is_not_available_exit_4():
    body = error("InvalidRealityModelingRequest", "Could not retrieve the bucket.",
                 details=[{"code": "InvalidProperty", "message": "iTwin data center location is not supported."}])
    with pytest.raises(ApiError) as info:
        make_api(Recorder((400, body, None))).bucket_container_url(ITWIN)
    assert info.value.exit_code == ExitCode.NOT_FOUND
    assert "not available" in info.value.message


def test_service_app_not_member_of_itwin_is_told_its_email():
    ims = httpx.MockTransport(lambda r: httpx.Response(200, json={"access_token": "svc-token-123", "expires_in": 3600}))
    tokens = ClientCredentials("https://ims.example.test", "svc-client", "svc-secret-value",
                               transport=ApiTransport(httpx.Client(transport=ims)))
    recorder = Recorder((404, error("iTwinNotFound", "Requested iTwin is not available."), None))
    with pytest.raises(ApiError) as info:
        make_api(recorder, tokens).bucket_container_url(ITWIN)
    assert info.value.exit_code == ExitCode.NOT_FOUND
    assert "svc-client@apps.imsoidc.bentley.com" in info.value.hint
    assert "svc-token-123" not in str(info.value) and "svc-secret-value" not in str(info.value)


def test_rate_limit_is_waited_out():
    sleeps: list = []
    recorder = Recorder((429, error("RateLimitExceeded", "slow"), {"Retry-After": "3"}), (200, BUCKET, None))
    assert make_api(recorder, sleeps=sleeps).bucket_container_url(ITWIN) == SAS_URL
    assert sleeps == [3.0]


def test_rate_limit_beyond_max_wait_fails_with_the_429():
    sleeps: list = []
    recorder = Recorder((429, error("RateLimitExceeded", "slow"), {"Retry-After": "60"}))
    api = PlatformApi(API, StaticToken(TOKEN), http=httpx.Client(transport=httpx.MockTransport(recorder)),
                      sleep=sleeps.append, clock=lambda: float(sum(sleeps)), max_wait_s=100)
    with pytest.raises(ApiError) as info:
        api.bucket_container_url(ITWIN)
    assert sleeps == [60.0] and info.value.status == 429


def test_expired_token_is_renewed_once_on_401():
    counter = iter(range(1, 100))
    ims = httpx.MockTransport(lambda r: httpx.Response(200, json={"access_token": f"tok-{next(counter)}-abcdef", "expires_in": 3600}))
    tokens = ClientCredentials("https://ims.example.test", "cid", "csecret-value",
                               transport=ApiTransport(httpx.Client(transport=ims)))
    auth_headers: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        auth_headers.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer tok-1-abcdef":
            return httpx.Response(401, json=error("InvalidToken", "expired"))
        return httpx.Response(200, json=BUCKET)

    platform = PlatformApi(API, tokens, http=httpx.Client(transport=httpx.MockTransport(api)))
    assert platform.bucket_container_url(ITWIN) == SAS_URL
    assert auth_headers == ["Bearer tok-1-abcdef", "Bearer tok-2-abcdef"]


def test_token_in_a_401_echo_never_reaches_the_message():
    body = error("InvalidToken", f"token {TOKEN} is expired")
    with pytest.raises(ApiError) as info:
        make_api(Recorder((401, body, None))).bucket_container_url(ITWIN)
    assert TOKEN not in str(info.value)
    assert info.value.exit_code == ExitCode.AUTH


@pytest.mark.parametrize("url", ["http://api.bentley.com", "http://192.168.1.10:8080"])
def test_plain_http_api_url_is_refused(url):
    with pytest.raises(UsageError) as info:
        PlatformApi(url, StaticToken(TOKEN))
    assert info.value.exit_code == ExitCode.USAGE


def test_loopback_http_api_url_is_allowed():
    api = PlatformApi("http://127.0.0.1:8080/", StaticToken(TOKEN))
    assert api.api_url == "http://127.0.0.1:8080"
    api.close()
