"""bucket-sync against rclone on one local Azurite: median seconds, ratio, peak RSS, raw ceiling.

Run through ``scripts/bench`` (it prepares the .venv and installs rclone). Both tools hit the same
container: bucket-sync through ``itwin://<id>/<prefix>`` and the platform emulator (as a user would),
rclone through a container SAS URL. Each row runs the two tools alternately, on fresh prefixes.
Data sets are generated once into the data folder and reused (their mtimes must stay put).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.azurite import AzuriteServer  # noqa: E402
from devtools.emulator import FULL_PERMISSIONS, PlatformEmulator  # noqa: E402
from bucket_sync.sync.piece_digest import PIECES_KEY  # noqa: E402
from bench_data import DataSets, human_size, prepare_data  # noqa: E402

ROWS = ("upload-small", "upload-medium", "upload-large", "download-all", "download-large", "download-large-md5",
        "noop", "noop-2k", "noop-rw")
# download-large-md5: the same blob without the piece digest bucket-sync's chunked uploads store
# (bucket_sync/sync/piece_digest.py, PIECES_KEY), as another tool writes it: checked by its Content-MD5.
# The file-by-file path (a SAS without list, as the documented bucket SAS sp=rw) against the listing path
# on the same 2,000 files: bucket-sync's own ratio, with its target.
TARGET_LOOKUP_RATIO = 3.0
CONCURRENCY = 16
SIG_RE = re.compile(r"(?i)(sig=)[^&\s\"']+")
TARGET_RATIO = 0.8
TARGET_CEILING = 0.9
TARGET_RSS_MB = 150


def mask(text: str) -> str:
    return SIG_RE.sub(r"\1<SECRET>", text)


@dataclass
class Run:
    seconds: float
    rss_mb: float
    cpu_s: float = 0.0  # user + system CPU of the tool's process
    storage_cpu_s: float | None = None  # Azurite's CPU during the run


@dataclass(frozen=True)
class Target:
    itwin: str
    container: str
    rc_env: dict[str, str]  # rclone's environment, with this container's SAS URL


@dataclass
class Row:
    name: str
    what: str
    nbytes: int
    # "rclone-verified": rclone at bucket-sync's guarantee (download rows: every file MD5-checked).
    runs: dict[str, list[Run]] = field(default_factory=lambda: {"bucket-sync": [], "rclone": [], "rclone-verified": []})
    note: str = ""
    floor: float | None = None  # what the storage itself needs for the row's requests, where measured
    md5_floor: float | None = None  # download rows: hashlib MD5 of the same bytes, from the page cache
    pieces_floor: float | None = None  # download rows: the piece digest's SHA-256 of them, on every core
    stub: tuple[float, float] | None = None  # noop-rw: (listing, file by file) seconds against the list stub
    files: int = 0  # download rows: how many files (for the CPU per file)

    def cpu(self, tool: str) -> float | None:
        runs = self.runs[tool]
        return statistics.median(r.cpu_s for r in runs) if runs else None

    def storage_cpu(self, tool: str) -> float | None:
        cpus = [r.storage_cpu_s for r in self.runs[tool] if r.storage_cpu_s is not None]
        return statistics.median(cpus) if cpus else None

    def median(self, tool: str) -> float | None:
        runs = self.runs[tool]
        return statistics.median(r.seconds for r in runs) if runs else None

    def peak(self, tool: str) -> float | None:
        runs = self.runs[tool]
        return max(r.rss_mb for r in runs) if runs else None

    def ratio(self) -> float | None:
        bs, rc = self.median("bucket-sync"), self.median("rclone")
        return bs / rc if bs and rc else None


class BenchError(RuntimeError):
    pass


def measure(argv: list[str], env: dict[str, str], label: str) -> tuple[Run, str, str]:
    """Wall time and peak RSS (``wait4`` rusage of this one child) of one command."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: do not leave the tool running against a stopped Azurite
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"{label} exited with {proc.returncode}:\n{mask(stderr[-3000:])}\n{mask(stdout[-2000:])}")
    return Run(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime), stdout, stderr


class Bench:
    def __init__(self, args: argparse.Namespace, data: DataSets, work: Path) -> None:
        self.args = args
        self.data = data
        self.work = work
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.rclone = shutil.which("rclone")
        self.azurite = AzuriteServer(location=work / "azurite")
        self.emulator = PlatformEmulator(self.azurite)
        self.has_mirror = False
        self.watch_files = 10 if args.quick else 100

    # -- environment -----------------------------------------------------------------------------
    def start(self) -> None:
        self.azurite.start()
        self.emulator.start()
        home = self.work / "home"
        home.mkdir()
        venv_bin = str(Path(sys.executable).parent)
        self.base_env = {
            "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".state"),
            "XDG_CACHE_HOME": str(home / ".cache"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        }
        self.bs_env = dict(self.base_env, ITWIN_API_URL=self.emulator.url, ITWIN_IMS_URL=self.emulator.url,
                           ITWIN_CLIENT_ID=self.emulator.client_id, ITWIN_CLIENT_SECRET=self.emulator.client_secret)
        self.bs = str(Path(venv_bin) / "bucket-sync")
        self.rclone_conf = self.work / "rclone.conf"
        self.rclone_conf.write_text("")
        help_text = subprocess.run([self.bs, "--help"], env=self.bs_env, capture_output=True, text=True).stdout
        self.has_mirror = re.search(r"^\s+mirror\s", help_text, re.M) is not None

    def new_target(self, permissions: str = FULL_PERMISSIONS) -> "Target":
        """A fresh iTwin and its container. Each run gets its own and drops it afterwards: Azurite's
        on-disk metadata store slows down as blobs pile up (it rewrites one JSON file of all of them),
        which would make later rows slower than earlier ones whatever the tool. Both tools get the same
        permissions: a bucket that can list and delete (rclone needs a listing), except on the rw row."""
        itwin = self.emulator.add_itwin(permissions=permissions)
        container = f"bucket-{itwin}"
        rc_env = dict(self.base_env, RCLONE_CONFIG=str(self.rclone_conf),
                      RCLONE_AZUREBLOB_SAS_URL=self.azurite.container_sas_url(container, permissions, lifetime_s=86400))
        return Target(itwin, container, rc_env)

    def drop(self, target: "Target | None") -> None:
        if target is not None:
            self.azurite.container_client(target.container).delete_container()

    def stop(self) -> None:
        self.emulator.stop()
        self.azurite.stop()

    @staticmethod
    def remote(t: "Target", prefix: str) -> str:
        return f"itwin://{t.itwin}/{prefix}"

    @staticmethod
    def rc_remote(t: "Target", prefix: str) -> str:
        return f":azureblob:{t.container}/{prefix}"

    def rc_argv(self, verb: str, src: str, dst: str, *extra: str) -> list[str]:
        # Comparable settings: our default block size (8 MiB) and concurrency (16 files, 16 blocks).
        return [self.rclone, verb, src, dst, "--transfers", str(CONCURRENCY), "--checkers", str(CONCURRENCY),
                "--azureblob-chunk-size", "8Mi", "--azureblob-upload-concurrency", str(CONCURRENCY), *extra]

    def bs_argv(self, verb: str, *paths: str, extra: tuple[str, ...] = ()) -> list[str]:
        return [self.bs, verb, *paths, "--concurrency", str(CONCURRENCY), *extra]

    # -- rows ------------------------------------------------------------------------------------
    def row_command(self, row: str, tool: str, run: int, t: "Target") -> tuple[list[str], Path | None]:
        """The command for one run, and a local folder to remove afterwards (downloads)."""
        d = self.data
        bs = tool == "bucket-sync"
        if row.startswith("upload-"):
            src = str({"upload-small": d.small, "upload-medium": d.medium, "upload-large": d.large}[row])
            prefix = f"{row}/{tool}-{run}"
            if bs:
                return self.bs_argv("upload", src, self.remote(t, prefix)), None
            return self.rc_argv("copy", src, self.rc_remote(t, prefix)), None
        if row.startswith("download-"):
            source = "all" if row == "download-all" else "all/large"
            dest = self.work / "downloads" / f"{row}-{tool}-{run}"
            if bs:
                return self.bs_argv("download", self.remote(t, source), str(dest)), dest
            return self.rc_argv("copy", self.rc_remote(t, source), str(dest)), dest
        if row == "noop":
            if bs:
                verb = "mirror" if self.has_mirror else "upload"
                return self.bs_argv(verb, str(d.noop), self.remote(t, "noop")), None
            return self.rc_argv("sync", str(d.noop), self.rc_remote(t, "noop")), None
        if row in ("noop-2k", "noop-rw"):
            # rclone's file-by-file mode is --no-traverse: one lookup per source file, no listing.
            if bs:
                return self.bs_argv("upload", str(d.small), self.remote(t, "small")), None
            extra = ("--no-traverse",) if row == "noop-rw" else ()
            return self.rc_argv("copy", str(d.small), self.rc_remote(t, "small"), *extra), None
        raise ValueError(row)

    def prepared(self, row: str) -> "Target | None":
        """Untimed: the container the download and no-op rows start from, uploaded once by bucket-sync."""
        if row.startswith("upload-"):
            return None
        if row in ("noop-2k", "noop-rw"):
            t = self.new_target("rw" if row == "noop-rw" else FULL_PERMISSIONS)
            say(f"preparing: uploading {self.data.spec.small_count} files for the {row} row")
            measure(self.bs_argv("upload", str(self.data.small), self.remote(t, "small")), self.bs_env, "upload (prep)")
            return t
        t = self.new_target()
        if row.startswith("download-"):
            say(f"preparing: uploading {human_size(self.data.transfer_bytes)} for {row}")
            measure(self.bs_argv("upload", str(self.data.transfer), self.remote(t, "all")), self.bs_env, "upload (prep)")
            if row == "download-large-md5":
                self.without_piece_digest(t, "all/large/")
        else:
            say(f"preparing: uploading {self.data.noop_count} files for the no-op row")
            measure(self.bs_argv("upload", str(self.data.noop), self.remote(t, "noop")), self.bs_env, "upload (prep)")
            self.check_noop(t)
        return t

    def without_piece_digest(self, t: "Target", prefix: str) -> None:
        """The blobs under ``prefix`` as another tool would have written them: no ``sha256pieces``."""
        container = self.azurite.container_client(t.container)
        for blob in container.list_blobs(name_starts_with=prefix, include=["metadata"]):
            if PIECES_KEY not in (blob.metadata or {}):
                raise BenchError(f"{blob.name} has no piece digest to take away: the row would measure nothing new")
            kept = {k: v for k, v in blob.metadata.items() if k != PIECES_KEY}
            container.get_blob_client(blob.name).set_blob_metadata(kept)

    def check_noop(self, t: "Target") -> None:
        """Both tools must see nothing to do, or the no-op row measures transfers (untimed warm-up)."""
        argv, _ = self.row_command("noop", "bucket-sync", 0, t)
        _, out, _ = measure([*argv, "--json"], self.bs_env, "bucket-sync no-op check")
        summary = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
        if summary.get("uploaded") or summary.get("deleted"):
            raise BenchError(f"bucket-sync's no-op run was not a no-op: {summary}")
        if self.rclone:
            argv, _ = self.row_command("noop", "rclone", 0, t)
            _, _, err = measure([*argv, "-v"], t.rc_env, "rclone no-op check")
            changed = [line for line in err.splitlines() if ": Copied" in line or "Updated modification time" in line
                       or ": Deleted" in line]
            if changed:
                say(f"note: rclone changed {len(changed)} files on its warm-up no-op run (e.g. {mask(changed[0][:120])})")

    def head_floor(self, t: "Target", prefix: str) -> float:
        """Azurite's own floor for the file-by-file row: one HEAD per blob with a bare http.client loop
        (16 threads, kept-alive connections, no parsing), best of three. Azurite answers a HEAD by scanning
        its blob table, so this grows with the container: it is the limit of any client on this storage."""
        import http.client
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from urllib.parse import quote, urlsplit

        parts = urlsplit(t.rc_env["RCLONE_AZUREBLOB_SAS_URL"])
        names = [f"{prefix}/{p.relative_to(self.data.small).as_posix()}" for p in sorted(self.data.small.rglob("*"))
                 if p.is_file()]
        local = threading.local()

        def head(name: str) -> int:
            conn = getattr(local, "conn", None) or http.client.HTTPConnection(parts.hostname, parts.port)
            local.conn = conn
            conn.request("HEAD", f"{parts.path}/{quote(name)}?{parts.query}", headers={"x-ms-version": "2025-11-05"})
            response = conn.getresponse()
            response.read()
            return response.status

        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                statuses = set(pool.map(head, names))
            best = min(best, time.perf_counter() - started)
            if statuses != {200}:
                raise BenchError(f"the HEAD floor found statuses {statuses} (expected 200 for every file)")
        return best

    def storage_cpu(self) -> float | None:
        """Azurite's CPU seconds so far (from /proc, Linux): its share of a run shows when a row sits at
        the storage's own limit, whoever is the client."""
        proc = getattr(self.azurite, "_proc", None)
        try:
            fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (AttributeError, OSError, ValueError, IndexError):
            return None

    def md5_floor(self, row: Row) -> None:
        """What verifying costs on one core: hashlib MD5 of the row's bytes, read from the page cache
        (read once first), best of three. A download that overlaps its hash with the transfer can come
        close to it; none can go below it without a faster digest. Also the piece digest's floor: SHA-256
        of each 8 MiB piece, on as many threads as cores (hashlib lets the GIL go), best of three."""
        import hashlib
        from concurrent.futures import ThreadPoolExecutor

        root = self.data.transfer if row.name == "download-all" else self.data.transfer / "large"
        paths = sorted(p for p in root.rglob("*") if p.is_file())
        row.files = len(paths)
        for p in paths:  # into the page cache
            with open(p, "rb") as fh:
                while fh.read(8 * 1024 * 1024):
                    pass
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for p in paths:
                digest = hashlib.md5()
                with open(p, "rb") as fh:
                    while chunk := fh.read(8 * 1024 * 1024):
                        digest.update(chunk)
            best = min(best, time.perf_counter() - started)
        row.md5_floor = best

        piece = 8 * 1024 * 1024

        def sha256_piece(job: tuple[Path, int]) -> bytes:
            with open(job[0], "rb") as fh:
                fh.seek(job[1])
                return hashlib.sha256(fh.read(piece)).digest()

        jobs = [(p, at) for p in paths for at in range(0, max(1, p.stat().st_size), piece)]
        best = float("inf")
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for _ in range(3):
                started = time.perf_counter()
                list(pool.map(sha256_piece, jobs))
                best = min(best, time.perf_counter() - started)
        row.pieces_floor = best

    def client_lookup_ratio(self) -> tuple[float, float]:
        """bucket-sync's own file-by-file cost, away from Azurite's table scans: the same no-op upload of
        2,000 files against devtools/list_stub.py (answers a HEAD in constant time), on a SAS that lists
        and on one of sp=rw (the stub checks no SAS: only bucket-sync's planner reads sp=). Medians of 5."""
        from bench_scale import Stub, local_tree  # noqa: E402 (scripts/ is on the path)
        from devtools.list_stub import container_url, sas_query

        stub = Stub(64)
        try:
            local = local_tree(self.work / "stub-data", "tree", 2000, say)
            medians = []
            for sp in ("racwdl", "rw"):
                url = f"{container_url(stub.port, 'tree-2000')}?{sas_query(sp)}"
                runs = [measure(self.bs_argv("upload", str(local), url), self.bs_env, f"bucket-sync on the stub ({sp})")[0]
                        for _ in range(5)]
                medians.append(statistics.median(r.seconds for r in runs))
            return medians[0], medians[1]
        finally:
            stub.stop()

    def run_row(self, row: Row) -> None:
        tools = ["bucket-sync"] + (["rclone"] if self.rclone else [])
        if row.name.startswith("download-") and self.rclone:
            tools.append("rclone-verified")
            self.md5_floor(row)
        shared = self.prepared(row.name)
        if row.name == "noop-rw" and shared is not None:
            row.floor = self.head_floor(shared, "small")
            say(f"  {row.name:15} floor: {self.data.spec.small_count} bare HEADs in {row.floor:.2f} s")
            row.stub = self.client_lookup_ratio()
            say(f"  {row.name:15} on the list stub: listing {row.stub[0]:.2f} s, file by file {row.stub[1]:.2f} s")
        if row.name.startswith("download-") and shared is not None:
            # Untimed: one download of the row's blobs, so that the first timed run (always bucket-sync's) does
            # not also pay for the storage's first read of what was just uploaded.
            argv, cleanup = self.row_command(row.name, "bucket-sync", -1, shared)
            measure(argv, self.bs_env, "download (warm-up)")
            if cleanup is not None:
                shutil.rmtree(cleanup, ignore_errors=True)
        try:
            for i in range(self.args.runs):
                order = tools if i % 2 == 0 else tools[::-1]  # alternate who goes first
                for tool in order:
                    t = shared or self.new_target()
                    argv, cleanup = self.row_command(row.name, tool, i, t)
                    env = self.bs_env if tool == "bucket-sync" else t.rc_env
                    if tool == "rclone-verified":
                        # rclone checks MD5 only on single-stream downloads (its azureblob docs): at bucket-sync's
                        # guarantee it must not split files into streams.
                        argv = [*argv, "--multi-thread-streams", "0"]
                    try:
                        # Untimed: the page cache written back, so no run pays for the dirty pages of the one
                        # before it (1.4 GiB downloaded just before made a 1 GiB download take 1.1-3.3 s).
                        getattr(os, "sync", lambda: None)()  # POSIX only; the bench runs on Linux
                        before = self.storage_cpu()
                        run, _, _ = measure(argv, env, f"{tool} {row.name}")
                        after = self.storage_cpu()
                        if before is not None and after is not None:
                            run.storage_cpu_s = after - before
                    finally:
                        if cleanup is not None:
                            shutil.rmtree(cleanup, ignore_errors=True)
                        if shared is None:
                            self.drop(t)
                    row.runs[tool].append(run)
                    say(f"  {row.name:15} {tool:11} run {i + 1}: {run.seconds:7.2f} s, {run.rss_mb:6.1f} MB")
        finally:
            self.drop(shared)

    # -- ceiling ---------------------------------------------------------------------------------
    def ceiling(self) -> dict[str, float]:
        """Best of N raw requests with curl: one Put Blob and one Get Blob of the ceiling file."""
        size = self.data.ceiling.stat().st_size
        t = self.new_target()
        base, _, query = t.rc_env["RCLONE_AZUREBLOB_SAS_URL"].partition("?")
        blob_url = f"{base}/ceiling.bin?{query}"
        put, get = [], []
        for _ in range(max(1, self.args.runs)):
            run, _, _ = measure(["curl", "-sS", "--fail", "-X", "PUT", "-T", str(self.data.ceiling),
                                 "-H", "x-ms-blob-type: BlockBlob", "-H", "Expect:", "-o", "/dev/null", blob_url],
                                t.rc_env, "curl PUT")
            put.append(size / run.seconds)
            # Into a file, as a download must: the GET ceiling includes writing the bytes.
            sink = self.work / "ceiling.get"
            run, _, _ = measure(["curl", "-sS", "--fail", "-o", str(sink), blob_url], t.rc_env, "curl GET")
            sink.unlink()
            get.append(size / run.seconds)
        self.drop(t)
        return {"size": size, "put": max(put), "get": max(get)}

    def watch_latency(self) -> tuple[dict | None, str]:
        try:
            from devtools import watch_latency  # type: ignore[attr-defined]
        except ImportError:
            return None, "skipped: devtools/watch_latency.py does not exist yet"
        fn = getattr(watch_latency, "measure_watch_latency", None)
        if fn is None:
            return None, "skipped: devtools/watch_latency.py has no measure_watch_latency()"
        import inspect

        t = self.new_target()
        offer = {"remote": self.remote(t, "watch"), "env": self.bs_env, "n": self.watch_files,
                 "azurite": self.azurite, "emulator": self.emulator, "itwin_id": t.itwin,
                 "workdir": self.work / "watch", "work_dir": self.work / "watch", "tmp_path": self.work / "watch",
                 "container": t.container, "executable": self.bs}
        params = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in offer.items() if k in params}
        missing = [p.name for p in params.values()
                   if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in kwargs]
        if missing:
            return None, f"skipped: measure_watch_latency() needs {missing}, which the bench does not know"
        (self.work / "watch").mkdir(exist_ok=True)
        try:
            result = fn(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a tool under construction: report, do not lose the table
            return None, f"failed: {type(exc).__name__}: {mask(str(exc))[:300]}"
        if not isinstance(result, dict):
            result = {k: getattr(result, k) for k in dir(result) if not k.startswith("_") and not callable(getattr(result, k))}
        return result, ""


def rclone_version(rclone: str | None) -> str:
    """The first line of `rclone version`, or why the rclone columns are empty."""
    if not rclone:
        return "rclone not installed (rclone columns empty)"
    return subprocess.run([rclone, "version"], capture_output=True, text=True).stdout.split("\n")[0]


def short_commit() -> str:
    """The commit the figures belong to ('?' outside a git checkout)."""
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def write_tables(table: str, out_dir: Path, name: str, latest: str) -> None:
    """The Markdown of a run, once under its own name and once as the latest (scripts/bench's rows: bench-<stamp>.md
    and latest.md; --scale: scale-<stamp>.md and scale-latest.md)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / name).write_text(table)
    (out_dir / latest).write_text(table)
    say(f"bench: written {out_dir / name} and {out_dir / latest}")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def render(rows: list[Row], ceiling: dict | None, watch: tuple[dict | None, str], header: list[str],
           watch_files: int) -> str:
    lines = [*header, "",
             "| row | data | bucket-sync s | rclone s | ratio (target ≤ 0.8) | bucket-sync peak RSS MB | rclone peak RSS MB | runs bucket-sync / rclone (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        ratio = r.ratio()
        flag = "" if ratio is None else (" ✓" if ratio <= TARGET_RATIO else " ✗")
        runs = " / ".join(", ".join(f"{x.seconds:.2f}" for x in r.runs[t]) or "–" for t in ("bucket-sync", "rclone"))
        lines.append(f"| {r.name} | {r.what} | {fmt(r.median('bucket-sync'))} | {fmt(r.median('rclone'))} | "
                     f"{fmt(ratio)}{flag} | {fmt(r.peak('bucket-sync'), '.0f')} | {fmt(r.peak('rclone'), '.0f')} | {runs} |")
    by_name = {r.name: r for r in rows}
    if "noop-rw" in by_name and "noop-2k" in by_name and by_name["noop-2k"].median("bucket-sync"):
        own = by_name["noop-rw"].median("bucket-sync") / by_name["noop-2k"].median("bucket-sync")
        rw = by_name["noop-rw"]
        floor = (f"; Azurite's floor, {rw.floor:.2f} s for the bare HEADs alone (a bare http.client loop, 16 threads), "
                 f"is {rw.floor / by_name['noop-2k'].median('bucket-sync'):.2f} x the listing row and bucket-sync's run is "
                 f"{rw.median('bucket-sync') / rw.floor:.2f} x that floor") if rw.floor else ""
        stub = ""
        if rw.stub:
            client = rw.stub[1] / rw.stub[0]
            stub = (f"; against devtools/list_stub.py (a HEAD in constant time: what bucket-sync itself costs) "
                    f"{rw.stub[1]:.2f} s file by file / {rw.stub[0]:.2f} s listing = {client:.2f} "
                    f"(target ≤ {TARGET_LOOKUP_RATIO:g}){' ✓' if client <= TARGET_LOOKUP_RATIO else ' ✗'}")
        rw.note = (f"file by file (sp=rw, one HEAD per file) / listing (noop-2k), bucket-sync on Azurite: "
                   f"{own:.2f} (target ≤ {TARGET_LOOKUP_RATIO:g}){' ✓' if own <= TARGET_LOOKUP_RATIO else ' ✗'}{floor}"
                   f"{stub}; rclone runs `copy --no-traverse` (one lookup per file) on the same rw SAS")
    downloads = [r for r in rows if r.name.startswith("download-") and r.runs["rclone-verified"]]
    if downloads:
        lines += ["", "Downloads at equal guarantees: bucket-sync checks every file's MD5; rclone does only on "
                      "single-stream downloads, so its default skips the check above --multi-thread-cutoff (250 MiB) "
                      "and `--multi-thread-streams 0` is the same guarantee. MD5 floor: hashlib MD5 of the same bytes "
                      "from the page cache, one core. Blobs bucket-sync uploaded in blocks carry a piece digest "
                      "(SHA-256 of each block, bound to the Content-MD5; bucket_sync/sync/piece_digest.py) that each "
                      "range checks on its own core; its floor: hashlib SHA-256 of the same 8 MiB pieces, on every "
                      "core. download-large-md5 is the same blob without it (as another tool writes it).", "",
                  "| row | bucket-sync s | rclone default s (unverified above 250 MiB) | rclone verified s | MD5 floor s | "
                  "piece-digest floor s | bucket-sync / rclone verified (target ≤ 0.8) | bucket-sync / MD5 floor | "
                  "CPU ms per file, bucket-sync / rclone verified | CPU s, bucket-sync / rclone verified / Azurite during each |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for r in downloads:
            bs, verified = r.median("bucket-sync"), r.median("rclone-verified")
            vs_rc = bs / verified if bs and verified else None
            vs_floor = bs / r.md5_floor if bs and r.md5_floor else None
            floor_target = 1.15 if r.name.startswith("download-large") else None
            per_file = " / ".join(fmt(c * 1000 / r.files, ".2f") if c is not None and r.files else "–"
                                  for c in (r.cpu("bucket-sync"), r.cpu("rclone-verified")))
            lines.append(f"| {r.name} | {fmt(bs)} | {fmt(r.median('rclone'))} | {fmt(verified)} | {fmt(r.md5_floor)} | "
                         f"{fmt(r.pieces_floor)} | "
                         f"{fmt(vs_rc)}{'' if vs_rc is None else (' ✓' if vs_rc <= TARGET_RATIO else ' ✗')} | "
                         f"{fmt(vs_floor)}{'' if vs_floor is None or floor_target is None else (' ✓' if vs_floor <= floor_target else ' ✗')}"
                         f"{f' (target ≤ {floor_target})' if floor_target else ''} | {per_file} | "
                         f"{fmt(r.cpu('bucket-sync'))} / {fmt(r.cpu('rclone-verified'))} / "
                         f"{fmt(r.storage_cpu('bucket-sync'))}, {fmt(r.storage_cpu('rclone-verified'))} |")
    shares = []
    for r in rows:
        if r.name.startswith(("upload-", "download-")):
            parts = []
            for tool in ("bucket-sync", "rclone", "rclone-verified"):
                runs = [x for x in r.runs[tool] if x.storage_cpu_s is not None and x.seconds > 0]
                if runs:
                    parts.append(f"{tool} {statistics.median(x.storage_cpu_s / x.seconds for x in runs):.0%}")
            if parts:
                shares.append(f"{r.name}: " + ", ".join(parts))
    if shares:
        lines += ["", "Azurite's CPU share of the run (one core = 100%: at ~100% both tools wait on the storage): "
                  + "; ".join(shares)]
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", *notes]
    if ceiling:
        mib = 1024 * 1024
        lines += ["", f"Ceiling (curl, one raw request of {human_size(ceiling['size'])}, best of runs): "
                      f"PUT {ceiling['put'] / mib:.0f} MiB/s, GET {ceiling['get'] / mib:.0f} MiB/s", ""]
        by = {r.name: r for r in rows}
        for name, key, label in (("upload-large", "put", "upload"), ("download-large", "get", "download")):
            row = by.get(name)
            if row and row.median("bucket-sync"):
                speed = row.nbytes / row.median("bucket-sync")
                frac = speed / ceiling[key]
                lines.append(f"- bucket-sync large-file {label}: {speed / mib:.0f} MiB/s = {frac:.0%} of the raw "
                             f"{key.upper()} (target ≥ {TARGET_CEILING:.0%}){' ✓' if frac >= TARGET_CEILING else ' ✗'}")
    result, note = watch
    lines += ["", f"Watch latency (file closed -> blob visible, {watch_files} files): " +
              (", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()) if result else note)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data sets (BENCH_SCALE=0.01), for the smoke test")
    p.add_argument("--runs", type=int, default=3, help="runs per tool and row (default 3)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    p.add_argument("--data-dir", type=Path, default=None, help="where data sets are cached (default bench-results/data)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench-results", help="where the Markdown goes")
    p.add_argument("--no-rclone", action="store_true", help="bucket-sync only")
    p.add_argument("--no-ceiling", action="store_true", help="skip the raw-request ceiling")
    p.add_argument("--scale", action="store_true",
                   help="the scale rows instead (250k-1M files on the List Blobs stub, scripts/bench_scale.py)")
    p.add_argument("--scale-rows", dest="rows_scale", default=None,
                   help="with --scale: comma-separated rows, e.g. noop-250k,noop-1m,flat-200k,upload-250k")
    p.add_argument("--wan", action="store_true",
                   help="the WAN rows instead (40 ms RTT, 400 Mbit/s through devtools/wan_proxy.py; scripts/bench_wan.py)")
    p.add_argument("--wan-rows", dest="rows_wan", default=None,
                   help="with --wan: comma-separated rows, e.g. small-noop (default: photos-up,photos-down,small-up,small-noop)")
    args = p.parse_args(argv)
    if args.wan:
        from bench_wan import main_wan

        return main_wan(args, sys.modules[__name__])
    if args.scale:
        from bench_scale import main_scale

        return main_scale(args, sys.modules[__name__])
    scale = 0.01 if args.quick else float(os.environ.get("BENCH_SCALE", "1"))
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or args.runs < 1:
        p.error(f"unknown rows {unknown} (known: {', '.join(ROWS)})" if unknown else "--runs must be >= 1")
    data = prepare_data((args.data_dir or args.out_dir / "data"), scale, log=say)
    work = Path(tempfile.mkdtemp(prefix="bucket-sync-bench-"))
    bench = Bench(args, data, work)
    if args.no_rclone:
        bench.rclone = None
    load_before = os.getloadavg()
    try:
        bench.start()
        say(f"bench: Azurite on port {bench.azurite.port} (disk, {work}), rclone: {bench.rclone or 'not installed'}")
        results = []
        for name in rows:
            row = Row(name, data.describe(name), data.row_bytes(name))
            if name == "noop" and not bench.has_mirror:
                row.note = "`bucket-sync mirror` does not exist yet: measured with `upload` (same plan, no deletes)"
            say(f"row {name}: {row.what}")
            bench.run_row(row)
            results.append(row)
        ceiling = None if args.no_ceiling else bench.ceiling()
        watch = bench.watch_latency()
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    header = [f"# bucket-sync vs rclone, {bench.stamp} UTC", "",
              f"commit {short_commit()}; {os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after "
              f"{load_after[0]:.2f}; Azurite on loopback with disk persistence; {rclone_version(bench.rclone)}; "
              f"{args.runs} run(s) per tool and row, median shown; concurrency {CONCURRENCY} for both "
              f"(rclone: --transfers/--checkers/--azureblob-upload-concurrency {CONCURRENCY}, --azureblob-chunk-size 8Mi); "
              f"data scale {scale:g}."]
    table = render(results, ceiling, watch, header, bench.watch_files)
    print(table, end="")
    write_tables(table, args.out_dir, f"bench-{bench.stamp}.md", "latest.md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        say(f"bench: error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
