"""Plans made from a real local tree and a container listing, run by the engine: what ends up where."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest

from bucket_sync.sync.diff import DiffPolicy
from bucket_sync.sync.model import Action, Direction, Reason, Status
from bucket_sync.sync.plan import plan
from bucket_sync.sync.scan import scan_tree
from tests.functional.conftest import T

OTHER_T = T - 3600 * 1_000_000_000

UP_MIRROR = DiffPolicy(Action.UPLOAD, delete_extras=True)
DOWN_MIRROR = DiffPolicy(Action.DOWNLOAD, delete_extras=True)


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def seed(remote, blobs: dict[str, bytes], mtime_ns: int = T) -> None:
    for name, data in blobs.items():
        remote.put(name, data, md5(data), mtime_ns)


def test_an_upload_mirror_makes_the_container_identical_and_says_why_for_each_key(tmp_path, tree, remote, engine):
    tree(tmp_path, {"new.txt": b"new", "grown.txt": b"longer now", "same.txt": b"same", "sub/touched.txt": b"abc"})
    seed(remote, {"p/grown.txt": b"short", "p/same.txt": b"same", "p/old.txt": b"old"})
    seed(remote, {"p/sub/touched.txt": b"xyz"}, mtime_ns=OTHER_T)  # same size, other mtime, other content
    made = plan(scan_tree(str(tmp_path)), remote.list("p"), UP_MIRROR)
    assert {a.key: (a.action, a.reason) for a in made.work} == {
        "grown.txt": (Action.UPLOAD, Reason.SIZE_CHANGED),
        "new.txt": (Action.UPLOAD, Reason.NEW),
        "sub/touched.txt": (Action.COMPARE, Reason.MTIME_DIFFERS),
    }
    assert [(d.key, d.reason) for d in made.deletes] == [("old.txt", Reason.EXTRA)]
    assert (made.skipped, made.source_count, made.dest_count) == (1, 4, 4)

    run, recorder, tally = engine(Direction.UP, remote)
    run.run(made)
    assert remote.names() == ["p/grown.txt", "p/new.txt", "p/same.txt", "p/sub/touched.txt"]
    assert remote.content("p/sub/touched.txt") == b"abc"
    assert remote.get("p/sub/touched.txt", "sub/touched.txt").mtime_ns == T
    assert {(r.op, r.key, r.status) for r in recorder.results} == {
        (Action.UPLOAD, "p/grown.txt", Status.OK), (Action.UPLOAD, "p/new.txt", Status.OK),
        (Action.UPLOAD, "p/sub/touched.txt", Status.OK), (Action.DELETE, "p/old.txt", Status.OK)}
    assert [r.reason for r in recorder.results if r.key == "p/sub/touched.txt"] == [Reason.CONTENT_CHANGED]
    assert tally.summary("mirror").exit_code == 0

    again = plan(scan_tree(str(tmp_path)), remote.list("p"), UP_MIRROR)
    assert (again.work, again.deletes, again.skipped) == ((), (), 4)  # the second run has nothing to do


def test_same_content_with_another_mtime_only_fixes_the_mtime(tmp_path, tree, remote, engine):
    tree(tmp_path, {"a.txt": b"abc"})
    seed(remote, {"p/a.txt": b"abc"}, mtime_ns=OTHER_T)
    made = plan(scan_tree(str(tmp_path)), remote.list("p"), UP_MIRROR)
    run, recorder, _ = engine(Direction.UP, remote)
    remote.calls.clear()
    run.run(made)
    assert remote.calls["put"] == 0 and remote.calls["set_mtime"] == 1
    assert remote.get("p/a.txt", "a.txt").mtime_ns == T
    assert [(r.key, r.status, r.error) for r in recorder.results] == [("p/a.txt", Status.SKIPPED, None)]


def test_a_dry_run_reports_every_planned_action_and_changes_nothing(tmp_path, tree, remote, engine):
    tree(tmp_path, {"a.txt": b"a"})
    seed(remote, {"p/gone.txt": b"g"})
    made = plan(scan_tree(str(tmp_path)), remote.list("p"), UP_MIRROR)
    run, recorder, tally = engine(Direction.UP, remote, dry_run=True)
    remote.calls.clear()
    run.run(made)
    assert [(r.op, r.key, r.status, r.reason) for r in recorder.results] == [
        (Action.UPLOAD, "p/a.txt", Status.PLANNED, Reason.NEW), (Action.DELETE, "p/gone.txt", Status.PLANNED, Reason.EXTRA)]
    assert remote.names() == ["p/gone.txt"] and sum(remote.calls.values()) == 0
    assert tally.summary("mirror").planned == 2


def test_a_plan_is_frozen_and_narrowing_it_makes_a_new_one(tmp_path, tree, remote):
    tree(tmp_path, {"a.txt": b"a", "b.txt": b"b"})
    seed(remote, {"p/x.txt": b"x"})
    made = plan(scan_tree(str(tmp_path)), remote.list("p"), UP_MIRROR)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.work = ()  # type: ignore[misc]
    narrowed = made.keeping(work=[a for a in made.work if a.key == "a.txt"], deletes=())
    assert [a.key for a in narrowed.work] == ["a.txt"] and not narrowed.deletes
    assert [a.key for a in made.work] == ["a.txt", "b.txt"] and len(made.deletes) == 1  # untouched
    assert (narrowed.source_count, narrowed.dest_count) == (2, 1)  # the guards compare with what was seen


def test_unchanged_pairs_are_kept_only_when_the_policy_asks(tmp_path, tree, remote):
    tree(tmp_path, {"a.txt": b"a"})
    seed(remote, {"p/a.txt": b"a"})
    counted = plan(scan_tree(str(tmp_path)), remote.list("p"), UP_MIRROR)
    kept = plan(scan_tree(str(tmp_path)), remote.list("p"), dataclasses.replace(UP_MIRROR, keep_unchanged=True))
    assert (counted.skipped, counted.unchanged) == (1, ())
    assert kept.skipped == 1 and [(a.key, a.reason) for a in kept.unchanged] == [("a.txt", Reason.UNCHANGED)]


def test_a_download_mirror_writes_files_with_the_blobs_mtimes_and_removes_extras(tmp_path, tree, remote, engine):
    dest = tree(tmp_path / "dest", {"stale/extra.txt": b"x", "keep.txt": b"keep"})
    seed(remote, {"p/keep.txt": b"keep", "p/d/e/f.bin": os.urandom(3000)})
    made = plan(remote.list("p"), scan_tree(str(dest)), DOWN_MIRROR)
    run, recorder, tally = engine(Direction.DOWN, remote, local_root=dest, block_size=1024)  # f.bin: 3 ranges
    run.run(made)
    assert (dest / "d/e/f.bin").read_bytes() == remote.content("p/d/e/f.bin")
    assert os.stat(dest / "d/e/f.bin").st_mtime_ns == T
    assert not (dest / "stale").exists()  # the folder its delete emptied goes too
    assert remote.calls["stream_range"] == 3 and tally.summary("mirror").exit_code == 0
    assert sorted(os.listdir(dest)) == ["d", "keep.txt"]


def test_a_blob_rewritten_after_the_listing_fails_instead_of_mixing_versions(tmp_path, remote, engine):
    seed(remote, {"p/a.bin": b"1" * 4000})
    made = plan(remote.list("p"), iter(()), DOWN_MIRROR)
    seed(remote, {"p/a.bin": b"2" * 4000})  # same size: only the ETag tells
    run, recorder, tally = engine(Direction.DOWN, remote, local_root=tmp_path, block_size=1024)
    run.run(made)
    [failed] = recorder.results
    assert failed.status is Status.FAILED and "changed while it was being read" in failed.error
    assert os.listdir(tmp_path) == []  # neither the file nor its partial
    assert tally.summary("download").exit_code == 1


def test_planning_a_download_touches_neither_side(tmp_path, remote, engine):
    """The case probe ran before (sync_run): planning itself writes no probe file and asks storage nothing."""
    seed(remote, {"p/README.md": b"1", "p/readme.md": b"2", "p/../evil": b"3"})
    blobs = remote.list("p")
    remote.calls.clear()
    made = plan(blobs, iter(()), dataclasses.replace(DOWN_MIRROR, case_insensitive=True))
    assert os.listdir(tmp_path) == [] and sum(remote.calls.values()) == 0
    assert [a.key for a in made.work] == ["README.md"]
    assert {a.key: a.reason for a in made.rejected} == {"../evil": Reason.UNSAFE_NAME, "readme.md": Reason.NAME_CLASH}

    run, recorder, tally = engine(Direction.DOWN, remote, local_root=tmp_path)
    run.run(made)
    assert os.listdir(tmp_path) == ["README.md"]
    assert sorted(r.key for r in recorder.results if r.status is Status.FAILED) == ["p/../evil", "p/readme.md"]
    assert tally.summary("mirror").exit_code == 1
