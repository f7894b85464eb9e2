"""The loopback listener of `auth login`: what it accepts from the browser (local sockets, no IMS)."""

from __future__ import annotations

import errno
import queue
import socket
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bucket_sync.errors import AuthError, UsageError
from bucket_sync.platform import login as login_module
from bucket_sync.platform.login import (
    DEFAULT_REDIRECT_URI,
    DEFAULT_TIMEOUT_S,
    LoginRequest,
    check_redirect_port,
    interactive_login,
)
from tests.support.ports import free_login_port


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def start_login(**request_changes):
    """Run interactive_login in a thread; return (authorize URL, result queue)."""
    urls: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()
    settings = {"ims_url": "http://127.0.0.1:9", "client_id": "app", "redirect_port": free_login_port(),
                "timeout_s": 10.0}
    request = LoginRequest(**{**settings, **request_changes})

    def run() -> None:
        try:
            results.put(interactive_login(request, show_url=urls.put, open_browser=False))
        except Exception as exc:  # noqa: BLE001 - handed to the test
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


def test_no_answer_within_the_timeout_names_the_redirect_uri_to_register():
    port = free_login_port()
    url, results = start_login(timeout_s=1, redirect_port=port)
    error = results.get(timeout=10)
    uri = f"http://localhost:{port}/signin-callback"
    assert isinstance(error, AuthError) and "no sign-in within 1 s" in error.message and uri in error.message
    # What IMS does on a redirect URI mismatch (its own error page, no callback) ends here: say the fix.
    assert f"register exactly {uri}" in error.hint and "--redirect-port" in error.hint and "--timeout" in error.hint


def test_the_default_wait_is_two_minutes_on_the_registered_default_uri():
    assert DEFAULT_TIMEOUT_S == 120
    assert LoginRequest(ims_url="https://ims.example", client_id="app").redirect_port == 3000
    assert DEFAULT_REDIRECT_URI == "http://localhost:3000/signin-callback"


def test_the_authorize_url_carries_the_fixed_redirect_uri():
    port = free_login_port()
    url, _ = start_login(redirect_port=port, timeout_s=1)
    assert parse_qs(urlsplit(url).query)["redirect_uri"] == [f"http://localhost:{port}/signin-callback"]


@pytest.mark.parametrize("port", [0, -1, 65536, "3000", True, None])
def test_a_port_that_no_registration_can_match_is_a_usage_error(port):
    with pytest.raises(UsageError) as info:
        check_redirect_port(port)
    if port == 0:
        assert "any free port" in info.value.message and DEFAULT_REDIRECT_URI in info.value.hint


def test_port_zero_is_refused_before_listening_or_printing_a_url():
    shown: list[str] = []
    with pytest.raises(UsageError):
        interactive_login(LoginRequest(ims_url="https://ims.example", client_id="app", redirect_port=0),
                          show_url=shown.append, open_browser=False)
    assert shown == []


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_localhost_is_answered_on_both_loopback_addresses(host):
    # Browsers resolve localhost to 127.0.0.1 or ::1 (Node, Chrome and Windows often prefer ::1).
    port = free_login_port()
    url, results = start_login(redirect_port=port)
    state = parse_qs(urlsplit(url).query)["state"][0]
    answer = httpx.get(f"http://{host}:{port}/signin-callback?error=access_denied&state={state}", timeout=10,
                       trust_env=False)
    assert answer.status_code == 400 and "access_denied" in answer.text
    error = results.get(timeout=10)
    assert isinstance(error, AuthError) and "access_denied" in error.message


def test_without_ipv6_loopback_it_listens_on_127_0_0_1_alone(monkeypatch):
    real_bind = login_module._LoopbackListener._bind

    def no_ipv6(self, host, port, family):
        if family == socket.AF_INET6:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        return real_bind(self, host, port, family)

    monkeypatch.setattr(login_module._LoopbackListener, "_bind", no_ipv6)
    port = free_login_port()
    url, results = start_login(redirect_port=port)
    state = parse_qs(urlsplit(url).query)["state"][0]
    answer = httpx.get(f"http://127.0.0.1:{port}/signin-callback?error=access_denied&state={state}", timeout=10,
                       trust_env=False)
    assert answer.status_code == 400
    assert "access_denied" in results.get(timeout=10).message


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_a_port_taken_on_ipv6_loopback_is_refused_like_one_taken_on_ipv4():
    # Else a browser going to [::1] would reach the other program (a dev server on localhost:3000, say).
    with socket.socket(socket.AF_INET6) as other:
        other.bind(("::1", 0))
        other.listen()
        port = other.getsockname()[1]
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            pytest.skip("that port is taken on 127.0.0.1 too")
        with pytest.raises(UsageError) as info:
            interactive_login(LoginRequest(ims_url="https://ims.example", client_id="app", redirect_port=port),
                              show_url=print, open_browser=False)
    assert f"cannot listen on localhost port {port}" in info.value.message
    assert "--redirect-port" in info.value.hint


def test_a_missing_client_id_is_a_usage_error_naming_where_to_set_it():
    with pytest.raises(UsageError) as info:
        interactive_login(LoginRequest(ims_url="https://ims.example", client_id=" "), show_url=print, open_browser=False)
    assert "ITWIN_LOGIN_CLIENT_ID" in info.value.hint and "--client-id" in info.value.hint
