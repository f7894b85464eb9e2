"""`auth login` end to end against the emulator's IMS, without a browser: the test plays the browser.

It starts the real `bucket-sync auth login --no-browser --redirect-port PORT`, reads the authorize URL from
stderr, GETs it (the emulator answers 302 to the loopback redirect) and follows the redirect to the CLI's
loopback listener; the CLI then exchanges the code, and the emulator checks the PKCE verifier.

The emulator's IMS, like IMS, redirects only to a redirect URI registered for the app, exactly: each test
picks a free port and registers `http://localhost:PORT/signin-callback` for its Native app first.
"""

from __future__ import annotations

import json
import queue
import socket
import stat
import threading
import time
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.cli import find_leaks
from tests.support.emulator_events import expire_tokens_once_running
from tests.support.ports import free_login_port, login_redirect_uri

NATIVE_CLIENT = "native-bucket-sync-test"
NO_CLIENT_CREDENTIALS = {"ITWIN_CLIENT_ID": None, "ITWIN_CLIENT_SECRET": None}


@dataclass
class LoginRun:
    returncode: int
    stdout: str
    stderr: str
    authorize_url: str
    callback_status: int

    @property
    def json(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def login_path(cli) -> Path:
    return Path(cli.env_for()["XDG_STATE_HOME"]) / "bucket-sync" / "login.json"


def registered_port(emulator, client_id: str = NATIVE_CLIENT) -> int:
    """A free port whose redirect URI is registered for ``client_id`` (beside the default one)."""
    port = free_login_port()
    emulator.register_client(client_id)
    emulator.register_redirect_uri(client_id, login_redirect_uri(port))
    return port


def run_login(cli, emulator, *extra: str, env=None, callback=None, timeout: float = 30,
              port_args: tuple[str, ...] | None = None) -> LoginRun:
    """Run `auth login` and act as the browser: follow IMS's redirect to the CLI (or call ``callback``).

    Without ``port_args``, on a free port registered for NATIVE_CLIENT."""
    if port_args is None:
        port_args = ("--redirect-port", str(registered_port(emulator)))
    argv = [str(cli.executable), "auth", "login", "--no-browser", *port_args, "--json", *map(str, extra)]
    full_env = cli.env_for({**NO_CLIENT_CREDENTIALS, "ITWIN_LOGIN_CLIENT_ID": NATIVE_CLIENT, **(env or {})})
    proc = subprocess.Popen(argv, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(cli.home.parent))
    # Each stream is read whole by its own thread: reading lines here and then communicate() would lose
    # what the line reader had buffered (communicate reads the raw pipes).
    err_lines: list[str] = []
    out_chunks: list[str] = []
    urls: queue.Queue = queue.Queue()

    def read_stderr() -> None:
        for line in proc.stderr:
            err_lines.append(line)
            if line.strip().startswith("http"):
                urls.put(line.strip())
        urls.put(None)

    readers = [threading.Thread(target=read_stderr, daemon=True),
               threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        url = urls.get(timeout=timeout)
        assert url, f"no authorize URL on stderr: {''.join(err_lines)!r}"
        if callback is None:
            with httpx.Client(timeout=10) as browser:
                answer = browser.get(url)
                assert answer.status_code == 302, answer.text
                landed = browser.get(answer.headers["location"])
                status = landed.status_code
        else:
            status = callback(url)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=10)
    out, stderr = "".join(out_chunks), "".join(err_lines)
    leaks = find_leaks({"stdout": out, "stderr": stderr}, emulator.issued_secrets())
    assert not leaks, leaks
    return LoginRun(proc.returncode, out, stderr, url, status)


@pytest.fixture
def signed_in(cli, emulator):
    run = run_login(cli, emulator)
    assert run.returncode == 0, run.stderr
    return run


def test_login_saves_a_refresh_token_in_a_private_file_and_later_commands_use_it(cli, emulator, listing_itwin, signed_in):
    query = parse_qs(urlsplit(signed_in.authorize_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert set(query["scope"][0].split()) == {"itwin-platform", "offline_access"}
    assert query["client_id"] == [NATIVE_CLIENT]
    redirect = urlsplit(query["redirect_uri"][0])
    assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "localhost", "/signin-callback")
    assert signed_in.callback_status == 200
    assert signed_in.json["event"] == "login" and signed_in.json["account"] == "user@example.com"
    # The emulator only issues tokens when the verifier matches the challenge (PKCE checked there).
    assert emulator.request_count(r"^/connect/token$", status=200) == 1

    path = login_path(cli)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] in emulator.issued_secrets()
    assert not list(path.parent.glob(".login-*")), "temporary files left behind"

    result = cli("ls", f"itwin://{listing_itwin}/", "--json", env=NO_CLIENT_CREDENTIALS)
    assert result.returncode == 0, result
    assert {k: v for k, v in result.summary.items() if k != "time"} == {"event": "summary", "op": "ls", "count": 0,
                                                                         "exit_code": 0}


def test_an_expired_access_token_is_renewed_with_the_rotated_refresh_token(cli, emulator, listing_itwin, signed_in):
    path = login_path(cli)
    first_refresh = json.loads(path.read_text())["refresh_token"]
    emulator.expire_tokens()  # every access token issued so far is now refused with 401
    tokens_before = emulator.request_count(r"^/connect/token$")

    result = cli("ls", f"itwin://{listing_itwin}/", env=NO_CLIENT_CREDENTIALS)
    assert result.returncode == 0, result
    assert emulator.request_count(r"/bucket$", status=401) == 1
    assert emulator.request_count(r"^/connect/token$") == tokens_before + 1
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] != first_refresh, "the rotated refresh token was not saved"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # The old refresh token is spent (rotation): only the saved new one keeps the sign-in alive.
    emulator.expire_tokens()
    again = cli("ls", f"itwin://{listing_itwin}/", env=NO_CLIENT_CREDENTIALS)
    assert again.returncode == 0, again


def test_a_revoked_sign_in_asks_to_sign_in_again(cli, emulator, new_itwin, signed_in):
    emulator.expire_tokens(refresh=True)
    result = cli("ls", f"itwin://{new_itwin}/", env=NO_CLIENT_CREDENTIALS)
    assert result.returncode == 3, result
    assert "auth login" in result.stderr


def test_status_names_the_active_source_its_account_and_expiry(cli, emulator, signed_in):
    cached = cli("auth", "status", "--json", env=NO_CLIENT_CREDENTIALS)
    assert cached.returncode == 0, cached
    obj = cached.json_lines[-1]
    assert obj["source"] == "cached-login" and obj["account"] == "user@example.com"
    assert obj["expires"].endswith("Z") and obj["saved_login"]["account"] == "user@example.com"

    service = cli("auth", "status", "--json")  # client credentials win over the saved sign-in
    obj = service.json_lines[-1]
    assert service.returncode == 0 and obj["source"] == "client-credentials", service
    assert obj["account"] == f"{emulator.client_id}@apps.imsoidc.bentley.com"
    human = cli("auth", "status")
    assert "client credentials" in human.stdout and "saved sign-in: user@example.com (not in use" in human.stdout

    token = emulator.issue_access_token()
    env_token = cli("auth", "status", "--json", env={"ITWIN_ACCESS_TOKEN": token})
    assert env_token.json_lines[-1]["source"] == "env-token", env_token


def test_logout_deletes_the_sign_in_and_commands_then_name_every_credential_source(cli, emulator, new_itwin, signed_in):
    result = cli("auth", "logout")
    assert result.returncode == 0 and "signed out" in result.stdout, result
    assert not login_path(cli).exists()
    after = cli("ls", f"itwin://{new_itwin}/", env=NO_CLIENT_CREDENTIALS)
    assert after.returncode == 3, after
    for name in ("ITWIN_ACCESS_TOKEN", "ITWIN_CLIENT_ID", "auth login"):
        assert name in after.stderr
    status = cli("auth", "status", "--json", env=NO_CLIENT_CREDENTIALS)
    assert status.returncode == 3 and status.json_lines[-1]["source"] == "none", status
    again = cli("auth", "logout")
    assert again.returncode == 0 and "not signed in" in again.stdout


def test_a_refused_sign_in_is_reported_and_nothing_is_saved(cli, emulator):
    def deny(url: str) -> int:
        # The user declines at IMS: the browser comes back with error=access_denied and the request's state.
        query = parse_qs(urlsplit(url).query)
        back = f"{query['redirect_uri'][0]}?error=access_denied&error_description=User+denied&state={query['state'][0]}"
        return httpx.get(back, timeout=10).status_code

    run = run_login(cli, emulator, callback=deny)
    assert run.returncode == 3, run.stderr
    assert "access_denied" in run.stderr and run.callback_status == 400
    assert run.json["exit_code"] == 3
    assert not login_path(cli).exists()


def test_login_without_a_client_id_is_a_usage_error(cli):
    result = cli("auth", "login", "--no-browser", "--redirect-port", str(free_login_port()), env=NO_CLIENT_CREDENTIALS)
    assert result.returncode == 2, result
    assert "--client-id" in result.stderr and "ITWIN_LOGIN_CLIENT_ID" in result.stderr


def test_a_signed_in_long_run_survives_its_access_token_being_revoked(cli, emulator, new_itwin, signed_in, make_files,
                                                                      tmp_path):
    before = json.loads(login_path(cli).read_text())["refresh_token"]
    emulator.configure(sas_lifetime=3)  # the run keeps going back to the API for a fresh SAS
    src = make_files(tmp_path / "src", {f"f{i:02}.bin": 32 * 1024 for i in range(16)})
    expirer = expire_tokens_once_running(emulator)
    result = cli("upload", src, f"itwin://{new_itwin}/run", "--concurrency", "2", "--bwlimit", "96K", "--json",
                 env=NO_CLIENT_CREDENTIALS)
    expirer.join(timeout=5)
    assert result.returncode == 0, result
    assert result.summary["uploaded"] == 16
    assert emulator.request_count(r"/bucket$", status=401) >= 1, "the run never met the revoked token"
    # Renewed through the saved refresh token (the only credential in this environment), rotation saved.
    assert json.loads(login_path(cli).read_text())["refresh_token"] != before
    assert emulator.request_count(r"^/connect/token$", status=200) >= 2


def test_client_id_and_redirect_port_come_from_the_config_file(cli, emulator, tmp_path):
    port = registered_port(emulator, "from-config-app")
    config = tmp_path / "config.toml"
    config.write_text(f'[auth]\nlogin-client-id = "from-config-app"\nredirect-port = {port}\n')
    run = run_login(cli, emulator, "--config", config, env={"ITWIN_LOGIN_CLIENT_ID": None}, port_args=())
    assert run.returncode == 0, run.stderr
    query = parse_qs(urlsplit(run.authorize_url).query)
    assert query["client_id"] == ["from-config-app"]
    assert query["redirect_uri"] == [f"http://localhost:{port}/signin-callback"]
    assert json.loads(login_path(cli).read_text())["client_id"] == "from-config-app"


def test_while_waiting_it_says_which_redirect_uri_to_register(signed_in):
    uri = parse_qs(urlsplit(signed_in.authorize_url).query)["redirect_uri"][0]
    assert f"Waiting up to 120 s for the browser to come back to {uri}" in signed_in.stderr
    assert (f"If IMS shows an error about redirect_uri instead of its sign-in page: register exactly this redirect "
            f"URI for your Native app, {uri}, or pass --redirect-port to match yours.") in signed_in.stderr


def test_a_redirect_uri_ims_does_not_know_ends_in_a_timeout_that_names_the_fix(cli, emulator):
    # The app has only the default URI registered; the user asked for another port.
    emulator.register_client(NATIVE_CLIENT)
    port = free_login_port()
    pages = []

    def browser(url: str) -> int:
        page = httpx.get(url, timeout=10)  # IMS's own error page: it never sends the browser back
        pages.append(page)
        return page.status_code

    started = time.monotonic()
    run = run_login(cli, emulator, "--timeout", "2", callback=browser, port_args=("--redirect-port", str(port)))
    assert run.callback_status == 400 and "Location" not in pages[0].headers and "redirect_uri" in pages[0].text
    assert run.returncode == 3, run.stderr
    assert time.monotonic() - started < 20
    uri = login_redirect_uri(port)
    assert "no sign-in within 2 s" in run.stderr
    assert f"register exactly {uri} for your Native app" in run.stderr and "--redirect-port" in run.stderr
    assert run.json["exit_code"] == 3 and "Traceback" not in run.stderr
    assert not login_path(cli).exists()
    assert emulator.request_count(r"^/connect/token$") == 0


def test_the_default_redirect_uri_is_documented_in_help(cli):
    result = cli("auth", "login", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "redirect URI http://localhost:3000/signin-callback" in text
    assert "--redirect-port" in text and "default: 120" in text


@pytest.mark.parametrize("where", [("--redirect-port", "0"), ()])
def test_port_zero_is_a_usage_error_before_anything_is_sent(cli, emulator, tmp_path, where):
    args = list(where)
    if not where:  # the same from the config file
        config = tmp_path / "config.toml"
        config.write_text('[auth]\nredirect-port = 0\n')
        args = ["--config", str(config)]
    result = cli("auth", "login", "--no-browser", *args, env={**NO_CLIENT_CREDENTIALS, "ITWIN_LOGIN_CLIENT_ID": NATIVE_CLIENT})
    assert result.returncode == 2, result
    assert "0 (any free port) cannot be used" in result.stderr
    assert "http://localhost:3000/signin-callback" in result.stderr
    assert "connect/authorize" not in result.stderr and emulator.requests == []


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_a_browser_that_resolves_localhost_to_ipv6_completes_the_sign_in(cli, emulator):
    def browser_on_ipv6(url: str) -> int:
        with httpx.Client(timeout=10) as browser:
            answer = browser.get(url)
            assert answer.status_code == 302, answer.text
            back = answer.headers["location"].replace("http://localhost:", "http://[::1]:", 1)
            return browser.get(back).status_code

    run = run_login(cli, emulator, callback=browser_on_ipv6)
    assert run.returncode == 0 and run.callback_status == 200, run.stderr
    assert json.loads(login_path(cli).read_text())["client_id"] == NATIVE_CLIENT


def test_a_sign_in_whose_app_was_deleted_says_to_register_the_app(cli, emulator, new_itwin, signed_in):
    emulator.expire_tokens()  # the saved access token is refused: the run must use the refresh token
    emulator.reset()  # forgets the Native app registration: IMS no longer knows the client id
    result = cli("url", f"itwin://{new_itwin}/", env=NO_CLIENT_CREDENTIALS)
    assert result.returncode == 3, result
    assert "Client was not registered" in result.stderr
    assert "not registered" in result.stderr and "Native/Desktop app for `bucket-sync auth login`" in result.stderr
