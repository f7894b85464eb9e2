"""The saved sign-in in the OS keychain (keyring), with the 0600 file as the fallback: through the real
`auth login`, `auth status`, a command using the sign-in, and `auth logout`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_auth_login import NO_CLIENT_CREDENTIALS, login_path, run_login

pytestmark = pytest.mark.integration

ROOT = str(Path(__file__).resolve().parents[2])


def keychain_env(tmp_path, backend: str = "FileKeyring") -> dict:
    return {"PYTHONPATH": ROOT, "PYTHON_KEYRING_BACKEND": f"tests.support.fake_keyring.{backend}",
            "FAKE_KEYRING_FILE": str(tmp_path / "keychain.json")}


def test_sign_in_goes_to_the_keychain_and_logout_clears_it(cli, emulator, listing_itwin, tmp_path):
    env = keychain_env(tmp_path)
    run = run_login(cli, emulator, env=env)
    assert run.returncode == 0, run.stderr
    assert "keychain" in run.json["store"]
    assert not login_path(cli).exists()  # no plain-file copy
    stored = json.loads((tmp_path / "keychain.json").read_text())
    entry = json.loads(stored["bucket-sync/auth-login"])
    assert entry["refresh_token"] in emulator.issued_secrets()

    status = cli("auth", "status", "--json", env={**env, **NO_CLIENT_CREDENTIALS})
    assert status.returncode == 0, status
    assert "keychain" in status.json_lines[-1]["store"] and status.json_lines[-1]["source"] == "cached-login"
    used = cli("ls", f"itwin://{listing_itwin}/", env={**env, **NO_CLIENT_CREDENTIALS})
    assert used.returncode == 0, used  # the sign-in from the keychain works (and a rotated token is saved back)

    out = cli("auth", "logout", env=env)
    assert out.returncode == 0 and "signed out" in out.stdout, out
    assert "bucket-sync/auth-login" not in json.loads((tmp_path / "keychain.json").read_text())
    after = cli("ls", f"itwin://{listing_itwin}/", env={**env, **NO_CLIENT_CREDENTIALS})
    assert after.returncode == 3, after


def test_without_a_keychain_the_file_is_used(cli, emulator):
    run = run_login(cli, emulator, env={"BUCKET_SYNC_LOGIN_STORE": "file"})
    assert run.returncode == 0, run.stderr
    assert run.json["store"].startswith("file") and login_path(cli).exists()
    assert oct(login_path(cli).stat().st_mode & 0o777) == "0o600"
    # The default on this headless machine (keyring finds no backend) is the file too.
    status = cli("auth", "status", "--json", env=NO_CLIENT_CREDENTIALS)
    assert status.returncode == 0 and status.json_lines[-1]["store"].startswith("file"), status


def test_a_keychain_that_fails_never_loses_the_sign_in_silently(cli, emulator, tmp_path):
    run = run_login(cli, emulator, env=keychain_env(tmp_path, "BrokenKeyring"))
    assert run.returncode == 3, run.stderr
    assert "keychain" in run.stderr and "BUCKET_SYNC_LOGIN_STORE=file" in run.stderr
    assert "Traceback" not in run.stderr
    # A sign-in kept in the file earlier is still found when the keychain cannot be read: not silently.
    status = cli("auth", "status", env={**keychain_env(tmp_path, "BrokenKeyring"), **NO_CLIENT_CREDENTIALS})
    assert status.returncode == 3 and "keychain" in status.stderr, status


def test_an_unknown_store_setting_is_a_usage_error(cli):
    result = cli("auth", "status", env={"BUCKET_SYNC_LOGIN_STORE": "vault", **NO_CLIENT_CREDENTIALS})
    assert result.returncode == 2 and "BUCKET_SYNC_LOGIN_STORE" in result.stderr, result
