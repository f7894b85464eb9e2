"""The health rules behind /healthz and the systemd watchdog, driven by a fake clock; and systemd's
notification protocol against a real unix datagram socket."""

from __future__ import annotations

import os
import socket
import sys
import uuid

import pytest

from bucket_sync.app.systemd_notify import from_environment, watchdog_interval
from bucket_sync.app.watch_queue import ChangeQueue, Kind, Sig
from bucket_sync.app.watch_health import HealthRules, WatchHealth
from bucket_sync.app.watch_monitor import BatchReport, Monitors, Scope, Trouble, TroubleKind, WatchMonitor, WatchSnapshot
from bucket_sync.app.watch_systemd import WatchSystemd
from bucket_sync.sync.listener import Summary
from bucket_sync.sync.model import Action, Status, TransferResult
from tests.support.fake_clock import FakeClock

RESCAN = 600.0


def summary(failed: int = 0, uploaded: int = 0) -> Summary:
    return Summary("watch", uploaded, 0, 0, 0, failed, 0, 0.0, 1 if failed else 0)


class World:
    """A watcher's visible state, as the snapshot view hands it to monitors."""

    def __init__(self, clock: FakeClock) -> None:
        self.queue = ChangeQueue(debounce_s=1.0, clock=clock)
        self.in_flight = 0

    def view(self) -> WatchSnapshot:
        return WatchSnapshot("native", len(self.queue), self.in_flight, 3, 1, 0, self.queue.busy_since)


@pytest.fixture
def setup():
    clock = FakeClock()
    world = World(clock)
    health = WatchHealth(HealthRules(behind_after_s=3 * RESCAN), clock=clock)
    health.on_start(world.view)
    return clock, world, health


def test_starting_then_ok_then_outage_then_ok_again(setup):
    clock, world, health = setup
    v = health.verdict()
    assert v.healthy and not v.ready and v.state == "starting"
    health.on_busy(Scope.RECONCILE)
    health.on_batch(BatchReport(Scope.RECONCILE, summary()))
    health.on_idle()
    health.on_ready()
    v = health.verdict()
    assert v.healthy and v.ready and v.state == "ok"
    assert v.body()["status"] == "ok" and v.body()["queued"] == 0 and "reason" not in v.body()

    health.on_trouble(Trouble(TroubleKind.OUTAGE, "storage is unreachable", 4.0))
    clock.sleep(12)
    v = health.verdict()
    assert not v.healthy and v.state == "outage"
    assert v.body()["status"] == "unhealthy" and "storage is unreachable" in v.reason and "12 s" in v.reason

    health.on_recovered()
    assert health.verdict().healthy


def test_auth_trouble_is_unhealthy_with_its_own_state(setup):
    _clock, _world, health = setup
    health.on_trouble(Trouble(TroubleKind.AUTH, "could not renew the access token", 8.0))
    v = health.verdict()
    assert not v.healthy and v.state == "auth" and "access token" in v.reason


def test_behind_only_when_work_waits_without_progress(setup):
    clock, world, health = setup
    clock.sleep(10 * RESCAN)  # a quiet week, nothing queued: healthy
    assert health.verdict().healthy

    world.queue.touch("a.jpg", Sig(Kind.FILE, 1, 1))  # a file dropped in after the quiet spell
    assert health.verdict().healthy, "the wait counts from when the queue filled, not from the last upload"
    clock.sleep(3 * RESCAN - 1)
    assert health.verdict().healthy
    clock.sleep(2)
    v = health.verdict()
    assert not v.healthy and v.state == "behind" and "1800 s" in v.reason

    health.on_busy(Scope.CHANGES)  # the watcher got to it: progress
    assert health.verdict().healthy


def test_a_long_transfer_that_moves_bytes_is_not_behind(setup):
    clock, world, health = setup
    health.on_busy(Scope.CHANGES)
    world.in_flight = 1
    for _ in range(10):
        clock.sleep(RESCAN)
        health.on_bytes(8 << 20)
    assert health.verdict().healthy
    clock.sleep(3 * RESCAN + 1)  # the link stalls
    assert health.verdict().state == "behind"
    health.on_result(TransferResult(Action.UPLOAD, "w/big.bin", 1, Status.FAILED, error="timed out"))
    assert health.verdict().healthy, "a failed file is progress: it is reported and retried"


def test_last_sync_is_the_last_clean_batch(setup):
    clock, _world, health = setup
    clock.sleep(30)
    assert health.seconds_since_last_sync() == 30  # since the start, before the first
    health.on_batch(BatchReport(Scope.RECONCILE, summary()))
    clock.sleep(5)
    health.on_batch(BatchReport(Scope.CHANGES, summary(failed=1)))
    health.on_batch(BatchReport(Scope.RECONCILE, summary(), refusal="empty folder"))
    clock.sleep(5)
    assert health.seconds_since_last_sync() == 10


def test_stopped_is_unhealthy(setup):
    _clock, _world, health = setup
    health.on_stop(summary(), None)
    assert health.verdict().state == "stopping"


def test_a_broken_monitor_never_reaches_the_watcher():
    class Broken(WatchMonitor):
        def on_batch(self, report):
            raise RuntimeError("bug")

        def on_result(self, result):
            raise RuntimeError("bug")

    seen = []

    class Fine(WatchMonitor):
        def on_batch(self, report):
            seen.append(report)

    monitors = Monitors(Broken(), Fine())
    monitors.on_batch(BatchReport(Scope.CHANGES, summary()))
    monitors.on_result(TransferResult(Action.UPLOAD, "k", 1, Status.OK))
    assert len(seen) == 1


# -- systemd -------------------------------------------------------------------------------------------
def test_no_notify_socket_means_no_notifier():
    assert from_environment({}) is None
    assert from_environment({"NOTIFY_SOCKET": "relative/path"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "4000000"}) == 4.0
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "2"}, pid=2) == 4.0


unix_only = pytest.mark.skipif(sys.platform == "win32" or not hasattr(socket, "AF_UNIX"), reason="unix sockets")


@unix_only
def test_datagrams_reach_a_path_socket(tmp_path):
    path = f"/tmp/bs-{uuid.uuid4().hex[:12]}.sock"  # short: sun_path holds ~108 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(path)
        try:
            notifier = from_environment({"NOTIFY_SOCKET": path})
            assert notifier is not None
            assert notifier.send(READY=1, STATUS="two\nlines")
            sink.settimeout(2)
            assert sink.recv(4096).decode() == "READY=1\nSTATUS=two lines"
            notifier.close()
        finally:
            os.unlink(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux's")
def test_abstract_socket_names_start_with_at():
    name = f"bs-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind("\0" + name)
        notifier = from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.send(WATCHDOG=1)
        sink.settimeout(2)
        assert sink.recv(4096) == b"WATCHDOG=1"


def test_a_socket_nobody_listens_on_is_ignored():
    notifier = from_environment({"NOTIFY_SOCKET": f"/tmp/bs-nobody-{uuid.uuid4().hex[:8]}.sock"})
    if notifier is None:
        pytest.skip("no unix datagram sockets here")
    assert notifier.send(READY=1) is False  # logged at debug level, nothing raised


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, **fields) -> bool:
        self.sent.append(fields)
        return True

    def close(self) -> None:
        pass


def test_watchdog_pings_only_while_healthy_and_start_timeout_extended_until_ready(setup):
    clock, world, health = setup
    rec = Recorder()
    systemd = WatchSystemd(rec, health, watchdog_s=10.0)
    assert systemd.interval == 5.0
    systemd.tick()
    assert rec.sent[-1]["WATCHDOG"] == 1 and rec.sent[-1]["EXTEND_TIMEOUT_USEC"] == 15_000_000
    health.on_ready()  # Monitors calls the health first, then the others that read it
    systemd.on_ready()
    assert rec.sent[-1]["READY"] == 1 and rec.sent[-1]["STATUS"].startswith("watching (native): 0 queued")

    health.on_trouble(Trouble(TroubleKind.OUTAGE, "storage is unreachable", 2.0))
    rec.sent.clear()
    systemd.tick()
    assert "WATCHDOG" not in rec.sent[-1] and rec.sent[-1]["STATUS"].startswith("outage: storage is unreachable")
    health.on_recovered()
    systemd.tick()
    assert rec.sent[-1]["WATCHDOG"] == 1 and "EXTEND_TIMEOUT_USEC" not in rec.sent[-1]

    systemd.on_stop(summary(uploaded=2), None)
    assert rec.sent[-1]["STOPPING"] == 1 and "2 uploaded" in rec.sent[-1]["STATUS"]
