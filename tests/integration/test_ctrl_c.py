"""Ctrl+C through the real command (README.md, "Exit codes": 130 outside watch, the summary still printed): a
SIGINT to an upload, a download mirror and a mirror slowed with --bwlimit stops the transfers in flight,
releases the pair lock, prints the summary (JSON too) and exits 130; the next run completes. A command
interrupted before it had anything to count (waiting on an API that never answers) says so too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import find_leaks

pytestmark = pytest.mark.integration

KIB = 1024
FILES = {f"scan/{i:02d}.las": os.urandom(128 * KIB + i) for i in range(8)}
SLOW = ["--bwlimit", "128K", "--concurrency", "2", "--block-size", "64K"]  # about a file a second


class Running:
    """``bucket-sync ARGS`` in the background, its output read line by line as it comes."""

    def __init__(self, cli, *args, env=None) -> None:
        self.cli = cli
        # Windows: a process group of its own, so that Ctrl+Break can be sent to it alone.
        group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {}
        self.proc = subprocess.Popen([str(cli.executable), *map(str, args)], env=cli.env_for(env),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=str(cli.home.parent), **group)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, sink), daemon=True)
                         for s, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            sink.append(raw.decode("utf-8", errors="replace").rstrip("\n"))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.out) if line.startswith("{")]

    def wait_for(self, predicate, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, f"it ended before {what}: {self}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self}"
            time.sleep(0.05)

    def interrupt(self, timeout: float = 20.0) -> float:
        """SIGINT, as Ctrl+C sends (Ctrl+Break on Windows, where no SIGINT can be sent to one process);
        the seconds it took to exit."""
        sent = time.monotonic()
        self.proc.send_signal(signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running {timeout} s after SIGINT: {self}")
        for reader in self._readers:
            reader.join(5)
        leaks = find_leaks({"stdout": "\n".join(self.out), "stderr": "\n".join(self.err)},
                           set(self.cli._secret_source()) | self.cli.extra_secrets)  # noqa: SLF001
        assert not leaks, leaks
        return time.monotonic() - sent

    def __str__(self) -> str:
        return (f"exit {self.proc.returncode}\n--- stdout ---\n" + "\n".join(self.out[-30:]) + "\n--- stderr ---\n"
                + "\n".join(self.err[-30:]))


@pytest.fixture
def sas_url(azurite, cli):
    """A fresh container and a full-permission SAS URL for it (its signature checked for in the output)."""
    name = f"ctrl-c-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    url = azurite.container_sas_url(name, "racwdl", 3600)
    cli.add_secret(url.rsplit("sig=", 1)[1].split("&")[0])
    return url, azurite.container_client(name)


def uploaded_one(run: Running):
    return lambda: any(e.get("event") == "transfer" and e.get("status") == "ok" for e in run.events())


def summary_of(run: Running) -> dict:
    events = run.events()
    assert events and events[-1]["event"] == "summary", f"the last line is not the summary: {run}"
    return events[-1]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def blobs(container) -> dict[str, bytes]:
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def test_ctrl_c_stops_an_upload_prints_the_summary_and_the_next_run_completes(cli, sas_url, make_files, tmp_path):
    url, container = sas_url
    src = make_files(tmp_path / "src", FILES)
    run = Running(cli, "upload", src, url, "--json", *SLOW)
    run.wait_for(uploaded_one(run), "the first file to arrive")
    took = run.interrupt()
    assert run.proc.returncode == 130, run
    assert took < 10, f"{took:.1f} s from SIGINT to exit: transfers were not stopped ({run})"
    summary = summary_of(run)
    assert summary["op"] == "upload" and summary["exit_code"] == 130, run
    assert 1 <= summary["uploaded"] < len(FILES), run
    assert not any("Traceback" in line for line in run.err), run
    assert any("interrupted" in line for line in run.err), run

    again = cli("upload", src, url, "--json")
    assert again.returncode == 0, again
    assert again.summary["uploaded"] + summary["uploaded"] >= len(FILES), again
    assert blobs(container) == FILES


def test_ctrl_c_stops_a_mirror_and_releases_the_pair_lock(cli, sas_url, make_files, tmp_path):
    url, container = sas_url
    src = make_files(tmp_path / "src", FILES)
    run = Running(cli, "mirror", src, url, "--json", *SLOW)
    run.wait_for(uploaded_one(run), "the first file to arrive")
    run.interrupt()
    assert run.proc.returncode == 130 and summary_of(run)["exit_code"] == 130, run
    locks = cli.home / ".local" / "state" / "bucket-sync" / "locks"
    assert not list(locks.glob("*.holder")), "the holder's note goes with the lock"

    # Not exit 5: the lock went with the interrupted run.
    again = cli("mirror", src, url, "--json")
    assert again.returncode == 0, again
    assert blobs(container) == FILES


def test_ctrl_c_stops_a_download_mirror_and_a_later_one_converges(cli, sas_url, tmp_path):
    url, container = sas_url
    for name, data in FILES.items():
        container.upload_blob(name, data)
    dest = tmp_path / "dest"
    run = Running(cli, "mirror", url, dest, *SLOW)  # human output this time
    run.wait_for(lambda: len(list(dest.rglob("*.las"))) >= 1, "the first file to land")
    run.interrupt()
    assert run.proc.returncode == 130, run
    assert any(line.startswith("mirror: interrupted, downloaded") for line in run.out), run
    assert not any("Traceback" in line for line in run.err), run

    again = cli("mirror", url, dest, "--json")
    assert again.returncode == 0, again
    assert tree(dest) == FILES, "every file, and no .bucket-sync-partial left behind"


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers: a hung API or storage."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    sock.close()


def test_ctrl_c_before_anything_was_counted_still_prints_a_summary(cli, silent_server, tmp_path):
    """Resolving itwin:// against an API that never answers: nothing to count, but still exit 130 and a
    JSON summary saying so."""
    itwin = str(uuid.uuid4())
    env = {"ITWIN_API_URL": f"http://127.0.0.1:{silent_server}", "ITWIN_ACCESS_TOKEN": "a-token-for-the-test-" + "x" * 20}
    (tmp_path / "d").mkdir()
    run = Running(cli, "download", f"itwin://{itwin}/x", tmp_path / "d", "--json", env=env)
    time.sleep(1.0)  # it is waiting on the API by now
    run.interrupt()
    assert run.proc.returncode == 130, run
    summary = summary_of(run)
    assert summary["exit_code"] == 130 and summary["op"] == "download", run
    assert not any("Traceback" in line for line in run.err), run


def test_ctrl_c_on_a_hung_storage_request_ends_with_the_summary(cli, silent_server, tmp_path):
    url = f"http://127.0.0.1:{silent_server}/devstoreaccount1/c/one.las?sv=2025-01-05&sp=r&sig=abc{'d' * 40}"
    cli.add_secret("abc" + "d" * 40)
    run = Running(cli, "download", url, tmp_path / "d", "--json")
    time.sleep(1.0)
    took = run.interrupt()
    assert run.proc.returncode == 130, run
    assert took < 10, run
    assert summary_of(run)["exit_code"] == 130, run
