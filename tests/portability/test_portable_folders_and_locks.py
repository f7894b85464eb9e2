"""README.md, "Windows, macOS and Linux": per-user folders through platformdirs (Linux paths unchanged), the state
folder override, an unwritable state folder as a usage error, and the pair / sign-in locks on filelock."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bucket_sync import config
from bucket_sync.app.lock import holder_path, lock_path, pair_lock
from bucket_sync.errors import ExitCode, LockHeldError, UsageError

# -- folders -----------------------------------------------------------------------------------------


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", config.STATE_DIR_ENV, config.CACHE_DIR_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG layout is the Linux one")
def test_linux_folders_are_the_xdg_ones_as_before(xdg, monkeypatch, tmp_path):
    assert config.user_config_dir() == xdg / ".config" / "bucket-sync"
    assert config.user_state_dir() == xdg / ".local" / "state" / "bucket-sync"
    assert config.user_cache_dir() == xdg / ".cache" / "bucket-sync"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "s"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "k"))
    assert config.user_config_dir() == tmp_path / "c" / "bucket-sync"
    assert config.user_state_dir() == tmp_path / "s" / "bucket-sync"
    assert config.user_cache_dir() == tmp_path / "k" / "bucket-sync"


def test_state_and_cache_folders_can_be_moved_by_environment(xdg, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "ignored"))
    monkeypatch.setenv(config.STATE_DIR_ENV, str(tmp_path / "volume" / "state"))
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(tmp_path / "volume" / "cache"))
    assert config.user_state_dir() == tmp_path / "volume" / "state"
    assert config.user_cache_dir() == tmp_path / "volume" / "cache"
    assert lock_path("/data", "remote").parent == tmp_path / "volume" / "state" / "locks"
    monkeypatch.setenv(config.STATE_DIR_ENV, "  ")  # blank is unset
    assert config.user_state_dir() == tmp_path / "ignored" / "bucket-sync"


def test_ensure_private_dir_creates_a_private_folder(tmp_path):
    made = config.ensure_private_dir(tmp_path / "a" / "b")
    assert made == tmp_path / "a" / "b" and made.is_dir()
    if os.name == "posix":
        assert stat.S_IMODE(made.stat().st_mode) & 0o077 == 0
    assert config.ensure_private_dir(made) == made  # already there: fine


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_state_folder_is_a_usage_error_naming_the_variable(tmp_path):
    home = tmp_path / "ro-home"
    home.mkdir()
    home.chmod(0o500)
    try:
        with pytest.raises(UsageError) as info:
            config.ensure_private_dir(home / ".local" / "state" / "bucket-sync")
        assert info.value.exit_code == ExitCode.USAGE
        assert config.STATE_DIR_ENV in str(info.value)
        with pytest.raises(UsageError, match=config.STATE_DIR_ENV):
            config.ensure_private_dir(home)  # exists, but cannot be written
    finally:
        home.chmod(0o700)


def test_an_existing_folder_that_cannot_be_written_is_a_usage_error(tmp_path, monkeypatch):
    # (as root every folder is writable: the check itself is what matters here)
    monkeypatch.setattr(config.os, "access", lambda path, mode: False)
    with pytest.raises(UsageError, match=config.STATE_DIR_ENV):
        config.ensure_private_dir(tmp_path)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc, where not even root creates a folder")
def test_a_folder_that_cannot_be_created_is_a_usage_error():
    with pytest.raises(UsageError, match=config.STATE_DIR_ENV):
        config.ensure_private_dir("/proc/bucket-sync-no-such-folder/state")


def test_a_file_in_the_way_of_the_state_folder_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=config.STATE_DIR_ENV) as info:
        config.ensure_private_dir(tmp_path / "file" / "state")
    assert info.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError, match="BUCKET_SYNC_CACHE_DIR"):
        config.ensure_private_dir(tmp_path / "file", env_var=config.CACHE_DIR_ENV)


def test_pair_lock_in_an_unusable_state_folder_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=config.STATE_DIR_ENV):
        with pair_lock(str(tmp_path), "remote", state_dir=tmp_path / "file" / "state"):
            pass


# -- pair lock ---------------------------------------------------------------------------------------


def test_pair_lock_is_exclusive_and_names_the_holder(tmp_path):
    state = tmp_path / "state"
    with pair_lock(str(tmp_path), "itwin://x/p", state_dir=state, command="mirror") as path:
        assert path.exists() and holder_path(path).exists()
        with pytest.raises(LockHeldError) as info:
            with pair_lock(str(tmp_path), "itwin://x/p", state_dir=state):
                pass
        assert info.value.exit_code == ExitCode.LOCKED
        assert f"pid {os.getpid()}" in str(info.value) and "--wait-lock" in str(info.value)
        with pair_lock(str(tmp_path), "itwin://x/other", state_dir=state):  # another pair: free
            pass
    assert not holder_path(path).exists(), "the holder's note goes with the lock"
    with pair_lock(str(tmp_path), "itwin://x/p", state_dir=state):  # released: free again
        pass
    if os.name == "posix":
        assert stat.S_IMODE(state.stat().st_mode) & 0o077 == 0
        assert stat.S_IMODE((state / "locks").stat().st_mode) & 0o077 == 0


def test_pair_lock_waits_for_the_holder_when_asked(tmp_path):
    state = tmp_path / "state"
    released = threading.Event()

    def hold() -> None:
        with pair_lock(str(tmp_path), "r", state_dir=state):
            entered.set()
            time.sleep(0.6)
            released.set()

    entered = threading.Event()
    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(5)
    with pair_lock(str(tmp_path), "r", state_dir=state, wait_s=10, poll_s=0.05):
        assert released.is_set(), "entered only once the holder let go"
    holder.join()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bucket_sync.app.lock import pair_lock
    with pair_lock(sys.argv[1], "remote", state_dir=Path(sys.argv[2])):
        print("held", flush=True)
        time.sleep(60)
""")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_holder_never_blocks_the_next_run(tmp_path):
    import signal

    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), str(state)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockHeldError, match=f"pid {proc.pid}"):
            with pair_lock(str(tmp_path), "remote", state_dir=state):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pair_lock(str(tmp_path), "remote", state_dir=state):
        pass


# -- through the real command --------------------------------------------------------------------------
@pytest.mark.integration
def test_an_unusable_state_folder_is_exit_2_naming_the_variable(cli, sas_url, make_files, tmp_path):
    """A container whose $HOME cannot be written: mirror and watch say what to set instead of crashing."""
    url, _ = sas_url
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    (tmp_path / "not-a-folder").write_text("x")
    for env in ({"BUCKET_SYNC_STATE_DIR": str(tmp_path / "not-a-folder" / "state")},
                {"XDG_STATE_HOME": str(tmp_path / "not-a-folder")}):
        for command in ("mirror", "watch"):
            run = cli(command, src, url, env=env, timeout=60)
            assert run.returncode == 2, run
            assert "BUCKET_SYNC_STATE_DIR" in run.stderr and "Traceback" not in run.stderr, run


# -- sign-in lock ------------------------------------------------------------------------------------


def test_the_sign_in_lock_serialises_renewals(tmp_path):
    from bucket_sync.platform.login_store import _locked

    login = tmp_path / "state" / "login.json"
    inside = 0
    most = 0
    guard = threading.Lock()

    def renew() -> None:
        nonlocal inside, most
        with _locked(login):
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=renew) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
    assert (tmp_path / "state" / "login.json.lock").exists() or os.name == "nt"


def test_saving_a_sign_in_into_an_unusable_state_folder_names_the_variable(tmp_path, monkeypatch):
    """`auth login` in a container whose $HOME cannot be written: exit 2 naming BUCKET_SYNC_STATE_DIR, not a
    crash after the browser came back."""
    from bucket_sync.platform.login_store import SavedLogin, save_login

    monkeypatch.setenv("BUCKET_SYNC_LOGIN_STORE", "file")  # the file, not an OS keychain, is under test
    (tmp_path / "not-a-folder").write_text("x")
    login = SavedLogin(client_id="native", ims_url="https://ims.example", refresh_token="refresh-secret",
                       scope="itwin-platform offline_access", account="a@example.com")
    with pytest.raises(UsageError) as info:
        save_login(login, tmp_path / "not-a-folder" / "state" / "login.json")
    assert info.value.exit_code == ExitCode.USAGE and "BUCKET_SYNC_STATE_DIR" in (info.value.hint or "")
