"""Watch latency: from a file being closed to its blob being visible in storage, over ``n`` files.

    measure_watch_latency(["bucket-sync"], "itwin://<id>/bench/watch", container_client, n=100)
    -> {"median_s": 1.2, "worst_s": 1.6, "p90_s": 1.4, "n": 100, "missing": 0, ...}

A ``bucket-sync watch`` runs on a fresh folder (default debounce unless told otherwise); files of 1 KiB are
written one every ``interval_s`` seconds (a steady trickle, as from a capture tool); a poller lists the
prefix every 50 ms and notes when each blob first appears. ``scripts/bench`` calls it with the names it
knows (``executable``, ``azurite`` + ``container``, ``env``, ``workdir``); the other spelling works too.
``python -m devtools.watch_latency`` runs it against a private Azurite with a SAS URL.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Mapping, Sequence


def measure_watch_latency(bucket_sync_cmd: Sequence[str] | str | None = None, remote: str | None = None,
                          container_client=None, n: int = 100, *, executable: str | None = None, azurite=None,
                          container=None, env: Mapping[str, str] | None = None,
                          workdir: str | Path | None = None, debounce_s: float | None = None,
                          interval_s: float = 0.2, timeout_s: float = 60.0) -> dict:
    from bucket_sync.targets import parse_remote

    if remote is None:
        raise ValueError("remote is required")
    cmd = [bucket_sync_cmd] if isinstance(bucket_sync_cmd, str) else list(bucket_sync_cmd or [executable or "bucket-sync"])
    if container_client is None and container is not None and not isinstance(container, str):
        container_client = container  # already a ContainerClient
    if container_client is None:
        if azurite is None or container is None:
            raise ValueError("give container_client, or azurite and container")
        container_client = azurite.container_client(container)
    base = parse_remote(remote).prefix
    run_id = f"lat-{uuid.uuid4().hex[:8]}"
    blob_prefix = f"{base}/{run_id}/" if base else f"{run_id}/"
    local = Path(tempfile.mkdtemp(prefix="watch-latency-", dir=workdir))
    (local / run_id).mkdir()
    argv = [*cmd, "watch", str(local), remote, "--json"]
    if debounce_s is not None:
        argv += ["--debounce", str(debounce_s)]
    proc = subprocess.Popen(argv, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    watching = threading.Event()
    threading.Thread(target=_read_events, args=(proc.stdout, watching), daemon=True).start()
    seen: dict[str, float] = {}
    stop_polling = threading.Event()
    poller = threading.Thread(target=_poll, args=(container_client, blob_prefix, seen, stop_polling), daemon=True)
    try:
        if not watching.wait(timeout_s):
            raise RuntimeError("bucket-sync watch did not start watching in time")
        poller.start()
        closed: dict[str, float] = {}
        for i in range(n):
            name = f"f{i:04d}.bin"
            with open(local / run_id / name, "wb") as fh:
                fh.write(os.urandom(1024))
            closed[blob_prefix + name] = time.monotonic()
            time.sleep(interval_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(seen) < n:
            time.sleep(0.1)
    finally:
        stop_polling.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    latencies = sorted(seen[k] - t for k, t in closed.items() if k in seen)
    if not latencies:
        raise RuntimeError("no file reached the bucket")
    return {
        "median_s": statistics.median(latencies),
        "worst_s": latencies[-1],
        "p90_s": latencies[int(0.9 * (len(latencies) - 1))],
        "best_s": latencies[0],
        "n": n,
        "missing": n - len(latencies),
    }


def _read_events(stream, watching: threading.Event) -> None:
    for raw in iter(stream.readline, b""):
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if event.get("event") == "status" and event.get("state") == "watching":
            watching.set()


def _poll(container_client, prefix: str, seen: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set():
        now = time.monotonic()
        try:
            for blob in container_client.list_blobs(name_starts_with=prefix):
                seen.setdefault(blob.name, now)
        except Exception:  # noqa: BLE001 - a slow or failed listing only costs resolution
            pass
        stop.wait(0.05)


def main() -> int:
    import sys

    from devtools.azurite import AzuriteServer

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with AzuriteServer() as az:
        az.create_container("latency")
        exe = str(Path(sys.executable).parent / "bucket-sync")
        result = measure_watch_latency([exe], az.container_sas_url("latency"), az.container_client("latency"), n=n)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
