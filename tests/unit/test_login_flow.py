"""The loopback listener of `auth login`: what it accepts from the browser (local sockets, no IMS)."""

from __future__ import annotations

import queue
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bucket_sync.errors import AuthError, UsageError
from bucket_sync.platform.login import LoginRequest, interactive_login


def start_login(**request_changes):
    """Run interactive_login in a thread; return (authorize URL, result queue)."""
    urls: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()
    settings = {"ims_url": "http://127.0.0.1:9", "client_id": "app", "redirect_port": 0, "timeout_s": 10.0}
    request = LoginRequest(**{**settings, **request_changes})

    def run() -> None:
        try:
            results.put(interactive_login(request, show_url=urls.put, open_browser=False))
        except Exception as exc:  # handed to the test
            results.put(exc)

    threading.Thread(target=run, daemon=True).start()
    return urls.get(timeout=10), results


def callback_url(authorize: str, **params: str) -> str:
    redirect = parse_qs(urlsplit(authorize).query)["redirect_uri"][0]
    return redirect + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_an_answer_with_another_state_is_refused():
    url, results = start_login()
    answer = httpx.get(callback_url(url, code="stolen-code", state="forged"), timeout=10, trust_env=False)
    assert answer.status_code == 400
    error = results.get(timeout=10)
    assert isinstance(error, AuthError) and "state mismatch" in error.message


def test_other_paths_get_404_and_the_listener_keeps_waiting():
    url, results = start_login()
    assert httpx.get(callback_url(url).replace("/signin-callback", "/favicon.ico"), timeout=10, trust_env=False).status_code == 404
    assert results.empty()
    state = parse_qs(urlsplit(url).query)["state"][0]
    denied = httpx.get(callback_url(url, error="access_denied", state=state), timeout=10, trust_env=False)
    assert denied.status_code == 400
    error = results.get(timeout=10)
    assert isinstance(error, AuthError) and "access_denied" in error.message


def test_no_answer_within_the_timeout_is_an_auth_error():
    url, results = start_login(timeout_s=1)
    error = results.get(timeout=10)
    assert isinstance(error, AuthError) and "no sign-in within 1 s" in error.message


def test_a_missing_client_id_is_a_usage_error_naming_where_to_set_it():
    with pytest.raises(UsageError) as info:
        interactive_login(LoginRequest(ims_url="https://ims.example", client_id=" "), show_url=print, open_browser=False)
    assert "ITWIN_LOGIN_CLIENT_ID" in info.value.hint and "--client-id" in info.value.hint
