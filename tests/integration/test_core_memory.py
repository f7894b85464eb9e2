"""Bounded memory: a file much larger than the memory budget goes up and down block by block."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

FILE_MIB = 320
LIMIT_MB = 150  # README.md, "Performance": peak RSS under 150 MB

# Runs the command as a grandchild and reports its peak RSS (ru_maxrss of waited-for children, KiB).
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_rss_mb(cli, *args: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(cli.executable), *args], env=cli.env_for(),
                         capture_output=True, text=True, timeout=300)
    code, kib = out.stdout.split()
    return int(code), int(kib) / 1024


def test_large_file_round_trip_stays_within_the_memory_bound(cli, listing_itwin, bucket_container, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    big = src / "cloud.las"
    with open(big, "wb") as fh:  # a real (non-sparse) pattern so MD5s are meaningful
        chunk = os.urandom(1024 * 1024)
        for _ in range(FILE_MIB):
            fh.write(chunk)
    remote = f"itwin://{listing_itwin}/mem"

    code, up_mb = peak_rss_mb(cli, "upload", str(src), remote, "-q")
    assert code == 0
    assert up_mb < LIMIT_MB, f"upload of a {FILE_MIB} MiB file peaked at {up_mb:.0f} MB"
    props = bucket_container(listing_itwin).get_blob_client("mem/cloud.las").get_blob_properties()
    assert props.size == FILE_MIB * 1024 * 1024

    code, down_mb = peak_rss_mb(cli, "download", remote, str(tmp_path / "dst"), "-q")
    assert code == 0
    assert down_mb < LIMIT_MB, f"download of a {FILE_MIB} MiB file peaked at {down_mb:.0f} MB"
    assert (tmp_path / "dst" / "cloud.las").stat().st_size == big.stat().st_size
    print(f"peak RSS: upload {up_mb:.0f} MB, download {down_mb:.0f} MB")
