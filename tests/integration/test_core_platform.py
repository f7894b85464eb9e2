"""README.md, "Credentials and sign-in" and "Exit codes": the platform side through the real command: credentials, API
errors and their exit codes, Retry-After, and usage errors before any network call."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def test_rate_limit_is_waited_out(cli, emulator, new_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    emulator.inject(r"/bucket$", 429, times=2, retry_after=1)
    started = time.monotonic()
    result = cli("upload", str(src), f"itwin://{new_itwin}/r", "--json")
    assert result.returncode == 0, result
    assert time.monotonic() - started >= 2.0, "two Retry-After: 1 answers must each be waited out"
    assert emulator.request_count(r"/bucket$", status=429) == 2
    assert emulator.request_count(r"/bucket$", status=200) == 1


def test_unknown_itwin_exits_4(cli, emulator, tmp_path, make_files):
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    result = cli("upload", str(src), "itwin://11111111-2222-3333-4444-555555555555/x")
    assert result.returncode == 4, result
    assert "iTwinNotFound" in result.stderr or "not available" in result.stderr, result


def test_unsupported_data_center_exits_4(cli, emulator, make_files, tmp_path):
    itwin = emulator.add_itwin(datacenter_supported=False)
    result = cli("ls", f"itwin://{itwin}/")
    assert result.returncode == 4, result
    assert "data center" in result.stderr, result


def test_bad_token_exits_3(cli, new_itwin):
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_ACCESS_TOKEN": "not-a-real-token-value",
                                                     "ITWIN_CLIENT_ID": None, "ITWIN_CLIENT_SECRET": None})
    assert result.returncode == 3, result
    assert "401" in result.stderr, result


def test_bad_client_secret_exits_3(cli, new_itwin):
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_CLIENT_SECRET": "wrong-secret-value"})
    assert result.returncode == 3, result
    assert "wrong-secret-value" not in result.stderr + result.stdout


def test_access_token_from_environment_is_used(cli, emulator, new_itwin, make_files, tmp_path):
    token = emulator.issue_access_token()
    src = make_files(tmp_path / "src", {"t.txt": "t"})
    result = cli("upload", str(src), f"itwin://{new_itwin}/t", "--json",
                 env={"ITWIN_ACCESS_TOKEN": token, "ITWIN_CLIENT_ID": None, "ITWIN_CLIENT_SECRET": None})
    assert result.returncode == 0, result
    assert emulator.request_count(r"/connect/token") == 0


def test_missing_credentials_exit_3_and_name_all_three(cli, emulator, new_itwin):
    before = len(emulator.requests)
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_CLIENT_ID": None, "ITWIN_CLIENT_SECRET": None})
    assert result.returncode == 3, result
    for needle in ("ITWIN_ACCESS_TOKEN", "ITWIN_CLIENT_ID", "auth login"):
        assert needle in result.stderr, result
    assert len(emulator.requests) == before


@pytest.mark.parametrize("remote", [
    "itwin://not-a-guid/x",
    "reality-data://1234/x",
    "https://acct.blob.core.windows.net/container",  # no SAS
    "http://example.com/c?sv=1&sig=abc",  # plain http to a non-loopback host
    "ftp://somewhere/x",
])
def test_bad_remote_is_a_usage_error_before_any_request(cli, emulator, make_files, tmp_path, remote):
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    before = len(emulator.requests)
    result = cli("upload", str(src), remote)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert len(emulator.requests) == before


def test_expired_sas_url_given_directly_exits_3_with_the_expiry(cli, azurite, tmp_path, make_files):
    azurite.create_container("expired-sas")
    url = azurite.container_sas_url("expired-sas", lifetime_s=-120)
    result = cli("ls", url)
    assert result.returncode == 3, result
    assert "expired at" in result.stderr and "UTC" in result.stderr, result


def test_sas_without_list_permission_names_it(cli, azurite):
    azurite.create_container("no-list")
    url = azurite.container_sas_url("no-list", permission="rw")
    result = cli("ls", url)
    assert result.returncode == 3, result
    assert "list (l)" in result.stderr, result


def test_url_redacts_the_signature(cli, new_itwin):
    result = cli("url", f"itwin://{new_itwin}/", "--json")
    assert result.returncode == 0, result
    event = result.events[0]
    assert "sig=REDACTED" in event["url"] and event["expires"].endswith("Z")



def test_missing_local_path_is_a_usage_error_even_without_credentials(cli, emulator, new_itwin, tmp_path):
    result = cli("upload", str(tmp_path / "no-such-folder"), f"itwin://{new_itwin}/x",
                 env={"ITWIN_CLIENT_ID": None, "ITWIN_CLIENT_SECRET": None})
    assert result.returncode == 2, result
    assert "no such file or folder" in result.stderr


def test_json_from_the_config_file_also_gives_a_json_error_summary(cli, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("json = true\n")
    result = cli("upload", str(tmp_path), "itwin://not-a-guid/x", "--config", str(config))
    assert result.returncode == 2, result
    assert result.summary is not None and result.summary["exit_code"] == 2 and "GUID" in result.summary["error"], result
