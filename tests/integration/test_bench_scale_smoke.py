"""scripts/bench --scale keeps working: its quick variant (5,000 files on the List Blobs stub) checks that
both tools see the synthetic tree as in sync in both directions, prints the table and writes the Markdown.

The scale figures themselves are a bench, not a test (a million files take minutes); this guards the stub
and the script: a stub page the client cannot read, or a local tree whose mtimes drift from the stub's,
fails the no-op check here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROWS = ("noop-5k up", "noop-5k down", "flat-2k up", "flat-2k down", "upload-1k first upload")


def test_bench_scale_quick_runs_both_tools_on_the_stub(tmp_path):
    out_dir = tmp_path / "results"
    env = dict(os.environ, BENCH_NO_INSTALL="1")  # never apt-get from a test run
    proc = subprocess.run(
        [str(REPO / "scripts" / "bench"), "--scale", "--quick", "--runs", "1", "--out-dir", str(out_dir),
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
        assert re.fullmatch(r"\d+", cells[7]), f"no bucket-sync peak RSS in {line!r}"
        if shutil.which("rclone"):
            assert re.fullmatch(r"\d+\.\d\d", cells[3]) and re.match(r"\d+\.\d\d", cells[4]), f"no rclone figures in {line!r}"
    assert re.search(r"the stub \(devtools/list_stub.py\) served [\d,]+ requests", table), table
    written = sorted(p.name for p in out_dir.iterdir())
    assert "scale-latest.md" in written and any(re.fullmatch(r"scale-\d{8}-\d{6}\.md", n) for n in written), written
    assert (out_dir / "scale-latest.md").read_text() == table
    assert "sig=" not in table + proc.stderr  # the SAS URLs never reach the bench's output
