"""The SAS cache through the real command: a second run within the SAS's life makes no IMS or API request
(and imports no httpx); a stale, revoked, damaged or another principal's entry is never used; the off
switches and `auth logout` work; the file holding the signature is private and never printed."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bucket_sync.platform.resolver import is_fresh
from bucket_sync.platform.sas_cache import CachedSas
from bucket_sync.sas import ContainerSas

pytestmark = pytest.mark.integration

NO_CACHE_ENV = "BUCKET_SYNC_NO_SAS_CACHE"


def cache_dir(cli) -> Path:
    return Path(cli.env_for()["XDG_STATE_HOME"]) / "bucket-sync" / "sas-cache"


def entries(cli) -> list[Path]:
    directory = cache_dir(cli)
    return sorted(directory.glob("*.json")) if directory.exists() else []


def only_entry(cli) -> dict:
    found = entries(cli)
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def signature(url: str) -> str:
    return parse_qs(urlsplit(url).query)["sig"][0]


def ls_ok(cli, itwin: str, **kw):
    result = cli("ls", f"itwin://{itwin}/", "--json", **kw)
    assert result.returncode == 0, result
    return result


def test_a_second_run_makes_no_request_and_the_entry_is_private(cli, emulator, listing_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "a", "d/b.txt": "bb"})
    first = cli("upload", src, f"itwin://{listing_itwin}/p", "--json")
    assert first.returncode == 0 and first.summary["uploaded"] == 2, first
    assert emulator.request_count(r"^/connect/token$") == 1 and emulator.request_count(r"/bucket$") == 1

    entry = only_entry(cli)
    path = entries(cli)[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert signature(entry["url"]) in emulator.issued_secrets()  # the very SAS the API handed out
    assert not list(path.parent.glob("*.tmp")), "temporary files left behind"
    # No secret in the file name: it is a digest; the client secret and token are nowhere in the file.
    assert path.stem == path.stem.lower() and len(path.stem) == 64
    assert emulator.client_secret not in path.read_text()

    before = len(emulator.requests)
    (src / "c.txt").write_text("ccc")
    second = cli("upload", src, f"itwin://{listing_itwin}/p", "--json")
    assert second.returncode == 0 and second.summary["uploaded"] == 1 and second.summary["skipped"] == 2, second
    listed = ls_ok(cli, listing_itwin)
    assert {e["key"] for e in listed.events if e["event"] in ("blob", "dir")} == {"p/"}
    assert len(emulator.requests) == before, emulator.requests[before:]  # neither IMS nor the API


# The console script's own main, in a fresh interpreter, reporting the exit code and the httpx modules loaded.
_MAIN_REPORTING_IMPORTS = (
    "import json, sys\n"
    "from bucket_sync.cli.main import main\n"
    "try:\n"
    "    main(sys.argv[2:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "json.dump({'code': code, 'httpx': sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore'))},"
    " open(sys.argv[1], 'w'))\n"
)


def run_main_in_process(cli, tmp_path: Path, *args: str, env=None) -> tuple[dict, subprocess.CompletedProcess]:
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-c", _MAIN_REPORTING_IMPORTS, str(report), *args],
                          env=cli.env_for(env), capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    return json.loads(report.read_text()), proc


def test_a_cache_hit_imports_no_httpx_and_logs_no_signature(cli, emulator, listing_itwin, tmp_path):
    # The probe can tell: a run that fetches its SAS does import httpx.
    fetching, proc = run_main_in_process(cli, tmp_path, "ls", f"itwin://{listing_itwin}/", env={NO_CACHE_ENV: "1"})
    assert fetching["code"] == 0 and "httpx" in fetching["httpx"], proc.stderr
    ls_ok(cli, listing_itwin)
    sig = signature(only_entry(cli)["url"])
    before = len(emulator.requests)
    outcome, proc = run_main_in_process(cli, tmp_path, "ls", f"itwin://{listing_itwin}/", "-vv")
    assert outcome["code"] == 0, proc.stderr
    assert outcome["httpx"] == [], "a run served by the SAS cache must not import httpx"
    assert len(emulator.requests) == before
    assert "using the cached SAS for itwin://" in proc.stderr
    assert sig not in proc.stderr and sig not in proc.stdout
    assert emulator.client_secret not in proc.stderr

    # The same at -vv through the installed command (the cli fixture fails on any issued secret).
    verbose = cli("ls", f"itwin://{listing_itwin}/", "-vv")
    assert verbose.returncode == 0 and "using the cached SAS" in verbose.stderr, verbose


def test_a_sas_due_for_renewal_is_not_used(cli, emulator, listing_itwin):
    emulator.configure(sas_lifetime=8)
    ls_ok(cli, listing_itwin)
    entry = only_entry(cli)
    cached = CachedSas(ContainerSas.from_url(entry["url"]), entry["fetched_at"])
    assert is_fresh(cached, time.time())
    # Due one fifth of its (8 s) life before se=, as a run's own refresh would be: wait for that moment.
    while is_fresh(cached, time.time()):
        time.sleep(0.1)
    assert time.time() < cached.sas.expires_at.timestamp(), "still valid, yet due: the cache must not use it"
    bucket_calls = emulator.request_count(r"/bucket$")
    ls_ok(cli, listing_itwin)
    assert emulator.request_count(r"/bucket$") == bucket_calls + 1
    renewed = only_entry(cli)
    assert renewed["fetched_at"] > entry["fetched_at"] and renewed["url"] != entry["url"]


def test_a_revoked_cached_sas_is_refreshed_once_and_replaced(cli, emulator, listing_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    assert cli("upload", src, f"itwin://{listing_itwin}/", "--json").returncode == 0
    path = entries(cli)[0]
    entry = json.loads(path.read_text())
    raw = re.search(r"[?&]sig=([^&]+)", entry["url"]).group(1)  # as sent: URL-encoded
    forged = ("A" if raw[0] != "A" else "B") + raw[1:]  # same shape, wrong key: storage answers 403
    path.write_text(json.dumps({**entry, "url": entry["url"].replace("sig=" + raw, "sig=" + forged)}))
    assert signature(json.loads(path.read_text())["url"]) != signature(entry["url"])
    cli.add_secret(forged)

    bucket_calls = emulator.request_count(r"/bucket$")
    (src / "b.txt").write_text("b")
    result = cli("upload", src, f"itwin://{listing_itwin}/", "--json")
    assert result.returncode == 0 and result.summary["uploaded"] == 1, result
    assert emulator.request_count(r"/bucket$") == bucket_calls + 1  # one refresh, not a loop
    fresh = json.loads(path.read_text())
    assert signature(fresh["url"]) in emulator.issued_secrets() and forged not in fresh["url"]
    before = len(emulator.requests)
    ls_ok(cli, listing_itwin)
    assert len(emulator.requests) == before  # and the replacement serves the next run


def test_another_principal_never_gets_the_cached_sas(cli, emulator, listing_itwin):
    ls_ok(cli, listing_itwin)
    # Another service app (unknown to IMS): were the first app's SAS reused, this would succeed silently.
    other_app = cli("ls", f"itwin://{listing_itwin}/", env={"ITWIN_CLIENT_ID": "service-another-app",
                                                         "ITWIN_CLIENT_SECRET": "another-apps-secret"})
    assert other_app.returncode == 3 and "invalid_client" in other_app.stderr, other_app
    # A user's access token: its own fetch, its own entry.
    bucket_calls = emulator.request_count(r"/bucket$")
    token_env = {"ITWIN_ACCESS_TOKEN": emulator.issue_access_token(), "ITWIN_CLIENT_ID": None, "ITWIN_CLIENT_SECRET": None}
    ls_ok(cli, listing_itwin, env=token_env)
    assert emulator.request_count(r"/bucket$") == bucket_calls + 1
    assert len(entries(cli)) == 2
    # Another API base URL is another service (here: the same emulator as localhost), never served from cache.
    ls_ok(cli, listing_itwin, env={"ITWIN_API_URL": emulator.url.replace("127.0.0.1", "localhost")})
    assert emulator.request_count(r"/bucket$") == bucket_calls + 2


def test_read_access_sas_is_not_used_for_writing(cli, emulator, new_reality_data, make_files, tmp_path):
    assert cli("ls", f"reality-data://{new_reality_data}/", "--json").returncode == 0
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    up = cli("upload", src, f"reality-data://{new_reality_data}/", "--json")
    assert up.returncode == 0 and up.summary["uploaded"] == 1, up
    assert emulator.request_count(r"/writeaccess$") == 1 and emulator.request_count(r"/readaccess$") == 1
    assert len(entries(cli)) == 2
    assert cli("ls", f"reality-data://{new_reality_data}/", "--json").returncode == 0
    assert emulator.request_count(r"/readaccess$") == 1


@pytest.mark.parametrize("damage", [b"", b"{\"version\": 1, \"url\": \"https://x", b"\x00\xff garbage",
                                    b"{\"version\": 1, \"url\": \"not a url\", \"fetched_at\": 1}",
                                    b"{\"version\": 1, \"url\": 5, \"fetched_at\": \"soon\"}", b"[]"])
def test_a_damaged_entry_is_ignored_and_rewritten(cli, emulator, listing_itwin, damage):
    ls_ok(cli, listing_itwin)
    path = entries(cli)[0]
    path.write_bytes(damage)
    os.chmod(path.parent, 0o755)  # loosened by hand: the next write makes it private again
    result = ls_ok(cli, listing_itwin)
    assert "Traceback" not in result.stderr and "error" not in result.stderr, result
    assert emulator.request_count(r"/bucket$") == 2
    assert signature(json.loads(path.read_text())["url"]) in emulator.issued_secrets()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_env_var_turns_the_cache_off(cli, emulator, listing_itwin):
    for _ in range(2):
        ls_ok(cli, listing_itwin, env={NO_CACHE_ENV: "1"})
    assert emulator.request_count(r"/bucket$") == 2 and emulator.request_count(r"^/connect/token$") == 2
    assert not cache_dir(cli).exists()
    bad = cli("ls", f"itwin://{listing_itwin}/", env={NO_CACHE_ENV: "maybe"})
    assert bad.returncode == 2 and NO_CACHE_ENV in bad.stderr and "Traceback" not in bad.stderr, bad


def test_the_config_key_turns_the_cache_off(cli, emulator, listing_itwin, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[auth]\ncache-sas = false\n")
    for _ in range(2):
        ls_ok(cli, listing_itwin, env={"BUCKET_SYNC_CONFIG": str(config)})
    assert emulator.request_count(r"/bucket$") == 2 and not cache_dir(cli).exists()
    config.write_text("[auth]\ncache-sas = \"no\"\n")
    bad = cli("ls", f"itwin://{listing_itwin}/", env={"BUCKET_SYNC_CONFIG": str(config)})
    assert bad.returncode == 2 and "cache-sas must be true or false" in bad.stderr, bad


def test_logout_clears_the_cache(cli, emulator, listing_itwin):
    ls_ok(cli, listing_itwin)
    assert len(entries(cli)) == 1
    out = cli("auth", "logout", "--json")
    assert out.returncode == 0 and out.json_lines[-1]["sas_cache_cleared"] == 1, out
    assert entries(cli) == []
    ls_ok(cli, listing_itwin)
    assert emulator.request_count(r"/bucket$") == 2
