"""The saved sign-in file and the PKCE / scope helpers of `auth login` (no network)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest

from bucket_sync.errors import AuthError
from bucket_sync.platform.ims import TokenGrant
from bucket_sync.platform.login import Pkce, authorize_url, login_scope
from bucket_sync.platform.login_store import SavedLogin, delete_login, read_login, save_login


def make_login() -> SavedLogin:
    base = SavedLogin("native-app", "https://ims.example", "refresh-token-1", "itwin-platform offline_access",
                      account="someone@example.com")
    return base.with_grant(TokenGrant("access-token-1", 3600, "refresh-token-1"), now=1000.0)


def test_saved_login_is_private_and_round_trips(tmp_path):
    path = tmp_path / "state" / "bucket-sync" / "login.json"
    login = make_login()
    save_login(login, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_login(path) == login
    assert [p.name for p in path.parent.iterdir()] == ["login.json"]


def test_saving_again_replaces_the_file_whole(tmp_path):
    path = tmp_path / "login.json"
    save_login(make_login(), path)
    rotated = make_login().with_grant(TokenGrant("access-token-2", 60, "refresh-token-2"), now=2000.0)
    save_login(rotated, path)
    assert json.loads(path.read_text())["refresh_token"] == "refresh-token-2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_grant_without_a_new_refresh_token_keeps_the_old_one():
    updated = make_login().with_grant(TokenGrant("access-token-2", 60, None), now=5.0)
    assert updated.refresh_token == "refresh-token-1" and updated.access_expires == 65.0


def test_saved_access_token_is_reused_only_while_half_its_life_is_left():
    login = make_login()  # 3600 s from t=1000
    assert login.reusable_access(1000.0 + 1700).access_token == "access-token-1"
    assert login.reusable_access(1000.0 + 1900) is None


def test_missing_file_is_no_login_and_damaged_file_is_an_auth_error(tmp_path):
    path = tmp_path / "login.json"
    assert read_login(path) is None
    assert delete_login(path) is False
    path.write_text("{not json")
    with pytest.raises(AuthError, match="damaged") as info:
        read_login(path)
    assert info.value.exit_code == 3
    assert delete_login(path) is True and not path.exists()


def test_pkce_challenge_is_the_s256_of_the_verifier():
    pkce = Pkce.new()
    assert 43 <= len(pkce.verifier) <= 128
    digest = base64.urlsafe_b64encode(hashlib.sha256(pkce.verifier.encode()).digest()).rstrip(b"=").decode()
    assert pkce.challenge == digest
    assert Pkce.new().verifier != pkce.verifier


def test_scope_always_asks_for_a_refresh_token_and_the_platform():
    assert login_scope(None) == "itwin-platform offline_access"
    assert login_scope("openid email") == "itwin-platform openid email offline_access"


def test_authorize_url_carries_the_challenge_never_the_verifier():
    pkce = Pkce.new()
    url = authorize_url("https://ims.example/", "app", "http://localhost:3000/signin-callback", "itwin-platform", pkce, "st")
    assert url.startswith("https://ims.example/connect/authorize?")
    assert pkce.challenge in url and pkce.verifier not in url and "code_challenge_method=S256" in url
