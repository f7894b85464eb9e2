"""The pure diff (one pass over two sorted streams, a reason per action) and the mirror guards."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from bucket_sync.app.sync_run import SyncRequest, check_mirror_guards, parse_max_delete
from bucket_sync.errors import ExitCode, SafetyGuardError, UsageError
from bucket_sync.sync.diff import DiffPolicy, diff, mtimes_equal
from bucket_sync.sync.plan import Plan
from bucket_sync.sync.settings import TransferSettings
from bucket_sync.sync.model import Action, Direction, LocalFile, PlannedAction, Reason, RemoteBlob

S = 1_000_000_000
UP = DiffPolicy(transfer=Action.UPLOAD, delete_extras=True)
DOWN = DiffPolicy(transfer=Action.DOWNLOAD, delete_extras=True)


def local(key: str, size: int = 1, mtime: int = 100 * S) -> LocalFile:
    return LocalFile(key=key, path=f"/data/{key}", size=size, mtime_ns=mtime)


def blob(key: str, size: int = 1, mtime: int = 100 * S, meta: bool = True) -> RemoteBlob:
    return RemoteBlob(key=key, name=f"p/{key}", size=size, mtime_ns=mtime, md5=b"x" * 16, mtime_from_metadata=meta)


def decisions(sources, dests, policy=UP) -> dict[str, tuple[Action, Reason]]:
    return {a.key: (a.action, a.reason) for a in diff(sources, dests, policy)}


def test_every_case_gets_its_action_and_reason():
    sources = [local("a.new"), local("b.same"), local("c.size", size=2), local("d.mtime", mtime=200 * S)]
    dests = [blob("b.same"), blob("c.size"), blob("d.mtime"), blob("e.extra")]
    assert decisions(sources, dests) == {
        "a.new": (Action.UPLOAD, Reason.NEW),
        "b.same": (Action.SKIP, Reason.UNCHANGED),
        "c.size": (Action.UPLOAD, Reason.SIZE_CHANGED),
        "d.mtime": (Action.COMPARE, Reason.MTIME_DIFFERS),
        "e.extra": (Action.DELETE, Reason.EXTRA),
    }


def test_reasons_read_as_the_dry_run_prints_them():
    assert Reason.NEW.value == "new"
    assert Reason.SIZE_CHANGED.value == "changed size"
    assert Reason.CONTENT_CHANGED.value == "changed content"
    assert Reason.MTIME_DIFFERS.value == "same size, different mtime"
    assert Reason.EXTRA.value == "extra"


def test_no_delete_keeps_extras_out_of_the_plan():
    keep = DiffPolicy(transfer=Action.UPLOAD, delete_extras=False)
    assert decisions([local("a")], [blob("a"), blob("b")], keep) == {"a": (Action.SKIP, Reason.UNCHANGED)}


def test_checksum_and_overwrite():
    same = ([local("a")], [blob("a")])
    assert decisions(*same, DiffPolicy(Action.UPLOAD, checksum=True)) == {"a": (Action.COMPARE, Reason.CHECKSUM)}
    assert decisions(*same, DiffPolicy(Action.UPLOAD, overwrite=True)) == {"a": (Action.UPLOAD, Reason.OVERWRITE)}


def test_download_mirror_deletes_local_extras_and_rejects_unsafe_names():
    sources = [blob("../evil"), blob("ok")]
    dests = [local("ok"), local("stale")]
    got = decisions(sorted(sources, key=lambda e: e.key), dests, DOWN)
    assert got["../evil"] == (Action.REJECT, Reason.UNSAFE_NAME)
    assert got["ok"] == (Action.SKIP, Reason.UNCHANGED)
    assert got["stale"] == (Action.DELETE, Reason.EXTRA)


def test_mtime_from_last_modified_compares_whole_seconds():
    assert mtimes_equal(local("a", mtime=100 * S + 700_000_000), blob("a", mtime=100 * S, meta=False))
    assert not mtimes_equal(local("a", mtime=100 * S + 700_000_000), blob("a", mtime=100 * S, meta=True))


def test_folder_sorts_after_a_sibling_file_with_a_dot():
    # "a.txt" < "a/b" in plain string order: both sides use it, so nothing is seen as new and extra.
    keys = ["a.txt", "a/b"]
    assert sorted(keys) == keys
    assert set(decisions([local(k) for k in keys], [blob(k) for k in keys]).values()) == {(Action.SKIP, Reason.UNCHANGED)}


names = st.lists(st.text("ab/.", min_size=1, max_size=4), unique=True).map(sorted)


@given(names, names)
def test_each_key_is_decided_exactly_once(src_keys, dst_keys):
    actions = list(diff([local(k) for k in src_keys], [blob(k) for k in dst_keys], UP))
    assert sorted(a.key for a in actions) == sorted(set(src_keys) | set(dst_keys))
    for a in actions:
        if a.key not in dst_keys:
            assert a.action is Action.UPLOAD and a.reason is Reason.NEW
        elif a.key not in src_keys:
            assert a.action is Action.DELETE and a.reason is Reason.EXTRA


def test_diff_is_lazy_so_memory_does_not_grow_with_unchanged_files():
    def endless_unchanged(n):
        for i in range(n):
            yield local(f"{i:09d}")

    def endless_remote(n):
        for i in range(n):
            yield blob(f"{i:09d}")

    stream = diff(endless_unchanged(10**9), endless_remote(10**9), UP)
    first = [next(stream) for _ in range(3)]  # returns at once: nothing is collected up front
    assert [a.action for a in first] == [Action.SKIP] * 3


# -- guards --------------------------------------------------------------------------------------

def request(**kw) -> SyncRequest:
    return SyncRequest(command="mirror", direction=Direction.UP, local=("/data",), prefix="p",
                       settings=TransferSettings(), mirror=True, **kw)


def plan_with(deletes: int, dest_count: int, source_count: int = 1) -> Plan:
    extra = [PlannedAction(Action.DELETE, Reason.EXTRA, f"x{i}", None, blob(f"x{i}")) for i in range(deletes)]
    return Plan(deletes=extra, dest_count=dest_count, source_count=source_count)


@pytest.mark.parametrize("max_delete, deletes, dest, refused", [
    ("50%", 5, 10, False),
    ("50%", 6, 10, True),
    ("50%", 1, 1, True),  # deleting the only file is 100%
    ("0", 1, 100, True),
    ("10", 10, 10, False),
    ("10", 11, 100, True),
    ("100%", 10, 10, False),
])
def test_max_delete(max_delete, deletes, dest, refused):
    req, plan = request(max_delete=max_delete), plan_with(deletes, dest)
    if refused:
        with pytest.raises(SafetyGuardError) as info:
            check_mirror_guards(req, plan, source_exists=True)
        assert info.value.exit_code == ExitCode.GUARD
        assert f"{deletes} of {dest}" in info.value.message
    else:
        check_mirror_guards(req, plan, source_exists=True)
    check_mirror_guards(request(max_delete=max_delete, force=True), plan, source_exists=True)


def test_no_delete_never_trips_max_delete():
    check_mirror_guards(request(max_delete="0", delete=False), plan_with(5, 5), source_exists=True)


@pytest.mark.parametrize("exists, count", [(False, 0), (True, 0)])
def test_empty_or_missing_source(exists, count):
    plan = plan_with(0, 3, source_count=count)
    with pytest.raises(SafetyGuardError, match="empty or missing source"):
        check_mirror_guards(request(), plan, source_exists=exists)
    check_mirror_guards(request(force=True), plan, source_exists=exists)


@pytest.mark.parametrize("text, parsed", [("100", (100, None)), ("10%", (None, 10.0)), (" 2.5 % ", (None, 2.5)), (7, (7, None))])
def test_parse_max_delete(text, parsed):
    assert parse_max_delete(text) == parsed


@pytest.mark.parametrize("text", ["lots", "-1", "150%", "1e3", ""])
def test_parse_max_delete_rejects(text):
    with pytest.raises(UsageError):
        parse_max_delete(text)


def test_planning_counts_unchanged_files_without_keeping_them():
    """A no-op mirror holds nothing per unchanged file: memory stays flat however many there are."""
    import tracemalloc

    from bucket_sync.sync.engine import Engine
    from bucket_sync.sync.listener import Tally

    n = 20_000  # kept, they would take ~10 MB
    tally = Tally()
    engine = Engine(None, direction=Direction.UP, prefix="p", local_root=None,  # type: ignore[arg-type]
                    settings=TransferSettings(), listener=tally, tally=tally)
    tracemalloc.start()
    try:
        plan = engine.plan((local(f"{i:09d}") for i in range(n)), (blob(f"{i:09d}") for i in range(n)), UP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plan.skipped == n and not plan.work and not plan.deletes
    assert (plan.source_count, plan.dest_count) == (n, n)
    assert tally.summary("mirror").skipped == n
    assert peak < 2 * 1024 * 1024, f"planning {n} unchanged files peaked at {peak} bytes"
