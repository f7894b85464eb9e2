"""scripts/bench --wan: the same Azurite behind a simulated WAN (devtools/wan_proxy.py: 40 ms RTT, 400 Mbit/s
shared per direction), where latency and concurrency decide, not the loopback's speed.

Rows (both tools through the same proxied SAS URL): upload and download of 60 x 4 MiB ("photos"), upload of
1,000 x 16 KiB, and the no-op of the same upload. bucket-sync at its defaults against rclone at its defaults
and tuned (--transfers 16 --checkers 16). Targets (README.md, "Performance"): photos at 95% or more of the link
rate both ways; small files at most 0.5 x rclone tuned; the no-op at most 0.8 x.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RTT_MS = 40.0
MBIT_S = 400.0
PHOTOS = (60, 4 * 1024 * 1024)
SMALL = (1000, 16 * 1024)
TOOLS = ("bucket-sync", "rclone", "rclone-tuned")
FLOOR_STREAMS = 16  # bucket-sync's default --concurrency: the floor at the same number of connections


def raw_floor(url: str, files: list[Path], method: str, streams: int = FLOOR_STREAMS) -> float:
    """Seconds for bare Put Blob / Get Blob requests of ``files`` (http.client, ``streams`` threads, one
    kept-alive connection each) through the proxy: what the link, the proxy and Azurite allow at that many
    connections, with no tool's work at all. A photo row's "of the link" figure is read against it."""
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    local = threading.local()

    def one(path: Path) -> None:
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        local.conn = conn
        target = f"{parts.path}/raw-floor/{path.name}?{parts.query}"
        headers = {"x-ms-version": "2021-08-06"}
        if method == "PUT":
            conn.request("PUT", target, body=path.read_bytes(), headers={**headers, "x-ms-blob-type": "BlockBlob"})
        else:
            conn.request("GET", target, headers=headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status >= 300:
            raise RuntimeError(f"raw {method} answered {answer.status}")

    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(one, files))
    return time.monotonic() - started


@dataclass
class WanRow:
    name: str
    what: str
    nbytes: int
    target: str
    seconds: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TOOLS})
    floor: list[float] = field(default_factory=list)  # the raw requests alone (photo and small-file rows)

    def median(self, tool: str) -> float | None:
        return statistics.median(self.seconds[tool]) if self.seconds[tool] else None


def _files(folder: Path, count: int, size: int) -> Path:
    if folder.exists() and len(list(folder.iterdir())) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"p{i:04d}.bin").write_bytes(os.urandom(size))
    return folder


ROWS = ("photos-up", "photos-down", "small-up", "small-noop")
# What a row needs run first, untimed when not asked for: a download needs the photos up, a no-op the upload.
NEEDS = {"photos-down": "photos-up", "small-noop": "small-up"}


def main_wan(args, bench) -> int:
    from devtools.azurite import AzuriteServer
    from devtools.wan_proxy import WanProxy

    wanted = [r.strip() for r in (args.rows_wan or ",".join(ROWS)).split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ROWS]
    if unknown:
        raise SystemExit(f"bench: unknown WAN rows {unknown} (known: {', '.join(ROWS)})")
    steps_run = set(wanted) | {NEEDS[r] for r in wanted if r in NEEDS}
    runs = max(1, args.runs)
    photos_n, photos_size = (6, 1024 * 1024) if args.quick else PHOTOS
    small_n, small_size = (20, 16 * 1024) if args.quick else SMALL
    data = (args.data_dir or args.out_dir / "data") / "wan"
    photos = _files(data / "photos", photos_n, photos_size) if steps_run & {"photos-up", "photos-down"} else data / "photos"
    small = _files(data / "small", small_n, small_size)
    work = Path(tempfile.mkdtemp(prefix="bucket-sync-bench-wan-"))
    rclone = None if args.no_rclone else shutil.which("rclone")
    link = MBIT_S * 1_000_000 / 8
    rows = [
        WanRow("photos-up", f"{photos_n} x {photos_size // 1024 // 1024} MiB up", photos_n * photos_size,
               "≥ 95% of the link"),
        WanRow("photos-down", f"{photos_n} x {photos_size // 1024 // 1024} MiB down", photos_n * photos_size,
               "≥ 95% of the link"),
        WanRow("small-up", f"{small_n} x 16 KiB up", small_n * small_size, "≤ 0.5 x rclone tuned"),
        WanRow("small-noop", f"{small_n} x 16 KiB, in sync", 0, "≤ 0.8 x rclone tuned"),
    ]
    rows = [r for r in rows if r.name in wanted]
    home = work / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_CONFIG_HOME": str(home / "config"), "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
           "RCLONE_CONFIG": str(work / "rclone.conf")}
    (work / "rclone.conf").write_text("")
    bs = str(Path(bench.sys.executable).parent / "bucket-sync")
    load_before = os.getloadavg()
    azurite = AzuriteServer(location=work / "azurite").start()
    try:
        with WanProxy(azurite.port, rtt_ms=RTT_MS, mbit_s=MBIT_S) as wan:
            azurite.create_container("wan-floor")
            floor_url = wan.rewrite(azurite.container_sas_url("wan-floor", "racwdl", 86400))
            for run in range(runs):
                for name, method, folder in (("photos-up", "PUT", photos), ("photos-down", "GET", photos),
                                             ("small-up", "PUT", small)):
                    if name not in wanted:
                        continue
                    if name == "photos-down" and "photos-up" not in wanted:
                        raw_floor(floor_url, sorted(folder.iterdir()), "PUT")  # the blobs it reads, untimed
                    seconds = raw_floor(floor_url, sorted(folder.iterdir()), method)
                    next(r for r in rows if r.name == name).floor.append(seconds)
                    bench.say(f"  {name:12} {'raw floor':12} run {run + 1}: {seconds:6.2f} s")
                for tool in TOOLS if rclone else ("bucket-sync",):
                    container = f"wan-{run}-{tool}".replace("-tuned", "t").lower()
                    azurite.create_container(container)
                    url = wan.rewrite(azurite.container_sas_url(container, "racwdl", 86400))
                    rc_env = dict(env, RCLONE_AZUREBLOB_SAS_URL=url)
                    tuned = ("--transfers", "16", "--checkers", "16") if tool == "rclone-tuned" else ()

                    # cmd() and remote() are called in this iteration only, so late binding of tool, url... is safe
                    def cmd(verb: str, src: str, dst: str) -> list[str]:
                        if tool == "bucket-sync":  # noqa: B023
                            return [bs, verb, src, dst]
                        return [rclone, "copy", src, dst, *tuned]  # noqa: B023

                    def remote(prefix: str) -> str:
                        return url.replace("?", f"/{prefix}?", 1) if tool == "bucket-sync" else f":azureblob:{container}/{prefix}"  # noqa: B023

                    the_env = env if tool == "bucket-sync" else rc_env
                    steps = [("photos-up", cmd("upload", str(photos), remote("photos"))),
                             ("photos-down", cmd("download", remote("photos"), str(work / f"down-{tool}-{run}"))),
                             ("small-up", cmd("upload", str(small), remote("small"))),
                             ("small-noop", cmd("upload", str(small), remote("small")))]
                    for name, argv in steps:
                        if name not in steps_run:
                            continue
                        result, _, _ = bench.measure(argv, the_env, f"{tool} {name} (WAN)")
                        if name not in wanted:
                            continue
                        next(r for r in rows if r.name == name).seconds[tool].append(result.seconds)
                        bench.say(f"  {name:12} {tool:12} run {run + 1}: {result.seconds:6.2f} s")
                    shutil.rmtree(work / f"down-{tool}-{run}", ignore_errors=True)
                    azurite.container_client(container).delete_container()
    finally:
        azurite.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    lines = [f"# bucket-sync vs rclone over a simulated WAN, {datetime.now(timezone.utc):%Y%m%d-%H%M%S} UTC", "",
             f"devtools/wan_proxy.py: {RTT_MS:g} ms RTT, {MBIT_S:g} Mbit/s shared per direction ({link / 1e6:.0f} MB/s); "
             f"Azurite behind it; {runs} run(s), median; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
             f"bucket-sync at its defaults, rclone at its defaults and tuned (--transfers 16 --checkers 16).", "",
             f"The raw floor: bare Put Blob / Get Blob requests of the same files (photos, and the small files up) through the same proxy, "
             f"{FLOOR_STREAMS} connections (http.client), so the share of the link it reaches is what the link, the "
             f"proxy and Azurite allow before any tool's work.", "",
             "| row | data | bucket-sync s | rclone s | rclone tuned s | raw floor s | of the link, bucket-sync | "
             "of the link, raw floor | bucket-sync / rclone tuned | target |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        bsm, rc, tuned = r.median("bucket-sync"), r.median("rclone"), r.median("rclone-tuned")
        floor = statistics.median(r.floor) if r.floor else None
        share = f"{r.nbytes / bsm / link:.0%}" if bsm and r.nbytes else "–"
        floor_share = f"{r.nbytes / floor / link:.0%}" if floor and r.nbytes else "–"
        ratio = f"{bsm / tuned:.2f}" if bsm and tuned else "–"
        lines.append(f"| {r.name} | {r.what} | {bench.fmt(bsm)} | {bench.fmt(rc)} | {bench.fmt(tuned)} | "
                     f"{bench.fmt(floor)} | {share} | {floor_share} | {ratio} | {r.target} |")
    table = "\n".join(lines) + "\n"
    print(table, end="")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "wan-latest.md").write_text(table)
    return 0


__all__ = ["main_wan"]
