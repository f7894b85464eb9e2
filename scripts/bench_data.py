"""The bench's data sets, generated once into a cache folder and reused (their mtimes must stay put).

Full scale: 2,000 files of 16 KiB, 48 of 8 MiB, one of 1 GiB (the transfer rows), 20,000 of 1 KiB (the
no-op row) and one of 256 MiB (the raw ceiling). A scale below 1 shrinks counts and sizes (the smoke test).
Contents are random, so nothing along the way can compress them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024


def human_size(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


@dataclass(frozen=True)
class Spec:
    small_count: int
    small_size: int
    medium_count: int
    medium_size: int
    large_size: int
    noop_count: int
    noop_size: int
    ceiling_size: int

    @classmethod
    def for_scale(cls, scale: float) -> "Spec":
        def count(n: int, least: int) -> int:
            return max(least, round(n * scale))

        def size(n: int, least: int) -> int:
            return max(least, int(n * scale) // MiB * MiB)

        return cls(
            small_count=count(2000, 4), small_size=16 * KiB,
            medium_count=count(48, 2), medium_size=8 * MiB if scale >= 0.25 else 1 * MiB,
            # Above the 8 MiB block size even when tiny, so the block path is exercised.
            large_size=size(GiB, 12 * MiB),
            noop_count=count(20000, 20), noop_size=1 * KiB,
            ceiling_size=size(256 * MiB, 4 * MiB),
        )


@dataclass(frozen=True)
class DataSets:
    root: Path
    spec: Spec

    transfer = property(lambda self: self.root / "transfer")  # small/, medium/, large/ (download-all)
    small = property(lambda self: self.root / "transfer" / "small")
    medium = property(lambda self: self.root / "transfer" / "medium")
    large = property(lambda self: self.root / "transfer" / "large")
    noop = property(lambda self: self.root / "noop")
    ceiling = property(lambda self: self.root / "ceiling.bin")
    noop_count = property(lambda self: self.spec.noop_count)

    @property
    def transfer_bytes(self) -> int:
        s = self.spec
        return s.small_count * s.small_size + s.medium_count * s.medium_size + s.large_size

    def row_bytes(self, row: str) -> int:
        s = self.spec
        return {"upload-small": s.small_count * s.small_size, "upload-medium": s.medium_count * s.medium_size,
                "upload-large": s.large_size, "download-large": s.large_size, "download-large-md5": s.large_size,
                "download-all": self.transfer_bytes,
                "noop": s.noop_count * s.noop_size, "noop-2k": s.small_count * s.small_size,
                "noop-rw": s.small_count * s.small_size}[row]

    def describe(self, row: str) -> str:
        s = self.spec
        return {
            "upload-small": f"{s.small_count} × {human_size(s.small_size)}",
            "upload-medium": f"{s.medium_count} × {human_size(s.medium_size)}",
            "upload-large": f"1 × {human_size(s.large_size)}",
            "download-large": f"1 × {human_size(s.large_size)}",
            "download-large-md5": f"1 × {human_size(s.large_size)}, no piece digest",
            "download-all": f"{s.small_count + s.medium_count + 1} files, {human_size(self.transfer_bytes)}",
            "noop": f"{s.noop_count} × {human_size(s.noop_size)}, in sync",
            "noop-2k": f"{s.small_count} × {human_size(s.small_size)}, in sync, SAS with list",
            "noop-rw": f"{s.small_count} × {human_size(s.small_size)}, in sync, SAS sp=rw (no list)",
        }[row]


def _write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MiB)
            fh.write(os.urandom(n))
            left -= n


def _many(folder: Path, count: int, size: int, per_dir: int) -> None:
    # A tree, not one flat folder: closer to real data, and both tools walk it the same way.
    for i in range(count):
        _write_random(folder / f"d{i // per_dir:03d}" / f"f{i:05d}.bin", size)


def prepare_data(base: Path, scale: float, log: Callable[[str], None] = print) -> DataSets:
    spec = Spec.for_scale(scale)
    data = DataSets(base / f"scale-{scale:g}", spec)
    stamp = data.root / ".complete"
    want = json.dumps(spec.__dict__, sort_keys=True)
    if stamp.exists() and stamp.read_text() == want:
        return data
    log(f"bench: generating data sets in {data.root} (once; reused by later runs)")
    shutil.rmtree(data.root, ignore_errors=True)
    _many(data.small, spec.small_count, spec.small_size, per_dir=200)
    _many(data.medium, spec.medium_count, spec.medium_size, per_dir=1000)
    _write_random(data.large / "large.bin", spec.large_size)
    _many(data.noop, spec.noop_count, spec.noop_size, per_dir=1000)
    _write_random(data.ceiling, spec.ceiling_size)
    stamp.write_text(want)
    return data
