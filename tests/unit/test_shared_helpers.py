"""The helpers kept in one copy each: private files and locks, time formats, JWT claims, error output."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import datetime, timedelta, timezone

import click
import pytest

from bucket_sync.cli.error_output import echo_error
from bucket_sync.platform.jwt_claims import token_claims, token_expiry
from bucket_sync.private_files import private_lock, write_private
from bucket_sync.redact import register_secret
from bucket_sync.timefmt import readable_utc, rfc3339


def test_a_private_file_is_replaced_whole_and_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "login.json"
    path.write_bytes(b"old")
    write_private(path, b"new", prefix=".login-", durable=True)
    assert path.read_bytes() == b"new"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["login.json"]  # no temp file left


def test_a_failed_private_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "entry.json"
    path.write_bytes(b"old")

    with pytest.raises(TypeError):
        write_private(path, "not bytes", prefix=".tmp-")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["entry.json"]


def test_a_private_lock_is_exclusive_across_threads_of_one_run(tmp_path):
    lock = private_lock(tmp_path / "pair.lock")
    with lock:
        other = private_lock(tmp_path / "pair.lock")
        from filelock import Timeout

        with pytest.raises(Timeout):
            other.acquire(timeout=0)
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / "pair.lock").stat().st_mode) & 0o077 == 0


def test_times_read_the_same_whatever_the_zone_they_come_in():
    moment = datetime(2026, 12, 1, 10, 50, 14, 999_000, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339(moment) == "2026-12-01T09:50:14Z"
    assert rfc3339(moment.timestamp()) == "2026-12-01T09:50:14Z"
    assert readable_utc(moment) == "2026-12-01 09:50:14 UTC"


def jwt(claims: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{body}.sig"


def test_jwt_claims_and_expiry_or_nothing_for_what_is_not_a_jwt():
    assert token_claims(jwt({"email": "a@b.c", "exp": 1_800_000_000})) == {"email": "a@b.c", "exp": 1_800_000_000}
    assert token_expiry(jwt({"exp": 1_800_000_000})) == datetime.fromtimestamp(1_800_000_000, timezone.utc)
    for not_one in ("opaque-token", "a.%%%.c", jwt([1, 2]), jwt({"exp": "soon"}), jwt({})):
        assert token_expiry(not_one) is None
    assert token_claims("opaque") == {} and token_claims(jwt([1])) == {}


def test_an_error_and_its_hint_are_shown_redacted_on_stderr():
    register_secret("SECRETSIG123")

    @click.command()
    def cmd() -> None:
        echo_error("could not list ?sig=SECRETSIG123", "get a new SAS")
        echo_error("no hint")

    from click.testing import CliRunner

    result = CliRunner().invoke(cmd)
    assert result.stdout == ""
    assert "error: could not list" in result.stderr and "  hint: get a new SAS\n" in result.stderr
    assert "SECRETSIG123" not in result.stderr and result.stderr.count("hint:") == 1


def test_an_error_logged_as_a_run_ends_has_the_terminal_form_and_no_secret(caplog):
    """app/run_log.log_error: what watch, a refused dry run and a reality data left authoring log as they end."""
    import logging

    from bucket_sync.app.run_log import log_error

    log = logging.getLogger("bucket_sync.test_log_error")
    with caplog.at_level(logging.ERROR, logger=log.name):
        log_error(log, "could not list ?sig=SECRETSIG456", "get a new SAS")
        log_error(log, "no hint")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("error: could not list") and lines[1] == "  hint: get a new SAS"
    assert lines[2] == "error: no hint" and len(lines) == 3
    assert not any("SECRETSIG456" in line for line in lines)
