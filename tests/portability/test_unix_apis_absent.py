"""README.md, "Windows, macOS and Linux": the real command with the Unix-only APIs made unavailable, as on Windows (no
machine here runs Windows: this is the simulation the README speaks of).

A ``sitecustomize`` on PYTHONPATH, imported by every Python start, refuses ``import fcntl`` (a meta path
finder ahead of all others) and deletes ``os.pwrite`` / ``os.pread``; stdout is cp1252 (PYTHONIOENCODING),
as a Windows pipe is. At exit it reports what the process had imported, so each test also proves the
command ran under the simulation (no fcntl, the portable positional I/O, filelock's lock).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.watch_proc import WatchProcess

pytestmark = pytest.mark.integration

BLOCK = 64 * 1024

SITECUSTOMIZE = textwrap.dedent('''
    """Simulated Windows for bucket-sync's portability tests: no fcntl, no os.pwrite / os.pread."""
    import atexit
    import json
    import os
    import sys


    class _RefuseUnixOnly:
        blocked = {"fcntl"}

        def find_spec(self, name, path=None, target=None):
            if name in self.blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (simulated Windows)", name=name)
            return None


    sys.meta_path.insert(0, _RefuseUnixOnly())
    sys.modules.pop("fcntl", None)
    for _name in ("pwrite", "pread"):
        if hasattr(os, _name):
            delattr(os, _name)

    _report = os.environ.get("BUCKET_SYNC_SIMULATION_REPORT")


    def _write_report():
        filelock = sys.modules.get("filelock")
        line = {
            "argv": sys.argv[1:2],
            "fcntl": "fcntl" in sys.modules,
            "pwrite": hasattr(os, "pwrite") or hasattr(os, "pread"),
            "positional": "bucket_sync.sync.positional" in sys.modules,
            "lock": getattr(getattr(filelock, "FileLock", None), "__name__", None),
        }
        with open(_report, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\\n")


    if _report:
        atexit.register(_write_report)
''')


@pytest.fixture
def simulated(cli, tmp_path):
    """The environment for a run under the simulation, and a reader of what the runs reported."""
    site = tmp_path / "simulated-windows"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    report = tmp_path / "simulation-report.jsonl"
    env = {"PYTHONPATH": str(site), "BUCKET_SYNC_SIMULATION_REPORT": str(report), "PYTHONIOENCODING": "cp1252",
           "PYTHONWARNINGS": "ignore:only soft file lock is available:UserWarning"}

    def reports() -> list[dict]:
        if not report.exists():
            return []
        return [json.loads(line) for line in report.read_text().splitlines()]

    class Simulated:
        pass

    sim = Simulated()
    sim.env = env
    sim.reports = reports
    return sim


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def blobs(container) -> dict[str, bytes]:
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def last_report(sim, command: str) -> dict:
    mine = [r for r in sim.reports() if r["argv"] == [command]]
    assert mine, f"no report from `bucket-sync {command}`: the simulation did not run ({sim.reports()})"
    return mine[-1]


def test_the_simulation_takes_effect(cli, simulated):
    probe = subprocess.run(
        [str(cli.executable.parent / "python"), "-c",
         "import os, sys\ntry:\n    import fcntl\nexcept ImportError:\n    print('no fcntl')\n"
         "print('pwrite' if hasattr(os, 'pwrite') else 'no pwrite', sys.stdout.encoding)"],
        env=cli.env_for(simulated.env), capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["no", "fcntl", "no", "pwrite", "cp1252"], probe


def test_help(cli, simulated):
    for args in (["--help"], ["mirror", "--help"], ["watch", "--help"]):
        run = cli(*args, env=simulated.env)
        assert run.returncode == 0 and "Usage" in run.stdout, run
    assert not last_report(simulated, "--help")["fcntl"]


def test_upload_multi_block_download_and_mirror(cli, simulated, sas_url, make_files, tmp_path):
    url, container = sas_url
    files = {"big.bin": os.urandom(300 * 1024 + 123), "測量/點雲.las": os.urandom(5 * BLOCK),
             "small.txt": b"small\r\nlines\n", "empty.txt": b""}
    src = make_files(tmp_path / "src", files)

    up = cli("upload", src, url, "--block-size", "64K", "--json", env=simulated.env)
    assert up.returncode == 0 and up.summary["uploaded"] == len(files), up
    assert blobs(container) == files
    assert not last_report(simulated, "upload")["fcntl"]

    dest = tmp_path / "dest"
    down = cli("download", url, dest, "--block-size", "64K", "--concurrency", "4", "--json", env=simulated.env)
    assert down.returncode == 0 and down.summary["downloaded"] == len(files), down
    assert tree(dest) == files, "every byte of the ranged (multi-block) downloads"
    report = last_report(simulated, "download")
    assert report["positional"] and not report["pwrite"] and not report["fcntl"], report

    # mirror up: takes the pair lock (through filelock, fcntl gone), uploads the change, deletes the extra.
    (src / "small.txt").write_bytes(b"changed")
    (src / "empty.txt").unlink()
    mirrored = {**files, "small.txt": b"changed"}
    del mirrored["empty.txt"]
    mirror = cli("mirror", src, url, "--block-size", "64K", "--json", env=simulated.env)
    assert mirror.returncode == 0, mirror
    assert mirror.summary["uploaded"] == 1 and mirror.summary["deleted"] == 1, mirror
    assert blobs(container) == mirrored
    report = last_report(simulated, "mirror")
    assert report["lock"] is not None and not report["fcntl"], report

    # mirror down into the old download: the multi-block files stay, the change comes, the extra goes.
    back = cli("mirror", url, dest, "--block-size", "64K", "--json", env=simulated.env)
    assert back.returncode == 0, back
    assert tree(dest) == mirrored


def test_the_pair_lock_holds_and_a_killed_holder_does_not_block(cli, simulated, sas_url, make_files, tmp_path):
    url, container = sas_url
    src = make_files(tmp_path / "src", {"big.bin": 40 * BLOCK})
    slow = subprocess.Popen([str(cli.executable), "mirror", str(src), url, "--block-size", "64K",
                             "--concurrency", "2", "--bwlimit", "256K"],
                            env=cli.env_for(simulated.env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        locks = cli.home / ".local" / "state" / "bucket-sync" / "locks"
        deadline = time.monotonic() + 30
        while not list(locks.glob("*.lock")) or not list(locks.glob("*.holder")):
            assert slow.poll() is None, "the slow mirror ended early"
            assert time.monotonic() < deadline, "the slow mirror never took its lock"
            time.sleep(0.05)
        second = cli("mirror", src, url, "--json", env=simulated.env)
        assert second.returncode == 5, second
        assert f"pid {slow.pid}" in second.stderr, second
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    after = cli("mirror", src, url, "--block-size", "64K", "--json", env=simulated.env)
    assert after.returncode == 0 and after.summary["uploaded"] == 1, after
    assert len(blobs(container)["big.bin"]) == 40 * BLOCK


def test_watch_starts_and_stops(cli, simulated, sas_url, make_files, tmp_path):
    url, container = sas_url
    root = make_files(tmp_path / "watched", {"first.txt": "one"})
    with WatchProcess(cli, root, url, "--json", env=simulated.env) as w:
        w.wait_watching()
        w.wait_for(lambda: "first.txt" in blobs(container), "the first reconcile")
        (root / "測量.txt").write_text("two")
        w.wait_for(lambda: blobs(container).get("測量.txt") == b"two", "the new file's upload")
        w.stop(signal.SIGINT)
    assert w.returncode == 0, w.describe()
    report = last_report(simulated, "watch")
    assert report["lock"] is not None and not report["fcntl"], report

