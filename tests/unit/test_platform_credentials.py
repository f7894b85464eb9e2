"""Which credentials are used, how a service app's token is obtained and renewed, and that a 401 is
retried once with a renewed token; no secret shows in any message."""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timezone
from urllib.parse import parse_qs

import httpx
import pytest

from bucket_sync.errors import ApiError, AuthError, ExitCode, NoCredentialsError, UsageError
from bucket_sync.platform.bearer import BearerAuth
from bucket_sync.platform.credentials import (
    ClientCredentials,
    StaticToken,
    TokenProvider,
    choose_credentials,
)
from bucket_sync.platform.http import ApiTransport
from bucket_sync.redact import REDACTED, redact
from tests.support.counting import returning
from tests.support.fake_clock import FakeClock

IMS = "https://ims.example.test"
SECRET = "s3cr3t+with/odd=chars"



class FakeIms:
    """IMS's token endpoint: hands out token-1, token-2, ... with the given lifetime."""

    def __init__(self, expires_in: float = 3600, *, fail_with: httpx.Response | None = None) -> None:
        self.expires_in = expires_in
        self.fail_with = fail_with
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            n = len(self.requests)
        self.entered.set()
        self.release.wait(5)
        if self.fail_with is not None:
            return self.fail_with
        return httpx.Response(200, json={"access_token": f"token-{n}-abcdef", "expires_in": self.expires_in,
                                         "token_type": "Bearer", "scope": "itwin-platform"})

    def transport(self, clock: FakeClock | None = None) -> ApiTransport:
        clock = clock or FakeClock()
        return ApiTransport(httpx.Client(transport=httpx.MockTransport(self)), sleep=clock.sleep, clock=clock)


def client_credentials(ims: FakeIms, clock: FakeClock) -> ClientCredentials:
    return ClientCredentials(IMS, "my-service-app-client-id", SECRET, transport=ims.transport(), clock=clock)


# -- client credentials ------------------------------------------------------------------------------------

def test_token_request_is_a_client_credentials_grant_with_basic_auth():
    ims, clock = FakeIms(), FakeClock()
    assert client_credentials(ims, clock).token() == "token-1-abcdef"
    request = ims.requests[0]
    assert request.method == "POST" and str(request.url) == f"{IMS}/connect/token"
    form = parse_qs(request.content.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["itwin-platform"]}
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert scheme == "Basic" and user == "my-service-app-client-id"
    # RFC 6749 2.3.1 form-encodes before Basic: IMS decodes it back to the real secret.
    assert password == "s3cr3t%2Bwith%2Fodd%3Dchars"


def test_token_is_cached_and_renewed_before_expiry():
    ims, clock = FakeIms(expires_in=3600), FakeClock()
    creds = client_credentials(ims, clock)
    assert creds.token() == "token-1-abcdef"
    clock.t += 3299  # more than 5 minutes left
    assert creds.token() == "token-1-abcdef"
    clock.t += 2  # less than 5 minutes left
    assert creds.token() == "token-2-abcdef"
    assert len(ims.requests) == 2


def test_short_lived_tokens_renew_a_tenth_of_their_lifetime_early():
    ims, clock = FakeIms(expires_in=20), FakeClock()
    creds = client_credentials(ims, clock)
    start = clock.t
    creds.token()
    assert creds.expires_at == datetime.fromtimestamp(start + 20, timezone.utc)
    clock.t = start + 17.9
    assert creds.token() == "token-1-abcdef"
    clock.t = start + 18.1
    assert creds.token() == "token-2-abcdef"


def test_concurrent_callers_share_one_token_request():
    ims = FakeIms()
    ims.release.clear()  # hold the first request open while the other threads ask
    creds = ClientCredentials(IMS, "cid", SECRET, transport=ims.transport())
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(creds.token())) for _ in range(8)]
    for t in threads:
        t.start()
    assert ims.entered.wait(5)
    ims.release.set()
    for t in threads:
        t.join()
    assert len(ims.requests) == 1
    assert set(results) == {"token-1-abcdef"}


def test_invalidate_forces_a_new_token():
    ims, clock = FakeIms(), FakeClock()
    creds = client_credentials(ims, clock)
    first = creds.token()
    creds.invalidate("some-other-token")
    assert creds.token() == first
    creds.invalidate(first)
    assert creds.token() == "token-2-abcdef"


def test_ims_refusal_is_an_auth_error_without_the_secret():
    refusal = httpx.Response(400, json={"error": "invalid_client", "error_description": f"bad secret {SECRET}"})
    creds = client_credentials(FakeIms(fail_with=refusal), FakeClock())
    with pytest.raises(AuthError) as info:
        creds.token()
    assert info.value.exit_code == ExitCode.AUTH
    assert "invalid_client" in str(info.value)
    assert "ITWIN_CLIENT_SECRET" in info.value.hint
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("status", [400, 401])
def test_an_unknown_client_at_ims_says_to_register_the_app_and_check_its_type(status):
    # OAuth's error string, with the docs' UnknownClient detail beside it.
    refusal = httpx.Response(status, json={
        "error": "invalid_client", "error_description": "Access denied due to invalid client.",
        "details": [{"code": "UnknownClient", "message": "Client was not registered on https://developer.bentley.com."}]})
    with pytest.raises(AuthError) as info:
        client_credentials(FakeIms(fail_with=refusal), FakeClock()).token()
    assert info.value.exit_code == ExitCode.AUTH
    assert "Client was not registered" in info.value.message
    hint = info.value.hint
    assert "not registered" in hint and "developer portal" in hint and "itwin-platform scope" in hint
    assert "Service app" in hint and "Native/Desktop app for `bucket-sync auth login`" in hint


def test_ims_answer_without_a_token_is_a_clear_error():
    creds = client_credentials(FakeIms(fail_with=httpx.Response(200, text="<html>login</html>")), FakeClock())
    with pytest.raises(ApiError, match="without an access token"):
        creds.token()


def test_a_failed_early_renewal_keeps_the_still_valid_token():
    ims, clock = FakeIms(expires_in=3600), FakeClock()
    creds = client_credentials(ims, clock)
    creds.token()
    clock.t += 3400
    ims.fail_with = httpx.Response(400, json={"error": "invalid_client"})
    assert creds.token() == "token-1-abcdef"
    clock.t += 300  # now really expired
    with pytest.raises(AuthError):
        creds.token()


def test_plain_http_ims_url_is_refused():
    with pytest.raises(UsageError, match="--ims-url"):
        ClientCredentials("http://ims.bentley.com", "cid", SECRET)


def test_tokens_and_secrets_are_redacted_everywhere():
    ims, clock = FakeIms(), FakeClock()
    token = client_credentials(ims, clock).token()
    assert redact(f"token {token} secret {SECRET}") == f"token {REDACTED} secret {REDACTED}"


def test_describe_and_app_email_for_auth_status():
    creds = ClientCredentials(IMS, "abcdef12-3456-7890-abcd-ef1234567890", SECRET)
    assert creds.describe().startswith("client credentials (client id abcdef12…")
    assert creds.app_email == "abcdef12-3456-7890-abcd-ef1234567890@apps.imsoidc.bentley.com"
    assert creds.expires_at is None  # nothing fetched yet


def test_static_token_reads_jwt_expiry_and_cannot_renew():
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1748604000}).encode()).decode().rstrip("=")
    token = f"eyJhbGciOiJub25lIn0.{claims}.signature"
    static = StaticToken(token)
    assert static.expires_at == datetime.fromtimestamp(1748604000, timezone.utc)
    static.invalidate(token)
    assert static.token() == token
    assert "ITWIN_ACCESS_TOKEN" in static.describe()
    assert StaticToken("opaque-token-value").expires_at is None
    assert redact(token) == REDACTED


# -- precedence ---------------------------------------------------------------------------------------------

class FakeLogin(TokenProvider):
    def token(self) -> str:
        return "login-token"

    def describe(self) -> str:
        return "cached sign-in"


def test_access_token_wins_over_everything():
    env = {"ITWIN_ACCESS_TOKEN": "env-token-value", "ITWIN_CLIENT_ID": "cid", "ITWIN_CLIENT_SECRET": SECRET}
    loader = returning(FakeLogin())
    provider = choose_credentials(env, {"client_id": "x", "client_secret": "y"}, IMS, cached_login_loader=loader)
    assert isinstance(provider, StaticToken) and provider.token() == "env-token-value"
    assert loader.calls == []


def test_client_credentials_from_env_win_over_config_and_cached_login():
    env = {"ITWIN_CLIENT_ID": "env-id", "ITWIN_CLIENT_SECRET": SECRET}
    loader = returning(FakeLogin())
    provider = choose_credentials(env, {"client_id": "cfg-id", "client_secret": "cfg-secret"}, IMS,
                                  cached_login_loader=loader)
    assert isinstance(provider, ClientCredentials) and provider.client_id == "env-id"
    assert "ITWIN_CLIENT_ID" in provider.describe()
    assert loader.calls == []


def test_client_credentials_from_the_config_file():
    provider = choose_credentials({}, {"client_id": "cfg-id", "client-secret": "cfg-secret-value"}, IMS)
    assert isinstance(provider, ClientCredentials) and provider.client_id == "cfg-id"
    assert "[auth] in the config file" in provider.describe()
    assert redact("cfg-secret-value") == REDACTED


def test_environment_key_overrides_the_config_key():
    provider = choose_credentials({"ITWIN_CLIENT_ID": "env-id"}, {"client_id": "cfg-id", "client_secret": "cfg-secret"}, IMS)
    assert provider.client_id == "env-id"
    assert "ITWIN_CLIENT_ID" in provider.describe() and "config file" in provider.describe()


def test_cached_login_is_the_last_resort():
    login = FakeLogin()
    assert choose_credentials({"ITWIN_ACCESS_TOKEN": "  "}, None, IMS, cached_login_loader=lambda: login) is login


def test_half_a_client_pair_is_named():
    with pytest.raises(NoCredentialsError) as info:
        choose_credentials({"ITWIN_CLIENT_ID": "cid"}, None, IMS, cached_login_loader=lambda: FakeLogin())
    assert "no client secret" in info.value.message
    assert info.value.exit_code == ExitCode.AUTH


def test_no_credentials_names_all_three_sources():
    with pytest.raises(NoCredentialsError) as info:
        choose_credentials({}, {}, IMS, cached_login_loader=lambda: None)
    message = str(info.value)
    for name in ("ITWIN_ACCESS_TOKEN", "ITWIN_CLIENT_ID", "ITWIN_CLIENT_SECRET", "[auth]", "bucket-sync auth login"):
        assert name in message
    assert info.value.exit_code == ExitCode.AUTH


def test_choosing_sends_nothing():
    ims = FakeIms()
    choose_credentials({"ITWIN_CLIENT_ID": "cid", "ITWIN_CLIENT_SECRET": SECRET}, None, IMS, transport=ims.transport())
    assert ims.requests == []


# -- 401: renew and resend once -------------------------------------------------------------------------------

def api_client(statuses: list[int], seen: list[str]) -> httpx.Client:
    """Records the Authorization header of each request (httpx resends the same Request object)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(statuses.pop(0) if len(statuses) > 1 else statuses[0])

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_401_renews_the_token_and_resends_once():
    ims, clock = FakeIms(), FakeClock()
    creds = client_credentials(ims, clock)
    seen: list[str] = []
    resp = api_client([401, 200], seen).get("https://api.example.test/x", auth=BearerAuth(creds))
    assert resp.status_code == 200
    assert seen == ["Bearer token-1-abcdef", "Bearer token-2-abcdef"]


def test_a_second_401_is_returned_not_retried_again():
    creds = client_credentials(FakeIms(), FakeClock())
    seen: list[str] = []
    resp = api_client([401], seen).get("https://api.example.test/x", auth=BearerAuth(creds))
    assert resp.status_code == 401 and len(seen) == 2


def test_a_static_token_is_not_resent_after_401():
    seen: list[str] = []
    resp = api_client([401], seen).get("https://api.example.test/x", auth=BearerAuth(StaticToken("static-token")))
    assert resp.status_code == 401 and len(seen) == 1


def test_renewal_margin_covers_whole_second_expiry_for_short_tokens():
    from bucket_sync.platform.credentials import renew_margin

    assert renew_margin(3600) == 300  # long-lived: five minutes early, as Bentley's clients do
    assert renew_margin(600) == 60
    # An 8 s token whose `exp` was truncated to the second can die ~1 s early: renew 2 s ahead, not 0.8 s.
    assert renew_margin(8) == 2
    assert renew_margin(2) == 1  # never more than half the life, or every call would renew
