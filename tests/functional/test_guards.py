"""The mirror guards (--max-delete, an empty or missing source) on plans the planner made, and through
run_sync with the in-memory container: a refusal changes nothing, a dry run still shows the whole plan."""

from __future__ import annotations

import hashlib
import os

import pytest

from bucket_sync.app.sync_run import SyncRequest, check_mirror_guards, run_sync
from bucket_sync.errors import SafetyGuardError
from bucket_sync.sync.diff import DiffPolicy
from bucket_sync.sync.settings import TransferSettings
from bucket_sync.sync.keys import CASE_PROBE_PREFIX
from bucket_sync.sync.model import Action, Direction, Status
from bucket_sync.sync.mtime_precision import PROBE_PREFIX as MTIME_PROBE_PREFIX
from bucket_sync.sync.plan import plan
from bucket_sync.sync.scan import scan_tree
from tests.functional.conftest import T, Recorder


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BUCKET_SYNC_CACHE_DIR", str(tmp_path / "cache"))


def seed(remote, n: int) -> None:
    for i in range(n):
        remote.put(f"p/f{i:02d}.txt", b"x", hashlib.md5(b"x").digest(), T)


def mirror_up(local, **options) -> SyncRequest:
    settings = TransferSettings(dry_run=options.pop("dry_run", False), file_attempts=1)
    return SyncRequest(command="mirror", direction=Direction.UP, local=(str(local),), prefix="p", settings=settings,
                       mirror=True, **options)


def planned(local, remote):
    return plan(scan_tree(str(local)), remote.list("p"), DiffPolicy(Action.UPLOAD, delete_extras=True))


def test_max_delete_counts_the_planned_deletes_against_the_destination(tmp_path, tree, remote):
    local = tree(tmp_path / "src", {"f00.txt": b"x", "f01.txt": b"x", "f02.txt": b"x", "f03.txt": b"x"})
    seed(remote, 10)
    made = planned(local, remote)
    assert (len(made.deletes), made.dest_count) == (6, 10)
    with pytest.raises(SafetyGuardError) as refused:
        check_mirror_guards(mirror_up(local), made, source_exists=True)  # default 50%: 5 of 10
    assert refused.value.exit_code == 6 and "refusing to delete 6 of 10" in refused.value.message
    check_mirror_guards(mirror_up(local, max_delete="6"), made, source_exists=True)
    check_mirror_guards(mirror_up(local, max_delete="60%"), made, source_exists=True)
    check_mirror_guards(mirror_up(local, force=True), made, source_exists=True)
    check_mirror_guards(mirror_up(local, delete=False), made.keeping(deletes=()), source_exists=True)


def test_an_empty_source_is_refused_whatever_max_delete_allows(tmp_path, remote):
    (tmp_path / "src").mkdir()
    seed(remote, 1)
    made = planned(tmp_path / "src", remote)
    with pytest.raises(SafetyGuardError, match="empty or missing source"):
        check_mirror_guards(mirror_up(tmp_path / "src", max_delete="100%"), made, source_exists=True)
    with pytest.raises(SafetyGuardError, match="empty or missing source"):
        check_mirror_guards(mirror_up(tmp_path / "gone"), made, source_exists=False)


def test_a_refused_mirror_changes_nothing(tmp_path, tree, remote):
    local = tree(tmp_path / "src", {"new.txt": b"n"})
    seed(remote, 4)
    with pytest.raises(SafetyGuardError):
        run_sync(mirror_up(local), lambda: remote, Recorder())
    assert remote.calls["put"] == 4 and remote.calls["delete"] == 0  # only the seeding wrote
    assert remote.closed


def test_a_dry_run_shows_the_whole_plan_then_exits_6(tmp_path, tree, remote):
    local = tree(tmp_path / "src", {"new.txt": b"n", "f00.txt": b"x"})
    seed(remote, 4)
    recorder = Recorder()
    summary = run_sync(mirror_up(local, dry_run=True), lambda: remote, recorder)
    assert summary.exit_code == 6
    assert [(r.op, r.key) for r in recorder.results if r.status is Status.PLANNED] == [
        (Action.UPLOAD, "p/new.txt"), (Action.DELETE, "p/f01.txt"), (Action.DELETE, "p/f02.txt"),
        (Action.DELETE, "p/f03.txt")]
    assert summary.skipped == 1 and remote.names() == [f"p/f{i:02d}.txt" for i in range(4)]


def test_mirroring_an_empty_container_down_is_refused_and_leaves_no_probe_behind(tmp_path, tree, remote):
    dest = tree(tmp_path / "dest", {"keep.txt": b"k"})
    req = SyncRequest(command="mirror", direction=Direction.DOWN, local=(str(dest),), prefix="p",
                      settings=TransferSettings(file_attempts=1), mirror=True)
    with pytest.raises(SafetyGuardError, match="empty or missing source"):
        run_sync(req, lambda: remote, Recorder())
    assert os.listdir(dest) == ["keep.txt"]
    assert not any(n.startswith((CASE_PROBE_PREFIX, MTIME_PROBE_PREFIX)) for n in os.listdir(dest))
