"""scripts/bench keeps working: a tiny run (--quick --runs 1) prints the table and writes the Markdown.

The real benchmark is not part of the test suite (minutes, gigabytes); this only guards the script.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROWS = ("upload-small", "upload-medium", "upload-large", "download-all", "download-large", "download-large-md5", "noop")


def test_bench_quick_prints_the_table_and_writes_markdown(tmp_path):
    out_dir = tmp_path / "results"
    env = dict(os.environ, BENCH_NO_INSTALL="1")  # never apt-get from a test run
    proc = subprocess.run(
        [str(REPO / "scripts" / "bench"), "--quick", "--runs", "1", "--out-dir", str(out_dir),
         "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    table = proc.stdout
    for row in ROWS:
        line = next((ln for ln in table.splitlines() if ln.startswith(f"| {row} |")), None)
        assert line is not None, f"row {row} missing from:\n{table}"
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert re.fullmatch(r"\d+\.\d\d", cells[2]), f"no bucket-sync median in {line!r}"
        assert re.fullmatch(r"\d+", cells[5]), f"no bucket-sync peak RSS in {line!r}"
        if shutil.which("rclone"):
            assert re.fullmatch(r"\d+\.\d\d", cells[3]) and re.match(r"\d+\.\d\d", cells[4]), f"no rclone figures in {line!r}"
    if not shutil.which("rclone"):
        assert "rclone columns empty" in table
    assert re.search(r"PUT \d+ MiB/s, GET \d+ MiB/s", table), table
    assert "large-file upload" in table and "Watch latency" in table
    written = sorted(p.name for p in out_dir.iterdir())
    assert "latest.md" in written and any(re.fullmatch(r"bench-\d{8}-\d{6}\.md", n) for n in written), written
    assert (out_dir / "latest.md").read_text() == table
    assert "sig=" not in table + proc.stderr  # the SAS URLs the bench uses never reach its output


def test_bench_wan_quick_runs_through_the_delaying_proxy(tmp_path):
    """scripts/bench --wan: a tiny run through devtools/wan_proxy.py prints its table (bucket-sync only)."""
    out_dir = tmp_path / "results"
    proc = subprocess.run(
        [str(REPO / "scripts" / "bench"), "--wan", "--quick", "--runs", "1", "--no-rclone", "--out-dir", str(out_dir),
         "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=dict(os.environ, BENCH_NO_INSTALL="1"), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    for row in ("photos-up", "photos-down", "small-up", "small-noop"):
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(f"| {row} |")), None)
        assert line is not None and re.search(r"\| \d+\.\d\d \|", line), proc.stdout
    # 40 ms of round trip on every request: a no-op of 20 files cannot take less than one round trip.
    noop = next(ln for ln in proc.stdout.splitlines() if ln.startswith("| small-noop |"))
    assert float(noop.split("|")[3]) >= 0.04
    assert (out_dir / "wan-latest.md").read_text() == proc.stdout
    assert "sig=" not in proc.stdout + proc.stderr
