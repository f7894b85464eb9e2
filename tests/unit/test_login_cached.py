"""CachedLogin: renewal from the saved sign-in, shared safely by several processes (no network)."""

from __future__ import annotations

import json

import httpx
import pytest

from bucket_sync.errors import AuthError
from bucket_sync.platform.login_store import CachedLogin, SavedLogin, save_login


class FakeIms:
    """IMS's token endpoint with rotating refresh tokens: a used refresh token is dead."""

    def __init__(self, first_refresh: str) -> None:
        self.live = {first_refresh}
        self.calls: list[dict] = []
        self.counter = 0

    def request(self, method: str, url: str, *, what: str, data: dict, idempotent: bool = True, **_) -> httpx.Response:
        assert url == "https://ims.example/connect/token" and not idempotent
        self.calls.append(data)
        if data["refresh_token"] not in self.live:
            # ApiTransport raises for non-2xx answers; request_token turns this into AuthError.
            raise self._refusal(what)
        self.live.discard(data["refresh_token"])
        self.counter += 1
        new = f"refresh-{self.counter}"
        self.live.add(new)
        body = {"access_token": f"access-{self.counter}", "expires_in": 3600, "refresh_token": new}
        return httpx.Response(200, json=body)

    def _refusal(self, what: str) -> Exception:
        from bucket_sync.platform.api_errors import error_from_response

        resp = httpx.Response(400, json={"error": "invalid_grant", "error_description": "Invalid refresh token."},
                              request=httpx.Request("POST", "https://ims.example/connect/token"))
        return error_from_response(resp, what=what)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "login.json"
    save_login(SavedLogin("native-app", "https://ims.example", "refresh-0", "itwin-platform offline_access"), path)
    return path


def provider(path, ims, clock):
    login = SavedLogin(**{k: v for k, v in json.loads(path.read_text()).items() if k != "version"})
    return CachedLogin(login, path=path, transport=ims, clock=clock)


def test_renewal_saves_the_rotated_refresh_token(saved):
    ims = FakeIms("refresh-0")
    first = provider(saved, ims, clock=lambda: 1000.0)
    assert first.token() == "access-1"
    assert ims.calls[0] == {"grant_type": "refresh_token", "refresh_token": "refresh-0", "client_id": "native-app"}
    assert json.loads(saved.read_text())["refresh_token"] == "refresh-1"


def test_a_second_process_reuses_the_fresh_token_instead_of_spending_a_dead_refresh_token(saved):
    ims = FakeIms("refresh-0")
    one = provider(saved, ims, clock=lambda: 1000.0)
    two = provider(saved, ims, clock=lambda: 1010.0)  # loaded before `one` renewed: holds refresh-0
    assert one.token() == "access-1"
    assert two.token() == "access-1"
    assert len(ims.calls) == 1


def test_a_refused_access_token_is_never_taken_from_the_file_again(saved):
    ims = FakeIms("refresh-0")
    p = provider(saved, ims, clock=lambda: 1000.0)
    token = p.token()
    p.invalidate(token)  # the API answered 401
    assert p.token() == "access-2"
    assert json.loads(saved.read_text())["refresh_token"] == "refresh-2"


def test_a_revoked_sign_in_is_an_auth_error_that_says_to_sign_in_again(saved):
    ims = FakeIms("someone-else")
    with pytest.raises(AuthError) as info:
        provider(saved, ims, clock=lambda: 1000.0).token()
    assert info.value.exit_code == 3 and "auth login" in info.value.hint
