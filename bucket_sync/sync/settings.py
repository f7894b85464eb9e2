"""How a run transfers (concurrency, block size, memory, attempts, dry run, bandwidth, mtime window,
upload extras): built by the CLI and the Python API, read by the engine. A module of its own so that the
CLI can build one without importing the engine."""

from __future__ import annotations

from dataclasses import dataclass

from .budget import MiB
from .model import BlobExtras


@dataclass(frozen=True)
class TransferSettings:
    concurrency: int = 16
    block_size: int | None = None  # None: chosen from the file size
    memory_budget: int = 64 * MiB  # bytes buffered across everything in flight (keeps peak RSS < 150 MB)
    file_attempts: int = 3  # whole-file attempts on transient errors, on top of per-request retries
    dry_run: bool = False
    bwlimit: int | None = None  # bytes per second across the whole run
    modify_window_ns: int | None = None  # --modify-window: mtimes closer than this are equal
    extras: BlobExtras = BlobExtras()  # upload: --content-type, --metadata
