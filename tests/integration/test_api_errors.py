"""Every documented answer of the platform API and IMS, through the real command: message and exit code.

Plus the long-run case: an access token that dies mid-run is renewed and the run finishes.
"""

from __future__ import annotations

import time
import uuid

from tests.support.emulator_events import expire_tokens_once_running


def test_unknown_itwin_is_not_found(cli, emulator):
    missing = str(uuid.uuid4())
    result = cli("ls", f"itwin://{missing}/")
    assert result.returncode == 4, result
    assert f"could not get the Reality Modeling bucket of iTwin {missing}" in result.stderr
    assert "iTwinNotFound" in result.stderr
    # A service app must be invited to the iTwin: the hint says under which address.
    assert f"{emulator.client_id}@apps.imsoidc.bentley.com" in result.stderr


def test_unsupported_data_center_is_not_available(cli, emulator, new_itwin):
    emulator.configure_itwin(new_itwin, datacenter_supported=False)
    result = cli("upload", __file__, f"itwin://{new_itwin}/x")
    assert result.returncode == 4, result
    assert "data center location is not supported" in result.stderr


def test_refused_access_token_is_an_auth_error(cli, emulator, new_itwin):
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_ACCESS_TOKEN": "eyJ-not-a-real-token"})
    assert result.returncode == 3, result
    assert "HTTP 401" in result.stderr and "ITWIN_ACCESS_TOKEN" in result.stderr


def test_wrong_client_secret_is_an_auth_error(cli, emulator, new_itwin):
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_CLIENT_SECRET": "wrong-secret-value"})
    assert result.returncode == 3, result
    assert "invalid_client" in result.stderr and "ITWIN_CLIENT_ID" in result.stderr


def test_half_a_client_credential_pair_is_named(cli, emulator, new_itwin):
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_CLIENT_SECRET": None})
    assert result.returncode == 3, result
    assert "no client secret" in result.stderr


def test_sas_without_list_permission_names_it(cli, emulator, new_itwin, bucket_container):
    bucket_container(new_itwin).upload_blob("a.txt", b"a")
    emulator.configure_itwin(new_itwin, permissions="rw")  # as in the documented bucket example
    result = cli("ls", f"itwin://{new_itwin}/")
    assert result.returncode == 3, result
    assert "list (l)" in result.stderr


def test_wrong_api_url_names_it(cli, emulator, new_itwin):
    result = cli("ls", f"itwin://{new_itwin}/", "--api-url", emulator.url + "/not-the-api")
    assert result.returncode == 4, result
    assert "ResourceNotFound" in result.stderr and "--api-url" in result.stderr


def test_an_error_page_instead_of_json_still_gives_a_clear_error(cli, emulator, new_itwin):
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    emulator.inject(r"/bucket$", 404, times=None, body=page)
    result = cli("ls", f"itwin://{new_itwin}/")
    assert result.returncode == 4, result
    assert "HTTP 404" in result.stderr and "502 Bad Gateway" in result.stderr
    assert "Traceback" not in result.stderr


def test_rate_limit_is_waited_out(cli, emulator, listing_itwin):
    emulator.inject(r"/bucket$", 429, times=2, retry_after=1)
    result = cli("ls", f"itwin://{listing_itwin}/")
    assert result.returncode == 0, result
    assert emulator.request_count(r"/bucket$", status=429) == 2
    assert emulator.request_count(r"/bucket$", status=200) == 1


def test_service_unavailable_is_waited_out(cli, emulator, new_reality_data):
    emulator.inject(r"/readaccess$", 503, retry_after=1)
    result = cli("ls", f"reality-data://{new_reality_data}/")
    assert result.returncode == 0, result
    assert emulator.request_count(r"/readaccess$", status=503) == 1
    assert emulator.request_count(r"/readaccess$", status=200) == 1


def test_rate_limit_longer_than_the_allowed_wait_gives_up_clearly(cli, emulator, new_itwin):
    emulator.inject(r"/bucket$", 429, times=None, retry_after=30)
    started = time.monotonic()
    result = cli("ls", f"itwin://{new_itwin}/", "--max-retry-wait", "2")
    assert result.returncode == 1, result
    assert time.monotonic() - started < 20
    assert "RateLimitExceeded" in result.stderr and "rate limiting" in result.stderr


def test_access_token_expiring_during_a_long_run_is_renewed(cli, emulator, new_itwin, bucket_container, make_files, tmp_path):
    # Short SAS: the run must go back to the API several times; mid-run every access token is revoked,
    # so one of those calls gets 401 and must renew the token and carry on.
    emulator.configure(sas_lifetime=3)
    files = {f"f{i:02}.bin": 32 * 1024 for i in range(16)}
    src = make_files(tmp_path / "src", files)
    expirer = expire_tokens_once_running(emulator)
    result = cli("upload", src, f"itwin://{new_itwin}/run", "--concurrency", "2", "--bwlimit", "96K", "--json")
    expirer.join(timeout=5)
    assert result.returncode == 0, result
    assert result.summary["uploaded"] == 16 and result.summary["failed"] == 0
    assert len(list(bucket_container(new_itwin).list_blobs(name_starts_with="run/"))) == 16
    assert emulator.request_count(r"/bucket$", status=401) >= 1, "the run never met the revoked token"
    assert emulator.request_count(r"/bucket$", status=200) >= 2  # the first SAS, and one after renewing
    assert emulator.request_count(r"^/connect/token$", status=200) >= 2


# -- an app IMS or the API does not know ----------------------------------------------------------------

UNKNOWN_CLIENT_WORDS = ("not registered", "wrong type", "developer portal", "Service app", "Native/Desktop app",
                        "itwin-platform scope")


def test_an_unregistered_service_app_is_told_to_register_it_and_check_its_type(cli, emulator, new_itwin):
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_CLIENT_ID": "not-a-registered-app"})
    assert result.returncode == 3, result
    assert "HTTP 401" in result.stderr and "Client was not registered" in result.stderr
    for words in UNKNOWN_CLIENT_WORDS:
        assert words in result.stderr, words
    assert emulator.request_count(r"/bucket$") == 0  # IMS refused: the API was never asked
    assert "Traceback" not in result.stderr


def test_the_apis_unknown_client_answer_gets_the_same_hint(cli, emulator, new_itwin):
    body = {"error": {"code": "Unauthorized",
                      "message": "Access denied due to invalid client. Make sure that client was registered on "
                                 "https://developer.bentley.com.",
                      "details": [{"code": "UnknownClient",
                                   "message": "Client was not registered on https://developer.bentley.com."}]}}
    emulator.inject(r"/bucket$", 401, times=None, body=body)
    result = cli("ls", f"itwin://{new_itwin}/", env={"ITWIN_ACCESS_TOKEN": emulator.issue_access_token()})
    assert result.returncode == 3, result
    assert "UnknownClient" not in result.stdout and "Client was not registered" in result.stderr
    for words in UNKNOWN_CLIENT_WORDS:
        assert words in result.stderr, words
    assert "may have expired" not in result.stderr  # not the advice for a stale token


# -- a reality data's read or write access refused ------------------------------------------------------

def test_forbidden_read_access_without_itwin_says_to_pass_it(cli, emulator, new_reality_data):
    emulator.inject(r"/readaccess$", 403, times=None)
    result = cli("ls", f"reality-data://{new_reality_data}/")
    assert result.returncode == 3, result
    assert "InsufficientPermissions" in result.stderr
    assert "pass --itwin <iTwinId>" in result.stderr and "only in some cases" in result.stderr


def test_forbidden_read_access_with_itwin_names_realitydata_use(cli, emulator, new_reality_data):
    itwin = emulator.reality_data_itwin(new_reality_data)
    emulator.inject(r"/readaccess$", 403, times=None)
    result = cli("ls", f"reality-data://{new_reality_data}/", "--itwin", itwin)
    assert result.returncode == 3, result
    assert f"needs the realitydata_use permission on iTwin {itwin}" in result.stderr
    assert "pass --itwin" not in result.stderr
    # A service app is reminded under which address it must be invited.
    assert f"{emulator.client_id}@apps.imsoidc.bentley.com" in result.stderr


def test_forbidden_write_access_names_realitydata_manage(cli, emulator, new_reality_data):
    itwin = emulator.reality_data_itwin(new_reality_data)
    emulator.inject(r"/writeaccess$", 403, times=None)
    with_itwin = cli("url", f"reality-data://{new_reality_data}/", "--write", "--itwin", itwin)
    assert with_itwin.returncode == 3, with_itwin
    assert f"needs the realitydata_manage permission on iTwin {itwin}" in with_itwin.stderr
    without = cli("url", f"reality-data://{new_reality_data}/", "--write")
    assert without.returncode == 3, without
    assert "pass --itwin <iTwinId>" in without.stderr and "realitydata_manage" in without.stderr
