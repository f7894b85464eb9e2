"""The functional layer: the planner and the engine, end to end against an in-memory container
(tests/support/memory_remote.py), single-threaded. No Azurite, no subprocess: each test runs in milliseconds.

- ``remote`` (function): a fresh MemoryRemote granting racwdl.
- ``engine`` (function): ``engine(direction, remote, *, local_root=None, prefix="p", **settings) -> (Engine, Recorder)``,
  inline executors, one try per file (no retry sleeps), a Recorder of every result.
- ``tree`` (function): ``tree(root, {"a.txt": b"..."}, mtime_ns=T) -> root``: files with a fixed mtime.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bucket_sync.sync.engine import Engine
from bucket_sync.sync.settings import TransferSettings
from bucket_sync.sync.listener import FanOut, Listener, Tally
from bucket_sync.sync.executors import inline
from bucket_sync.sync.model import Direction, Status, TransferResult
from tests.support.memory_remote import MemoryRemote

T = 1_700_000_000_123_456_789  # an mtime with nanoseconds, as ext4 keeps them


class Recorder(Listener):
    """Every result, in order (inline executors: the order is the plan's)."""

    def __init__(self) -> None:
        self.results: list[TransferResult] = []
        self.planned: list[tuple[int, int]] = []

    def on_plan(self, files: int, total_bytes: int) -> None:
        self.planned.append((files, total_bytes))

    def on_result(self, result: TransferResult) -> None:
        self.results.append(result)

    def keys(self, status: Status) -> list[str]:
        return [r.key for r in self.results if r.status is status]


@pytest.fixture
def remote() -> MemoryRemote:
    return MemoryRemote()


@pytest.fixture
def engine():
    def make(direction: Direction, remote: MemoryRemote, *, local_root: str | Path | None = None, prefix: str = "p",
             **settings) -> tuple[Engine, Recorder, Tally]:
        recorder, tally = Recorder(), Tally()
        settings.setdefault("file_attempts", 1)
        made = Engine(remote, direction=direction, prefix=prefix,
                      local_root=str(local_root) if local_root is not None else None,
                      settings=TransferSettings(**settings), listener=FanOut(tally, recorder), tally=tally,
                      stop=threading.Event(), executors=inline)
        return made, recorder, tally

    return make


@pytest.fixture
def tree():
    def make(root: Path, files: dict[str, bytes], *, mtime_ns: int = T) -> Path:
        for rel, data in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, ns=(mtime_ns, mtime_ns))
        return root

    return make
