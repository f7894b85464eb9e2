"""Watch mode's pure logic, driven by a fake clock: debouncing, the stability rule, retries, batch outcomes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from bucket_sync.app.watch_auth import AuthPolicy
from bucket_sync.app.watch_batch import BatchWatch
from bucket_sync.app.watch_lookup import common_folder
from bucket_sync.app.watch_loop import Backoff
from bucket_sync.app.watch_queue import ChangeQueue, Kind, Sig, Verdict, retry_delay, verdict
from bucket_sync.app.watch_observer import QueueingHandler, start_observer
from bucket_sync.errors import AuthError, PermissionDeniedError, TransientError
from bucket_sync.sas import ContainerSas, StaticSasSource
from bucket_sync.sync.listener import Listener
from bucket_sync.sync.filters import PathFilter
from bucket_sync.sync.model import Action, Status, TransferResult


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def f(size: int, mtime: int = 1) -> Sig:
    return Sig(Kind.FILE, size, mtime)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def queue(clock):
    return ChangeQueue(debounce_s=1.0, clock=clock, open_grace_s=30.0)


def check(queue: ChangeQueue, clock: Clock, now_sig: Sig):
    """Take what is due and judge it as the watcher does, given the file looks like ``now_sig`` now."""
    return [(p.key, verdict(p, now_sig, clock(), debounce_s=queue.debounce_s, open_grace_s=queue.open_grace_s))
            for p in queue.take_due()]


def test_nothing_is_due_before_the_debounce_window_has_passed(queue, clock):
    queue.touch("a.jpg", f(10))
    clock.advance(0.9)
    assert queue.take_due() == []
    clock.advance(0.2)
    assert check(queue, clock, f(10)) == [("a.jpg", Verdict.READY)]


def test_a_burst_of_events_on_one_path_collapses_into_one_check(queue, clock):
    for size in range(1, 20):
        queue.touch("a.jpg", f(size, size))
        clock.advance(0.1)
    assert len(queue) == 1
    clock.advance(1.0)
    assert check(queue, clock, f(19, 19)) == [("a.jpg", Verdict.READY)]
    assert queue.take_due() == [] and len(queue) == 0


def test_each_event_pushes_the_check_back(queue, clock):
    queue.touch("a.jpg", f(1))
    clock.advance(0.8)
    queue.touch("a.jpg", f(2))
    clock.advance(0.8)  # 1.6 s after the first event, 0.8 s after the last
    assert queue.take_due() == []
    clock.advance(0.3)
    assert check(queue, clock, f(2)) == [("a.jpg", Verdict.READY)]


def test_a_file_that_grew_since_its_last_event_waits(queue, clock):
    """A writer that writes without the watcher seeing events (polling, missed events) is caught by stat."""
    queue.touch("big.las", f(100))
    clock.advance(1.1)
    assert check(queue, clock, f(250, 2)) == [("big.las", Verdict.WAIT)]


def test_written_but_not_closed_is_held_until_the_close(queue, clock):
    queue.touch("slow.bin", f(10), wrote=True)
    clock.advance(5)  # the writer pauses far longer than the debounce window
    [p] = queue.take_due()
    assert verdict(p, f(10), clock(), debounce_s=1, open_grace_s=30) is Verdict.WAIT
    queue.requeue(p, delay=1.0)
    queue.touch("slow.bin", f(10), closed=True)
    clock.advance(1.1)
    assert check(queue, clock, f(10)) == [("slow.bin", Verdict.READY)]


def test_a_lost_close_event_holds_a_file_only_for_the_open_grace(queue, clock):
    queue.touch("slow.bin", f(10), wrote=True)
    clock.advance(31)
    assert check(queue, clock, f(10)) == [("slow.bin", Verdict.READY)]


def test_missing_folder_and_special_paths(queue, clock):
    p_sig = f(1)
    queue.touch("x", p_sig)
    clock.advance(2)
    [p] = queue.take_due()
    assert verdict(p, Sig(Kind.MISSING), clock(), debounce_s=1, open_grace_s=30) is Verdict.GONE
    assert verdict(p, Sig(Kind.DIR), clock(), debounce_s=1, open_grace_s=30) is Verdict.FOLDER
    assert verdict(p, Sig(Kind.LINK), clock(), debounce_s=1, open_grace_s=30) is Verdict.SKIP


def test_requeue_never_overrides_a_newer_event(queue, clock):
    queue.touch("a", f(1))
    clock.advance(1.5)
    [p] = queue.take_due()
    queue.touch("a", f(2), was_dir=False)  # the file changed while the old entry was being handled
    queue.requeue(p, delay=30)
    clock.advance(1.1)
    due = queue.take_due()
    assert [(d.key, d.sig) for d in due] == [("a", f(2))]


def test_due_entries_come_out_earliest_first_and_limited(queue, clock):
    for i in range(5):
        queue.touch(f"k{i}", f(i))
        clock.advance(0.01)
    clock.advance(2)
    first = queue.take_due(limit=3)
    assert [p.key for p in first] == ["k0", "k1", "k2"]
    assert [p.key for p in queue.take_due()] == ["k3", "k4"]


def test_next_due_skips_superseded_entries(queue, clock):
    queue.touch("a", f(1))
    clock.advance(0.5)
    queue.touch("a", f(2))
    assert queue.next_due() == pytest.approx(clock() + 1.0)


def test_real_stat_signatures(tmp_path):
    path = tmp_path / "a.txt"
    assert Sig.of(str(path)).kind is Kind.MISSING
    path.write_bytes(b"abc")
    sig = Sig.of(str(path))
    assert sig.kind is Kind.FILE and sig.size == 3
    assert Sig.of(str(tmp_path)).kind is Kind.DIR
    (tmp_path / "link").symlink_to(path)
    assert Sig.of(str(tmp_path / "link")).kind is Kind.LINK
    assert Sig.of(str(tmp_path / "link"), follow_symlinks=True).kind is Kind.FILE


def test_backoff_doubles_and_resets(clock):
    b = Backoff(clock, base_s=1, max_s=30)
    assert [b.failed() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert b.waiting()
    b.succeeded()
    assert not b.waiting() and b.failures == 0
    assert retry_delay(1) == 1 and retry_delay(10) == 30


def test_common_folder():
    assert common_folder(["a/b/1.jpg", "a/b/2.jpg", "a/c/3.jpg"]) == "a"
    assert common_folder(["a/1.jpg", "top.txt"]) == ""
    assert common_folder(["x/y/z/1", "x/y/z/2"]) == "x/y/z"


class Collect(Listener):
    def __init__(self) -> None:
        self.results: list[TransferResult] = []

    def on_result(self, result: TransferResult) -> None:
        self.results.append(result)


def result(key: str, status: Status) -> TransferResult:
    return TransferResult(Action.UPLOAD, key, 1, status)


def test_batch_stops_early_when_everything_fails_in_a_row():
    inner = Collect()
    batch = BatchWatch("pre", inner, outage_after=4)
    for i in range(3):
        batch.on_result(result(f"pre/{i}", Status.FAILED))
    assert not batch.stop.is_set()
    batch.on_result(result("pre/3", Status.FAILED))
    assert batch.stop.is_set()
    assert len(inner.results) == 4  # still reported
    assert batch.unfinished(["0", "1", "9"]) == ["0", "1", "9"]


def test_batch_with_a_success_is_not_an_outage():
    batch = BatchWatch("", Collect(), outage_after=2)
    batch.on_result(result("ok.txt", Status.OK))
    for i in range(5):
        batch.on_result(result(f"bad{i}", Status.FAILED))
    assert not batch.stop.is_set()
    assert batch.unfinished(["ok.txt", "bad0"]) == ["bad0"]


def test_batch_probe_tells_an_outage_from_bad_files():
    class Down:
        def get(self, name, key):
            raise TransientError("connection refused")

    class Up:
        def get(self, name, key):
            return None

    batch = BatchWatch("", Collect(), outage_after=2)
    batch.on_result(result("a", Status.FAILED))
    assert batch.reachable(Up(), ["a"]) is True
    assert batch.reachable(Down(), ["a"]) is False


class ApiLikeSource:
    def current(self):
        raise AssertionError("not used")


def test_auth_policy(clock):
    static = AuthPolicy(StaticSasSource(ContainerSas.from_url("http://127.0.0.1:1/acct/cont?sv=1&sig=x")), clock)
    static.succeeded()
    assert not static.survivable(AuthError("storage refused the SAS"))  # a fixed SAS cannot get better
    assert static.survivable(TransientError("down"))

    api = AuthPolicy(ApiLikeSource(), clock)
    assert not api.survivable(AuthError("401"))  # before the first reconcile: fail fast
    api.succeeded()
    assert not api.survivable(PermissionDeniedError("no w permission"))
    assert api.survivable(AuthError("token renewal failed"))
    clock.advance(AuthPolicy.GIVE_UP_S - 1)
    assert api.survivable(AuthError("token renewal failed"))
    clock.advance(2)
    assert not api.survivable(AuthError("token renewal failed"))


def test_handler_maps_paths_to_keys(tmp_path, queue):
    h = QueueingHandler(str(tmp_path), queue, PathFilter.from_options(exclude=("*.tmp",)), follow_symlinks=False)
    assert h.key_for(str(tmp_path / "a" / "b.jpg")) == "a/b.jpg"
    assert h.key_for(str(tmp_path)) is None
    assert h.key_for(str(tmp_path.parent / "elsewhere")) is None
    assert h.key_for(str(tmp_path / "x.bucket-sync-partial")) is None


def test_observer_falls_back_to_polling_when_native_watching_fails(tmp_path, queue, caplog):
    class Exhausted:
        def schedule(self, *a, **kw):
            pass

        def start(self):
            raise OSError(28, "inotify watch limit reached")

        def stop(self):
            pass

    started = []

    class FakePolling:
        def __init__(self, timeout):
            self.timeout = timeout

        def schedule(self, *a, **kw):
            pass

        def start(self):
            started.append(self)

    h = QueueingHandler(str(tmp_path), queue, PathFilter(), follow_symlinks=False)
    observer, mode = start_observer(str(tmp_path), h, polling=False, native_cls=Exhausted, polling_cls=FakePolling)
    assert mode == "polling" and started == [observer]
    assert "falling back to polling" in caplog.text
    assert h.close_events is False


def test_real_native_observer_queues_a_written_file(tmp_path, clock):
    q = ChangeQueue(debounce_s=0.0, clock=clock)
    h = QueueingHandler(str(tmp_path), q, PathFilter(), follow_symlinks=False)
    observer, mode = start_observer(str(tmp_path), h, polling=False)
    try:
        # (A file written into a folder created a moment before may precede the folder's own watch: the
        # folder's event covers it, as the watcher scans a new folder. Here: a file in the watched root.)
        (tmp_path / "x.txt").write_bytes(b"12345")
        got = threading.Event()
        for _ in range(200):  # up to 10 s: inotify delivery lags on a loaded 2-core machine
            if "x.txt" in q:
                got.set()
                break
            time.sleep(0.05)
        assert got.is_set(), "no event for x.txt"
        if os.uname().sysname == "Linux":
            assert mode == "native" and h.close_events
    finally:
        observer.stop()
        observer.join()


def test_a_file_that_changed_while_uploading_is_requeued_not_reported_failed(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"v1")
    inner = Collect()
    seen = Sig.of(str(path))
    batch = BatchWatch("", inner, outage_after=2, expected={"a.txt": (str(path), seen), "b.txt": (str(path), seen)})
    batch.on_result(result("b.txt", Status.FAILED))  # unchanged file: a real failure, reported
    path.write_bytes(b"version 2")
    batch.on_result(result("a.txt", Status.FAILED))  # changed since it was judged ready: quietly queued again
    assert [r.key for r in inner.results] == ["b.txt"]
    assert batch.unfinished(["a.txt", "b.txt"]) == ["a.txt", "b.txt"]


def test_healthy_notices_a_dead_emitter():
    class T:
        def __init__(self, alive):
            self.alive = alive

        def is_alive(self):
            return self.alive

    class Obs(T):
        def __init__(self, alive, emitters):
            super().__init__(alive)
            self.emitters = emitters

    from bucket_sync.app.watch_observer import healthy

    assert healthy(Obs(True, {T(True)}))
    assert not healthy(Obs(True, {T(False)}))
    assert not healthy(Obs(False, set()))


STUCK_WATCHER = r"""
import sys, threading, time
from bucket_sync.app.watch import serve
from bucket_sync.sync.listener import Tally

class Stuck:  # a transfer hung on a dead connection: run() ignores stop()
    def __init__(self):
        self.stopping = threading.Event()
        self.tally = Tally()
    def stop(self):
        self.stopping.set()
    def run(self):
        print("running", flush=True)
        while True:
            time.sleep(1)

serve(Stuck(), grace_s=0.5, finish=lambda s: print("summary exit_code", s.exit_code, flush=True))
"""


def test_a_transfer_stuck_past_the_grace_period_is_abandoned_with_exit_0():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", STUCK_WATCHER], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"running"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 3
    assert b"summary exit_code 0" in out
