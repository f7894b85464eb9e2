"""README.md, "Windows, macOS and Linux", through the real command: on a destination that keeps coarse mtimes (a FAT
disk, simulated by a sitecustomize whose os.utime keeps even seconds, as a FAT driver does), the second download finds
every file unchanged instead of hashing them all again; --modify-window (and its BUCKET_SYNC_ variable) widens the
comparison as rclone's does."""

from __future__ import annotations

import os
import textwrap

import pytest

pytestmark = pytest.mark.integration

S = 1_000_000_000
FILES = {f"scan/{i:02d}.las": os.urandom(1000 + i) for i in range(6)}

FAT_SITECUSTOMIZE = textwrap.dedent('''
    """A FAT disk for bucket-sync's tests: every mtime set is kept to an even second (rounded up)."""
    import os

    _real_utime = os.utime


    def _fat_utime(path, times=None, *, ns=None, **kw):
        if ns is not None:
            ns = tuple(-(-t // 2_000_000_000) * 2_000_000_000 for t in ns)
        elif times is not None:
            times = tuple(-(-int(t * 1e9) // 2_000_000_000) * 2.0 for t in times)
        return _real_utime(path, times, ns=ns, **kw) if ns is not None else _real_utime(path, times, **kw)


    os.utime = _fat_utime
''')


@pytest.fixture
def fat_disk(tmp_path):
    site = tmp_path / "simulated-fat"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAT_SITECUSTOMIZE)
    return {"PYTHONPATH": str(site)}


def reasons(result) -> dict[str, str]:
    return {e["key"]: e.get("reason") for e in result.transfers(status="skipped")}


def test_a_fat_destination_is_compared_at_two_seconds(cli, sas_url, fat_disk, tmp_path):
    url, container = sas_url
    for n, (name, data) in enumerate(FILES.items()):
        # Odd seconds and nanoseconds: what a FAT disk cannot keep.
        container.upload_blob(name, data, metadata={"mtime": f"2026-03-0{1 + n}T10:00:0{2 * n + 1}.123456789Z"})

    dest = tmp_path / "usb-stick"
    first = cli("download", url, dest, "--json", env=fat_disk)
    assert first.returncode == 0 and first.summary["downloaded"] == len(FILES), first
    assert all(p.stat().st_mtime_ns % (2 * S) == 0 for p in dest.rglob("*.las")), "the simulation took effect"

    again = cli("download", url, dest, "--json", "-v", env=fat_disk)
    assert again.returncode == 0 and again.summary["downloaded"] == 0, again
    assert set(reasons(again).values()) == {"unchanged"}, ("every file unchanged, none hashed again", again)

    # A mirror down sees the same: nothing to fetch, nothing to fix.
    mirror = cli("mirror", url, dest, "--json", "-v", env=fat_disk)
    assert mirror.returncode == 0 and set(reasons(mirror).values()) == {"unchanged"}, mirror


def test_modify_window_as_rclone(cli, sas_url, make_files, tmp_path):
    url, container = sas_url
    src = make_files(tmp_path / "src", {"a.las": b"same bytes", "b.las": b"other bytes"})
    assert cli("upload", src, url).returncode == 0
    for path in src.iterdir():  # the same content, 1.5 s later (a copy tool that rounds, a coarse disk)
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_500_000_000))

    widened = cli("upload", src, url, "--json", "-v", "--modify-window", "2s")
    assert widened.returncode == 0 and widened.summary["uploaded"] == 0, widened
    assert reasons(widened) == {"a.las": "unchanged", "b.las": "unchanged"}, widened

    from_env = cli("upload", src, url, "--json", "-v", env={"BUCKET_SYNC_MODIFY_WINDOW": "1m"})
    assert reasons(from_env) == {"a.las": "unchanged", "b.las": "unchanged"}, from_env

    fine = cli("upload", src, url, "--json", "-v")  # the default: the MD5 decides, and the mtime is fixed
    assert fine.returncode == 0 and fine.summary["uploaded"] == 0, fine
    assert reasons(fine) == {"a.las": "same size, different mtime", "b.las": "same size, different mtime"}, fine

    bad = cli("upload", src, url, "--modify-window", "soon")
    assert bad.returncode == 2 and "--modify-window" in bad.stderr and "Traceback" not in bad.stderr, bad
