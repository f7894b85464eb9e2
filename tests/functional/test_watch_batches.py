"""watch's batches against the in-memory container, on a fake clock: the first reconcile, a batch of
changed files, a batch of deletions, and the refusal to empty the bucket from an empty folder. The
watcher is driven one step at a time (what its loop calls), without the observer thread or sleeps."""

from __future__ import annotations

import hashlib
import os

import pytest

from bucket_sync.app.watch import WatchRequest, Watcher
from bucket_sync.app.watch_queue import Sig
from bucket_sync.sas import ContainerSas, StaticSasSource
from bucket_sync.sync.settings import TransferSettings
from bucket_sync.sync.model import Action, Status
from tests.functional.conftest import T, Recorder

OLD = T - 3600 * 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Ref:
    """Stands for a ContainerRef: the SAS source watch watches, and open() giving the container."""

    def __init__(self, remote) -> None:
        self.source = StaticSasSource(ContainerSas.from_url("https://acct.blob.core.windows.net/c?sp=racwdl&sig=s"))
        self.remote = remote

    def open(self, **_options):
        return self.remote


@pytest.fixture
def watcher(tmp_path, remote):
    def make(*, delete: bool = True) -> tuple[Watcher, Recorder, Clock]:
        clock, recorder = Clock(), Recorder()
        req = WatchRequest(local_dir=str(tmp_path / "w"), prefix="p", settings=TransferSettings(), delete=delete,
                           debounce_s=1.0)
        w = Watcher(req, Ref(remote), recorder, status=lambda _event: None, clock=clock)
        w.runner.storage = remote
        w.runner.decide()
        return w, recorder, clock

    return make


def seed(remote, names: list[str]) -> None:
    for name in names:
        remote.put(name, b"r", hashlib.md5(b"r").digest(), OLD)


def step(w: Watcher, clock: Clock, seconds: float = 2.0) -> None:
    """What the loop does once the debounce window has passed."""
    clock.now += seconds
    w.loop.changes.handle(w.queue.take_due())


def test_the_first_reconcile_uploads_settled_files_deletes_extras_and_queues_changing_ones(tmp_path, tree, remote, watcher):
    root = tree(tmp_path / "w", {"a.txt": b"a", "sub/b.txt": b"b"}, mtime_ns=OLD)
    tree(root, {"busy.txt": b"still being written"}, mtime_ns=0)
    os.utime(root / "busy.txt")  # modified just now: inside the debounce window
    seed(remote, ["p/extra.txt"])
    w, recorder, clock = watcher()
    w.loop.reconciler.reconcile(initial=True)
    assert remote.names() == ["p/a.txt", "p/sub/b.txt"]
    assert "busy.txt" in w.queue
    assert sorted((r.op.value, r.key) for r in recorder.results if r.status is Status.OK) == [
        ("delete", "p/extra.txt"), ("upload", "p/a.txt"), ("upload", "p/sub/b.txt")]

    step(w, clock)
    assert remote.content("p/busy.txt") == b"still being written"


def test_a_batch_of_changes_uploads_only_what_changed(tmp_path, tree, remote, watcher):
    root = tree(tmp_path / "w", {"a.txt": b"a", "b.txt": b"b"}, mtime_ns=OLD)
    w, recorder, clock = watcher()
    w.loop.reconciler.reconcile(initial=True)
    remote.calls.clear()
    tree(root, {"a.txt": b"a, edited"}, mtime_ns=T)
    w.queue.touch("a.txt", Sig.of(str(root / "a.txt")))
    w.queue.touch("b.txt", Sig.of(str(root / "b.txt")))  # an event, but the file is as uploaded
    step(w, clock)
    assert remote.calls["put"] == 1 and remote.content("p/a.txt") == b"a, edited"
    assert len(w.queue) == 0


def test_a_batch_of_deletions_removes_the_blobs_of_files_gone(tmp_path, tree, remote, watcher):
    root = tree(tmp_path / "w", {"a.txt": b"a", "d/x.txt": b"x", "d/y.txt": b"y"}, mtime_ns=OLD)
    w, recorder, clock = watcher()
    w.loop.reconciler.reconcile(initial=True)
    for rel in ("a.txt", "d/x.txt", "d/y.txt"):
        os.remove(root / rel)
    os.rmdir(root / "d")
    w.queue.touch("a.txt", Sig.of(str(root / "a.txt")))
    w.queue.touch("d", Sig.of(str(root / "d")), was_dir=True)
    step(w, clock)
    assert remote.names() == []
    assert sorted(r.key for r in recorder.results if r.op is Action.DELETE and r.status is Status.OK) == [
        "p/a.txt", "p/d/x.txt", "p/d/y.txt"]


def test_without_delete_a_file_gone_stays_in_the_bucket(tmp_path, tree, remote, watcher):
    root = tree(tmp_path / "w", {"a.txt": b"a"}, mtime_ns=OLD)
    w, _, clock = watcher(delete=False)
    w.loop.reconciler.reconcile(initial=True)
    os.remove(root / "a.txt")
    w.queue.touch("a.txt", Sig.of(str(root / "a.txt")))
    step(w, clock)
    assert remote.names() == ["p/a.txt"]


def test_an_empty_folder_does_not_empty_the_bucket(tmp_path, remote, watcher):
    (tmp_path / "w").mkdir()
    seed(remote, ["p/a.txt", "p/b.txt"])
    w, recorder, _ = watcher()
    w.loop.reconciler.reconcile(initial=True)
    assert remote.names() == ["p/a.txt", "p/b.txt"] and remote.calls["delete"] == 0
    assert not recorder.results
