"""The modify window: mtimes compared at the coarser precision of the two sides (sync/diff.py), the
filesystem precision found by a probe or by the filesystem's type (sync/mtime_precision.py), and
--modify-window read as rclone reads durations (cli/durations.py)."""

from __future__ import annotations

import os
import threading

import pytest

from bucket_sync.cli.durations import parse_duration_ns
from bucket_sync.errors import UsageError
from bucket_sync.sync import mtime_precision
from bucket_sync.sync.diff import FINE_WINDOW_NS, DiffPolicy, decide_pair, mtimes_equal
from bucket_sync.sync.engine import Engine
from bucket_sync.sync.settings import TransferSettings
from bucket_sync.sync.listener import Listener, Tally
from bucket_sync.sync.model import Action, Direction, LocalFile, Reason, RemoteBlob

S = 1_000_000_000
T = 1_700_000_000 * S


def local(mtime_ns: int) -> LocalFile:
    return LocalFile("a.las", "/x/a.las", 10, mtime_ns)


def remote(mtime_ns: int, *, from_metadata: bool = True) -> RemoteBlob:
    return RemoteBlob("a.las", "a.las", 10, mtime_ns, None, mtime_from_metadata=from_metadata)


def test_without_a_window_mtimes_must_match_to_the_microsecond():
    assert mtimes_equal(local(T + 999), remote(T))
    assert not mtimes_equal(local(T + 1_000), remote(T))
    assert mtimes_equal(local(T + 900_000_000), remote(T, from_metadata=False)), "Last-Modified has whole seconds"


@pytest.mark.parametrize("delta_ns, window_ns, equal", [
    (1_999_999_999, 2 * S, True),  # a FAT disk rounded the mtime up to the next even second
    (2 * S, 2 * S, False),  # closer than the window, as rclone: exactly the window is a change
    (999_999_999, S, True),
    (1_500_000_000, S, False),
])
def test_a_window_makes_close_mtimes_equal_both_ways(delta_ns, window_ns, equal):
    policy = DiffPolicy(Action.DOWNLOAD, modify_window_ns=window_ns)
    for src, dst in ((remote(T), local(T + delta_ns)), (remote(T + delta_ns), local(T))):
        action, reason = decide_pair(src, dst, policy)
        assert (action is Action.SKIP and reason is Reason.UNCHANGED) is equal
        if not equal:
            assert (action, reason) == (Action.COMPARE, Reason.MTIME_DIFFERS)


def test_a_window_never_hides_a_size_change_or_overrides_checksum():
    policy = DiffPolicy(Action.UPLOAD, modify_window_ns=2 * S)
    assert decide_pair(LocalFile("a", "/a", 11, T), remote(T), policy) == (Action.UPLOAD, Reason.SIZE_CHANGED)
    checksum = DiffPolicy(Action.UPLOAD, checksum=True, modify_window_ns=2 * S)
    assert decide_pair(local(T), remote(T), checksum) == (Action.COMPARE, Reason.CHECKSUM)


def test_the_wider_window_wins():
    policy = DiffPolicy(Action.UPLOAD)
    assert policy.modify_window_ns == FINE_WINDOW_NS
    assert policy.with_window_at_least(None) is policy
    assert policy.with_window_at_least(10) is policy  # never narrower than the fine default
    assert policy.with_window_at_least(2 * S).with_window_at_least(S).modify_window_ns == 2 * S


class _Nothing(Listener):
    pass


def test_the_engine_applies_modify_window_to_every_plan():
    """watch builds its own policies: --modify-window reaches them through the settings."""
    def plan(settings: TransferSettings):
        engine = Engine(storage=None, direction=Direction.UP, prefix="", local_root=None,  # type: ignore[arg-type]
                        settings=settings, listener=_Nothing(), tally=Tally(), stop=threading.Event())
        return engine.plan(iter([local(T + S)]), iter([remote(T)]), DiffPolicy(Action.UPLOAD))

    assert plan(TransferSettings()).work and plan(TransferSettings()).skipped == 0
    widened = plan(TransferSettings(modify_window_ns=2 * S))
    assert not widened.work and widened.skipped == 1


# -- what the local filesystem keeps ---------------------------------------------------------------------

PROBE = 1_700_000_001_123_456_789


@pytest.mark.parametrize("got, step", [
    (PROBE, 1),  # ext4, APFS, btrfs: every nanosecond
    (1_700_000_001_123_456_700, 100),  # NTFS: 100 ns
    (1_700_000_001_120_000_000, 10_000_000),  # exFAT as Linux writes it: 10 ms
    (1_700_000_001_000_000_000, S),  # HFS+: truncated to the second
    (1_700_000_000_000_000_000, 2 * S),  # FAT: down to an even second
    (1_700_000_002_000_000_000, 2 * S),  # FAT: or up to one
    (1_600_000_000_000_000_000, None),  # the filesystem ignored utime: unknown
])
def test_granularity_of_what_stuck(got, step):
    assert mtime_precision.granularity(PROBE, got) == step


def test_the_probe_reads_a_real_filesystem_and_leaves_nothing(tmp_path):
    step = mtime_precision.probe(str(tmp_path / "not" / "yet"))  # the nearest existing folder is probed
    assert step is not None and step <= 1_000, "this machine's temporary folder keeps at least microseconds"
    assert mtime_precision.window_for(step) is None
    assert os.listdir(tmp_path) == []


def test_the_probe_sees_a_fat_disk(tmp_path, monkeypatch):
    real = os.utime

    def fat_utime(path, times=None, *, ns=None, **kw):  # what a FAT driver keeps: even seconds, rounded up
        if ns is not None:
            ns = tuple(-(-t // (2 * S)) * 2 * S for t in ns)
        return real(path, times, ns=ns, **kw)

    monkeypatch.setattr(os, "utime", fat_utime)
    assert mtime_precision.probe(str(tmp_path)) == 2 * S
    assert mtime_precision.window_for(2 * S) == 2 * S


@pytest.mark.skipif(os.name == "nt" or getattr(os, "geteuid", lambda: 1)() == 0,
                    reason="a read-only folder needs POSIX permissions and a user other than root")
def test_an_unwritable_destination_is_unknown(tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert mtime_precision.probe(str(tmp_path)) is None
    finally:
        tmp_path.chmod(0o700)


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 8:17 / /media/usb rw,nosuid - vfat /dev/sdb1 rw,fmask=0022
41 22 8:33 / /media/my\\040card rw shared:7 - exfat /dev/sdc1 rw
42 40 0:50 / /media/usb/inner rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize("path, kind", [
    ("/home/user/scans", "ext4"), ("/media/usb", "vfat"), ("/media/usb/DCIM/x.jpg", "vfat"),
    ("/media/my card/x", "exfat"), ("/media/usb/inner/x", "tmpfs"), ("/media/usbstick", "ext4"),
])
def test_the_filesystem_type_from_mountinfo(path, kind):
    assert mtime_precision.fs_type_from_mountinfo(MOUNTINFO, path) == kind


def test_upload_sources_by_filesystem_type(monkeypatch):
    kinds = {"/a": "ext4", "/b": "vfat", "/c": "exFAT", "/d": None}
    monkeypatch.setattr(mtime_precision, "fs_type", lambda path: kinds[path])
    assert mtime_precision.source_precision(["/a"]) is None
    assert mtime_precision.source_precision(["/a", "/c"]) == S  # GetVolumeInformationW says "exFAT"
    assert mtime_precision.source_precision(["/c", "/b", "/d"]) == 2 * S


# -- --modify-window ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, ns", [
    ("2s", 2 * S), ("500ms", S // 2), ("1m30s", 90 * S), ("1.5s", 1_500_000_000), ("2", 2 * S), ("0", 0),
    ("1ns", 1), ("3us", 3_000), ("3µs", 3_000), ("1h", 3600 * S), (" 2S ", 2 * S), (2, 2 * S), (0.5, S // 2),
    (None, None), ("", None),
])
def test_durations_as_rclone_reads_them(text, ns):
    assert parse_duration_ns(text, "--modify-window") == ns


@pytest.mark.parametrize("text", ["two", "2q", "-1", "s", "1s2", "-1s", True])
def test_a_bad_duration_is_a_usage_error_that_shows_the_form(text):
    with pytest.raises(UsageError) as info:
        parse_duration_ns(text, "--modify-window")
    assert "--modify-window" in info.value.message and info.value.exit_code == 2
