"""`scripts/bench --scale`: bucket-sync against rclone at 250k-1M files, on the List Blobs stub.

Azurite lists too slowly to measure a client at this size, so the remote is devtools/list_stub.py (real
List Blobs XML for synthetic blobs, uploads accepted and discarded), run in its own process on loopback.
Both tools reach it through the same container SAS URL: bucket-sync as a SAS URL target, rclone as
``:azureblob,sas_url='<url>':<container>``. The local trees are 1-byte files written once into the data
folder from the stub's own functions (same names, sizes and mtimes), so the no-op is a no-op for both;
each row starts with an untimed run of each tool that must change nothing (it also fills the stub's page
cache and bucket-sync's listing cache, as the cron run before would have).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.list_stub import Layout, container_url, sas_query  # noqa: E402

CONCURRENCY = 16
TARGET_RATIO = 0.8
TARGET_RSS_MB = 150
_LAYOUT_VERSION = "1"

# name -> (layout, count, what): the no-op rows mirror in both directions; upload rows copy into an empty container.
FULL_ROWS = ("noop-250k", "noop-500k", "noop-1m", "flat-200k", "upload-250k")
QUICK_ROWS = ("noop-5k", "flat-2k", "upload-1k")
COUNTS = {"1k": 1_000, "2k": 2_000, "5k": 5_000, "20k": 20_000, "50k": 50_000, "200k": 200_000, "250k": 250_000, "500k": 500_000, "1m": 1_000_000}


@dataclass
class Run:
    seconds: float
    rss_mb: float
    cpu_s: float  # the tool's own user + system time
    stub_cpu_s: float


@dataclass
class Row:
    name: str  # e.g. noop-1m up
    files: int
    what: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: {"bucket-sync": [], "rclone": []})

    def median(self, tool: str, attr: str = "seconds") -> float | None:
        runs = self.runs[tool]
        return statistics.median(getattr(r, attr) for r in runs) if runs else None

    def peak(self, tool: str) -> float | None:
        runs = self.runs[tool]
        return max(r.rss_mb for r in runs) if runs else None

    def ratio(self) -> float | None:
        bs, rc = self.median("bucket-sync"), self.median("rclone")
        return bs / rc if bs and rc else None


def local_tree(base: Path, kind: str, count: int, log: Callable[[str], None]) -> Path:
    """The stub's container as local 1-byte files (written once, mtimes set to the stub's)."""
    folder = base / "synthetic" / f"{kind}-{count}"
    stamp = base / "synthetic" / f"{kind}-{count}.complete"  # outside the tree: not a file to sync
    if stamp.exists() and stamp.read_text() == _LAYOUT_VERSION:
        return folder
    log(f"bench: writing {count:,} files into {folder} (once; reused by later runs)")
    shutil.rmtree(folder, ignore_errors=True)
    layout = Layout(kind, count)
    made: set[str] = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for i in range(count):
        path = f"{folder}/{layout.name(i)}"
        parent = path.rpartition("/")[0]
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, layout.content(i))
            ns = layout.mtime_ns(i)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
    stamp.write_text(_LAYOUT_VERSION)
    return folder


class Stub:
    """devtools/list_stub.py in its own process (its CPU is its own, read from /_stats)."""

    def __init__(self, cache_mb: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.list_stub", "--cache-mb", str(cache_mb)],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("LIST_STUB_PORT="):
            self.proc.kill()
            raise RuntimeError(f"the list stub did not start: {line!r}")
        self.port = int(line.strip().split("=", 1)[1])

    def url(self, container: str) -> str:
        return f"{container_url(self.port, container)}?{sas_query()}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats", timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ScaleBench:
    def __init__(self, args, data_dir: Path, work: Path, bench) -> None:
        self.args = args
        self.data_dir = data_dir
        self.work = work
        self.b = bench  # the bench module: measure-free helpers (mask, say, BenchError)
        self.rclone = None if args.no_rclone else shutil.which("rclone")
        home = work / "home"
        home.mkdir()
        venv_bin = str(Path(sys.executable).parent)
        self.env = {"PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
                    "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".state"),
                    "XDG_CACHE_HOME": str(home / ".cache"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                    "TMPDIR": os.environ.get("TMPDIR", "/tmp"), "RCLONE_CONFIG": str(work / "rclone.conf")}
        if os.environ.get("PYTHONPATH"):  # scripts/bench puts this checkout first: its bucket_sync is measured
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        (work / "rclone.conf").write_text("")
        self.bs = str(Path(venv_bin) / "bucket-sync")
        self.stub: Stub | None = None

    # -- commands ----------------------------------------------------------------------------------
    def rc_remote(self, container: str) -> str:
        return f":azureblob,sas_url='{self.stub.url(container)}':{container}"

    def command(self, tool: str, verb: str, src: str, dst: str) -> list[str]:
        if tool == "bucket-sync":
            return [self.bs, verb, src, dst, "--concurrency", str(CONCURRENCY)]
        return [self.rclone, {"mirror": "sync", "upload": "copy"}[verb], src, dst, "--transfers", str(CONCURRENCY),
                "--checkers", str(CONCURRENCY), "--azureblob-chunk-size", "8Mi",
                "--azureblob-upload-concurrency", str(CONCURRENCY)]

    def endpoints(self, tool: str, container: str) -> str:
        return self.stub.url(container) if tool == "bucket-sync" else self.rc_remote(container)

    def measure(self, argv: list[str], label: str) -> tuple[Run, str, str]:
        before = self.stub.stats()["cpu_s"]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            seconds = time.perf_counter() - start
            code = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if code != 0:
            raise self.b.BenchError(f"{label} exited with {code}:\n{self.b.mask(stderr[-3000:])}\n"
                                    f"{self.b.mask(stdout[-2000:])}")
        stub_cpu = self.stub.stats()["cpu_s"] - before
        return Run(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, stub_cpu), stdout, stderr

    # -- rows --------------------------------------------------------------------------------------
    def rows_for(self, name: str) -> list[tuple[Row, Callable[[str, int], tuple[list[str], Path | None]]]]:
        kind_word, size = name.split("-")
        count = COUNTS[size]
        kind = "flat" if kind_word == "flat" else "tree"
        container = f"{kind}-{count}"
        local = str(local_tree(self.data_dir, kind, count, self.b.say))
        shape = "one flat folder" if kind == "flat" else "1,000 per folder, 10 folders per top folder"
        if kind_word == "upload":
            def upload(tool: str, run: int) -> tuple[list[str], Path | None]:
                return self.command(tool, "upload", local, self.endpoints(tool, f"upload-{tool}-{run}")), None
            return [(Row(f"{name} first upload", count, f"{count:,} × 1 B ({shape}) into an empty container"), upload)]

        def up(tool: str, run: int):
            return self.command(tool, "mirror", local, self.endpoints(tool, container)), None

        def down(tool: str, run: int):
            return self.command(tool, "mirror", self.endpoints(tool, container), local), None

        return [(Row(f"{name} up", count, f"{count:,} × 1 B ({shape}), in sync, local -> stub"), up),
                (Row(f"{name} down", count, f"{count:,} × 1 B ({shape}), in sync, stub -> local"), down)]

    def check_noop(self, row: Row, tool: str, argv: list[str]) -> None:
        """An untimed run that must change nothing (bench.py's check_noop, for both directions)."""
        if tool == "bucket-sync":
            _, out, _ = self.measure([*argv, "--json"], f"bucket-sync {row.name} (check)")
            summary = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
            if summary.get("uploaded") or summary.get("downloaded") or summary.get("deleted") or summary.get("failed"):
                raise self.b.BenchError(f"bucket-sync's {row.name} run was not a no-op: {summary}")
            if summary.get("skipped") != row.files:
                raise self.b.BenchError(f"bucket-sync's {row.name} run compared {summary.get('skipped')} files, not {row.files}")
        else:
            _, _, err = self.measure([*argv, "-v"], f"rclone {row.name} (check)")
            changed = [ln for ln in err.splitlines() if ": Copied" in ln or "Updated modification time" in ln
                       or ": Deleted" in ln]
            if changed:
                raise self.b.BenchError(f"rclone's {row.name} run was not a no-op: {len(changed)} changes, e.g. "
                                        f"{self.b.mask(changed[0][:160])}")

    def run_row(self, row: Row, make) -> None:
        tools = ["bucket-sync"] + (["rclone"] if self.rclone else [])
        noop = not row.name.endswith("first upload")
        if noop:
            for tool in tools:
                self.check_noop(row, tool, make(tool, 0)[0])
        for i in range(self.args.runs):
            for tool in (tools if i % 2 == 0 else tools[::-1]):
                argv, _ = make(tool, i)
                run, _, _ = self.measure(argv, f"{tool} {row.name}")
                row.runs[tool].append(run)
                self.b.say(f"  {row.name:22} {tool:11} run {i + 1}: {run.seconds:7.2f} s, {run.rss_mb:6.1f} MB, "
                           f"CPU {run.cpu_s:6.2f} s (stub {run.stub_cpu_s:5.2f} s)")


def render(rows: list[Row], header: list[str]) -> str:
    lines = [*header, "",
             "| row | data | bucket-sync s | rclone s | ratio (target ≤ 0.8) | bucket-sync µs/file | bucket-sync CPU s | "
             "bucket-sync peak RSS MB | rclone peak RSS MB | stub CPU s (bs / rc) | runs bucket-sync / rclone (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    f = lambda v, spec=".2f": "–" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        ratio = r.ratio()
        flag = "" if ratio is None else (" ✓" if ratio <= TARGET_RATIO else " ✗")
        bs = r.median("bucket-sync")
        per_file = bs / r.files * 1e6 if bs else None
        runs = " / ".join(", ".join(f"{x.seconds:.2f}" for x in r.runs[t]) or "–" for t in ("bucket-sync", "rclone"))
        stub = " / ".join(f(r.median(t, "stub_cpu_s")) for t in ("bucket-sync", "rclone"))
        lines.append(f"| {r.name} | {r.what} | {f(bs)} | {f(r.median('rclone'))} | {f(ratio)}{flag} | {f(per_file, '.1f')} | "
                     f"{f(r.median('bucket-sync', 'cpu_s'))} | {f(r.peak('bucket-sync'), '.0f')} | {f(r.peak('rclone'), '.0f')} | "
                     f"{stub} | {runs} |")
    return "\n".join(lines) + "\n"


def main_scale(args, bench) -> int:
    rows = [r.strip() for r in (args.rows_scale or ",".join(QUICK_ROWS if args.quick else FULL_ROWS)).split(",") if r.strip()]
    bad = [r for r in rows if r.partition("-")[0] not in ("noop", "flat", "upload") or r.partition("-")[2] not in COUNTS]
    if bad:
        raise bench.BenchError(f"unknown scale rows {bad} (e.g. noop-250k, flat-200k, upload-250k)")
    data_dir = args.data_dir or args.out_dir / "data"
    work = Path(tempfile.mkdtemp(prefix="bucket-sync-bench-scale-"))
    sb = ScaleBench(args, data_dir, work, bench)
    biggest = max(COUNTS[r.partition("-")[2]] for r in rows)
    # The stub's page cache: about 1.5 KB per blob for the listing shapes of both tools, plus room.
    sb.stub = Stub(cache_mb=max(64, biggest * 3 // 1000))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    load_before = os.getloadavg()
    results: list[Row] = []
    try:
        bench.say(f"bench --scale: list stub on port {sb.stub.port}, rclone: {sb.rclone or 'not installed'}")
        for name in rows:
            for row, make in sb.rows_for(name):
                bench.say(f"row {row.name}: {row.what}")
                sb.run_row(row, make)
                results.append(row)
        stub_stats = sb.stub.stats()
    finally:
        sb.stub.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    header = [f"# bucket-sync vs rclone at scale (List Blobs stub), {stamp} UTC", "",
              f"commit {bench.short_commit()}; {os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after "
              f"{load_after[0]:.2f}; {bench.rclone_version(sb.rclone)}; {args.runs} run(s) per tool and row after an untimed no-op check, "
              f"median shown; concurrency {CONCURRENCY} for both; the stub (devtools/list_stub.py) served "
              f"{sum(stub_stats['requests'].values()):,} requests, page cache {stub_stats['cache_hits']:,} hits / "
              f"{stub_stats['cache_misses']:,} misses, {stub_stats['cpu_s']:.1f} s of CPU in all."]
    table = render(results, header)
    print(table, end="")
    bench.write_tables(table, args.out_dir, f"scale-{stamp}.md", "scale-latest.md")
    return 0
