"""No secret ever reaches the screen or a file it should not: every command of the suite's scenarios, with
-v and -vv (and the SDKs' request logs at -vvv), succeeding and failing, scanned for every SAS signature,
access token, refresh token and client secret the emulator ever issued (plus the ones the test made).

The scan covers stdout, stderr and every file bucket-sync could have written a log to (the user's config,
state and cache folders and the working directory); the files allowed to hold a secret are the saved
sign-in and the SAS cache entries, which must be private (mode 0600) and are gone after `auth logout`.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest

from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from devtools.emulator import FULL_PERMISSIONS

from tests.integration.test_auth_login import NO_CLIENT_CREDENTIALS, login_path, run_login
from tests.support.cli import find_leaks
from tests.support.faultproxy import FaultProxy
from tests.support.integrity import new_container

pytestmark = pytest.mark.integration

NO_SAS_CACHE = {"BUCKET_SYNC_NO_SAS_CACHE": "1"}


class Transcript:
    """Every stream of every run, by a label, for one scan at the end."""

    def __init__(self) -> None:
        self.streams: dict[str, str] = {}
        self.runs = 0

    def add(self, label: str, stdout: str, stderr: str) -> None:
        self.runs += 1
        self.streams[f"{label} [stdout]"] = stdout
        self.streams[f"{label} [stderr]"] = stderr


def sas_url(azurite, container: str, permission: str, lifetime: timedelta) -> str:
    now = datetime.now(timezone.utc)
    token = generate_container_sas(account_name=azurite.account_name, container_name=container,
                                   account_key=azurite.account_key,
                                   permission=ContainerSasPermissions.from_string(permission),
                                   start=now - timedelta(hours=3), expiry=now + lifetime)
    return f"{azurite.blob_endpoint}/{container}?{token}"


def signature(url: str) -> str:
    return url.split("sig=", 1)[1].split("&", 1)[0]


def test_no_command_prints_or_logs_a_secret_at_any_verbosity(cli, emulator, azurite, tmp_path, make_files):
    itwin = emulator.add_itwin(permissions=FULL_PERMISSIONS)  # every command works on it
    rw_itwin = emulator.add_itwin()  # the documented sp=rw bucket
    other_itwin = emulator.add_itwin()
    rd = emulator.add_reality_data(itwin_id=itwin)
    src = make_files(tmp_path / "src", {"a.txt": "alpha", "sub/b.bin": 300_000, "sub/c.txt": "gamma"})
    direct_name = new_container(azurite, "secrets")
    direct = azurite.container_sas_url(direct_name)
    readonly = sas_url(azurite, direct_name, "rl", timedelta(hours=1))
    expired = sas_url(azurite, direct_name, "racwdl", timedelta(hours=-1))
    made_by_test = {signature(direct), signature(readonly), signature(expired)}
    made_by_test |= {quote(s, safe="") for s in made_by_test}
    log = Transcript()

    def run(label: str, *args, ok: set[int] = frozenset({0}), env=None) -> None:
        for verbosity in ("-v", "-vv"):
            r = cli(*args, verbosity, env=env, allow_secrets=True)
            log.add(f"{label} {verbosity}", r.stdout, r.stderr)
            assert r.returncode in ok, r  # the output is masked by CliResult's own scan on failure

    bucket = f"itwin://{itwin}/data"
    # Succeeding runs: every command, through the API (client credentials) and through a direct SAS.
    run("upload", "upload", src, bucket, "--block-size", "64K")
    run("ls", "ls", bucket, "--recursive", "--long")
    run("download", "download", bucket, tmp_path / "down")
    run("mirror up", "mirror", src, f"itwin://{itwin}/mirror")
    run("mirror down", "mirror", f"itwin://{itwin}/mirror", tmp_path / "mirror-down")
    run("url", "url", bucket)
    run("rm", "rm", f"{bucket}/a.txt", ok={0, 4})  # the second time, nothing is left to delete
    run("reality data upload", "upload", src, f"reality-data://{rd}/x")
    run("reality data download", "download", f"reality-data://{rd}/x", tmp_path / "rd-down", "--itwin", itwin)
    run("direct upload", "upload", src, direct, "--json")
    run("direct ls", "ls", direct, "--recursive", "--long", "--json")
    run("direct url", "url", direct)
    run("auth status", "auth", "status")
    run("check", "check", bucket)
    run("check reality data", "check", f"reality-data://{rd}", "--json")
    run("rw upload", "upload", src, f"itwin://{rw_itwin}/p", "--json")
    run("rw download by name", "download", f"itwin://{rw_itwin}/p/sub/b.bin", tmp_path / "rw-down", "--block-size", "64K")
    run("rw check", "check", f"itwin://{rw_itwin}/p")
    # Failing runs: errors are where secrets like to hide (URLs in exception text).
    run("expired SAS", "ls", expired, ok={3})
    run("read-only SAS", "upload", src, readonly, "--overwrite", ok={3})
    run("rw mirror with deletes", "mirror", src, f"itwin://{rw_itwin}/p", ok={3})
    run("rw folder download", "download", f"itwin://{rw_itwin}/p", tmp_path / "rw-folder", ok={4})
    run("SAS for another container", "ls", direct.replace(f"/{direct_name}?", "/no-such-container?"), ok={3})
    # These must reach IMS and the API: a SAS cached by the runs above would spare them both.
    emulator.inject(r"/bucket$", 401, times=None)
    run("API 401", "ls", bucket, ok={3}, env=NO_SAS_CACHE)
    emulator.reset()  # clears faults only: registrations and issued secrets stay
    emulator.inject(r"/connect/token$", 400, times=None, body={"error": "invalid_client", "error_description": "bad"})
    run("IMS refuses", "ls", bucket, ok={3}, env=NO_SAS_CACHE)
    emulator.reset()
    with FaultProxy(azurite.port, seed=3) as proxy:
        proxied = proxy.rewrite(direct)
        proxy.fail_requests(None, status=500, retry_after=0, match=r"/sub/c\.txt\?")
        proxy.reset_response_after(100, match="comp=list", times=4)
        run("storage failures", "upload", src, proxied, "--overwrite", ok={1})
    # The SDKs' own request logs (-vvv) carry full URLs: still redacted.
    r = cli("upload", src, direct, "--overwrite", "-vvv", allow_secrets=True)
    log.add("upload -vvv", r.stdout, r.stderr)
    assert r.returncode == 0, r
    # The reality data move, and a watch started and stopped.
    run("move", "reality-data", "move", rd, "--to-itwin", other_itwin, ok={0, 1})
    watch = subprocess.Popen([str(cli.executable), "watch", str(src), f"itwin://{other_itwin}/w", "-vv"],
                             env=cli.env_for(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
    time.sleep(2.0)
    (src / "new.txt").write_text("during watch")
    time.sleep(1.5)
    watch.send_signal(signal.SIGTERM)
    out, err = watch.communicate(timeout=30)
    log.add("watch -vv", out.decode(errors="replace"), err.decode(errors="replace"))
    assert watch.returncode == 0, err.decode(errors="replace")[-2000:]

    # An interactive sign-in, then commands on the saved refresh token.
    login = run_login(cli, emulator, "-vv")
    log.add("auth login -vv", login.stdout, login.stderr)
    assert login.returncode == 0, login.stderr
    saved = login_path(cli)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600, "the saved sign-in must be private"
    emulator.expire_tokens()  # the next command must renew with the refresh token
    run("signed-in ls", "ls", bucket, env=NO_CLIENT_CREDENTIALS)
    run("signed-in status", "auth", "status", env=NO_CLIENT_CREDENTIALS)
    cached_sas = list((saved.parent / "sas-cache").glob("*.json"))
    assert cached_sas and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in cached_sas), "cached SAS must be private"
    run("logout", "auth", "logout", env=NO_CLIENT_CREDENTIALS)
    assert not saved.exists() and not any(p.exists() for p in cached_sas)

    # -- the scan ------------------------------------------------------------------------------------
    secrets = set(emulator.issued_secrets()) | made_by_test | {azurite.account_key}
    assert any(s.count(".") == 2 for s in secrets), "no access token was issued: the scan would prove little"
    files = written_files(cli.home, tmp_path, exclude=[tmp_path / "src", tmp_path / "down", tmp_path / "mirror-down",
                                                         tmp_path / "rd-down"])
    streams = dict(log.streams)
    for path in files:
        streams[str(path)] = path.read_bytes().decode(errors="replace")
    leaks = find_leaks(streams, secrets)
    assert not leaks, "\n".join(leaks)
    unredacted = [label for label, text in streams.items() if _raw_sig(text)]
    assert not unredacted, f"a sig= value that is not redacted appears in: {unredacted}"
    assert log.runs >= 45
    # A positive control: the one output meant to carry the secret is caught by the same scan.
    shown = cli("url", direct, "--show-secret", allow_secrets=True)
    assert shown.returncode == 0 and find_leaks({"url --show-secret": shown.stdout}, secrets), shown


def _raw_sig(text: str) -> bool:
    import re

    return any(m.group(1) not in ("REDACTED", "...", "<SECRET>") and not m.group(1).startswith(("REDACTED", "..."))
               for m in re.finditer(r"(?i)\bsig=([^&\s\"'<>)]+)", text))


def written_files(home: Path, tmp_path: Path, exclude: list[Path]) -> list[Path]:
    """Every file under the test's folders that is not user data (those are the transfers' content)."""
    out = []
    for path in tmp_path.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(e) for e in exclude):
            out.append(path)
    return out
