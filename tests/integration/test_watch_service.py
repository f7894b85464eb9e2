"""The watcher as a service, through the real command against Azurite and the emulator: /metrics follows
the files dropped in, /healthz turns 503 while storage is down and 200 once it is back, a fake systemd
receives READY and WATCHDOG, and --notify-url posts the summary of a failing or refused run (and of a
clean one only with --notify-always). No secret in any page, datagram or alert."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import find_leaks
from tests.support.faultproxy import FaultProxy
from tests.support.watch_proc import WatchProcess
from tests.support.webhook import WEBHOOK_TOKEN, Webhook

pytestmark = pytest.mark.integration

_ENDPOINT = re.compile(r"watch: metrics on (http://\S+)/metrics")


def endpoint(w: WatchProcess) -> str:
    m = w.wait_for(lambda: _ENDPOINT.search(w.stderr), "the metrics endpoint line")
    return m.group(1)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def scrape(base: str) -> tuple[dict, bytes]:
    status, page = get(base + "/metrics")
    assert status == 200
    values = {}
    for family in text_string_to_metric_families(page.decode()):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values, page


def health(base: str) -> tuple[int, dict]:
    status, body = get(base + "/healthz")
    return status, json.loads(body)


def uploads(values: dict) -> float:
    return values.get(("bucket_sync_watch_files_total", (("op", "upload"),)), -1)


def no_leaks(cli, **texts: str | bytes) -> None:
    streams = {k: v.decode(errors="replace") if isinstance(v, bytes) else v for k, v in texts.items()}
    leaks = find_leaks(streams, set(cli._secret_source()) | cli.extra_secrets)
    assert not leaks, leaks


def test_metrics_follow_the_files_dropped_in(cli, new_itwin, bucket_container, tmp_path):
    container = bucket_container(new_itwin)
    root = tmp_path / "watched"
    root.mkdir()
    (root / "first.las").write_bytes(b"x" * 1000)
    os.utime(root / "first.las", (1_600_000_000, 1_600_000_000))  # settled: the first reconcile sends it
    with WatchProcess(cli, root, f"itwin://{new_itwin}/m", "--json", "--metrics", "127.0.0.1:0") as w:
        base = endpoint(w)
        w.wait_watching()
        values, _ = scrape(base)
        assert uploads(values) == 1 and values[("bucket_sync_watch_rescans_total", ())] == 1
        assert values[("bucket_sync_watch_ready", ())] == 1 and values[("bucket_sync_watch_healthy", ())] == 1
        assert values[("bucket_sync_watch_observer", (("mode", "native"),))] == 1
        assert values[("bucket_sync_watch_sas_seconds_left", (("access", "write"),))] > 0
        assert values[("bucket_sync_watch_token_seconds_left", ())] > 0
        status, body = health(base)
        assert status == 200 and body["status"] == "ok" and body["ready"] is True

        names = ["site-A/秘密 scan 01.las", "site-A/scan-02.las", "site-B/photo.jpg"]
        for i, name in enumerate(names):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"y" * (100 * (i + 1)))
            w.wait_for(lambda: uploads(scrape(base)[0]) == 2 + i, f"files_total to count {name}")  # noqa: B023 - waited on here
        values, page = scrape(base)
        assert values[("bucket_sync_watch_bytes_total", (("op", "upload"),))] == 1000 + 100 + 200 + 300
        assert values[("bucket_sync_watch_failures_total", (("kind", "transfer"), ("op", "upload")))] == 0
        assert values[("bucket_sync_watch_batches_total", (("scope", "changes"),))] >= 1
        assert values[("bucket_sync_watch_seconds_since_last_sync", ())] < 30
        w.wait_for(lambda: scrape(base)[0][("bucket_sync_watch_queue_length", ())] == 0,
                   "the queue to drain (folder events are re-checked too)")
        labels = {v for (_n, ls) in values for _k, v in ls}
        assert not [v for v in labels if any(part in v for part in ("秘密", "scan", "photo", "site-", "first"))]
        status, body = health(base)
        assert body["uploaded"] == 4 and body["queued"] == 0
        assert {b.name for b in container.list_blobs(name_starts_with="m/")} >= {f"m/{n}" for n in names}
        no_leaks(cli, metrics=page, healthz=json.dumps(body))
        w.stop()
    assert w.returncode == 0, w.describe()


def test_healthz_is_503_while_storage_is_unreachable_and_200_once_it_is_back(cli, azurite_factory, tmp_path):
    server = azurite_factory()
    server.create_container("health")
    url = server.container_sas_url("health")
    root = tmp_path / "watched"
    root.mkdir()
    with WatchProcess(cli, root, url, "--json", "--metrics", ":0") as w:
        base = endpoint(w)
        w.wait_watching()
        assert health(base)[0] == 200

        server.stop()
        (root / "during.txt").write_text("written while storage is down")
        status, body = w.wait_for(lambda: (lambda h: h if h[0] == 503 else None)(health(base)),
                                  "/healthz to answer 503", timeout=30)
        assert body["status"] == "unhealthy" and body["state"] == "outage" and body["reason"]
        values, page = scrape(base)
        assert values[("bucket_sync_watch_healthy", ())] == 0
        assert values[("bucket_sync_watch_health_state", (("state", "outage"),))] == 1
        assert values[("bucket_sync_watch_backoffs_total", (("kind", "outage"),))] >= 1
        no_leaks(cli, metrics=page, healthz=json.dumps(body))

        server.start()
        w.wait_for(lambda: health(base)[0] == 200, "/healthz to answer 200 again", timeout=60)
        w.wait_for(lambda: "during.txt" in {b.name for b in server.container_client("health").list_blobs()},
                   "the file queued during the outage")
        w.stop()
    assert w.returncode == 0, w.describe()


class NotifySink:
    """A fake systemd: the abstract unix datagram socket NOTIFY_SOCKET names, and what arrives on it."""

    def __init__(self) -> None:
        self.name = f"bucket-sync-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except socket.timeout:
                continue

    def fields(self, key: str) -> list[str]:
        return [line.split("=", 1)[1] for m in list(self.messages) for line in m.splitlines()
                if line.startswith(key + "=")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract unix sockets are Linux's")
def test_systemd_hears_ready_after_the_first_reconcile_and_watchdog_pings(cli, new_itwin, tmp_path):
    root = tmp_path / "watched"
    root.mkdir()
    (root / "a.txt").write_text("first")
    sink = NotifySink()
    try:
        env = {"NOTIFY_SOCKET": "@" + sink.name, "WATCHDOG_USEC": "1000000"}
        with WatchProcess(cli, root, f"itwin://{new_itwin}/sd", "--json", env=env) as w:
            w.wait_for(lambda: sink.fields("READY"), "READY=1")
            assert any(e.get("state") == "watching" for e in w.events), "READY before the first reconcile ended"
            w.wait_for(lambda: len(sink.fields("WATCHDOG")) >= 3, "three WATCHDOG=1 pings (every 0.5 s)", timeout=10)
            assert set(sink.fields("READY")) == {"1"} and set(sink.fields("WATCHDOG")) == {"1"}
            w.wait_for(lambda: any(s.startswith("watching (native)") and "1 uploaded" in s
                                   for s in sink.fields("STATUS")), "a STATUS= line with the counts")
            w.stop()
        assert w.returncode == 0, w.describe()
        time.sleep(0.3)
        assert sink.fields("STOPPING") == ["1"]
        assert sink.fields("STATUS")[0].startswith("starting")
        no_leaks(cli, datagrams="\n".join(sink.messages))
    finally:
        sink.close()


# -- --notify-url ---------------------------------------------------------------------------------------
@pytest.fixture
def hooked(cli):
    cli.add_secret(WEBHOOK_TOKEN.rsplit("/", 1)[-1])  # the webhook's path is its password: never printed
    hooks: list[Webhook] = []

    def make(statuses=()) -> Webhook:
        hooks.append(Webhook(statuses))
        return hooks[-1]

    yield make
    for h in hooks:
        h.close()


def test_a_failing_mirror_posts_its_summary_and_a_clean_one_does_not(cli, azurite, hooked, tmp_path, make_files):
    name = f"notify-{uuid.uuid4().hex[:8]}"
    azurite.create_container(name)
    src = make_files(tmp_path / "src", {"ok.txt": "fine", "bad.bin": 2000})
    with FaultProxy(azurite.port, seed=3) as proxy:
        url = proxy.rewrite(azurite.container_sas_url(name))
        proxy.fail_requests(1000, status=400, match=r"bad\.bin", method="PUT")
        hook = hooked([503])  # the webhook hiccups once: the alert is retried, not lost
        failed = cli("mirror", src, url, "--json", "--notify-url", hook.url)
        assert failed.returncode == 1, failed
        bodies = hook.wait_for(2)
        assert bodies[0] == bodies[1]
        alert = bodies[-1]
        assert alert["event"] == "summary" and alert["op"] == "mirror" and alert["why"] == "failed"
        assert alert["failed"] == 1 and alert["uploaded"] == 1 and alert["exit_code"] == 1
        assert alert["failures"][0]["key"] == "bad.bin" and alert["source"] == str(src)
        assert "bucket-sync mirror on" in alert["text"] and "1 failed" in alert["text"]
        no_leaks(cli, alert=b"".join(hook.raw))

        proxy.clear()
        clean = cli("mirror", src, url, "--json", "--notify-url", hook.url)
        assert clean.returncode == 0, clean
        time.sleep(0.5)
        assert len(hook.bodies) == 2, "a clean run posts nothing (without --notify-always)"

        always = cli("mirror", src, url, "--json", "--notify-url", hook.url, "--notify-always")
        assert always.returncode == 0, always
        assert hook.wait_for(3)[-1]["why"] == "always"


def test_a_refused_mirror_posts_the_refusal(cli, azurite, hooked, tmp_path):
    name = f"notify-{uuid.uuid4().hex[:8]}"
    azurite.create_container(name)
    azurite.container_client(name).upload_blob("precious.txt", b"keep me")
    empty = tmp_path / "unmounted"
    empty.mkdir()
    hook = hooked()
    refused = cli("mirror", empty, azurite.container_sas_url(name), "--notify-url", hook.url)
    assert refused.returncode == 6, refused
    alert = hook.wait_for(1)[0]
    assert alert["why"] == "refused" and alert["exit_code"] == 6 and "empty or missing source" in alert["refusal"]
    no_leaks(cli, alert=b"".join(hook.raw))


def test_a_watch_batch_with_a_guard_refusal_posts_an_alert(cli, listing_itwin, bucket_container, hooked, tmp_path):
    container = bucket_container(listing_itwin)
    container.upload_blob("g/keep.txt", b"precious")
    root = tmp_path / "unmounted"
    root.mkdir()
    hook = hooked()
    with WatchProcess(cli, root, f"itwin://{listing_itwin}/g", "--json", "--delete", "--notify-url", hook.url) as w:
        w.wait_watching()
        alert = hook.wait_for(1)[0]
        w.stop()
    assert w.returncode == 0, w.describe()
    assert alert["op"] == "watch" and alert["scope"] == "batch" and alert["why"] == "refused"
    assert "is empty: not deleting the 1 blob(s)" in alert["refusal"]
    assert {b.name for b in container.list_blobs(name_starts_with="g/")} == {"g/keep.txt"}
    no_leaks(cli, alert=b"".join(hook.raw))


# -- bad input ----------------------------------------------------------------------------------------
@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("args, fragment", [
    (["--metrics", "nonsense"], "is not HOST:PORT"),
    (["--metrics", "127.0.0.1:70000"], "out of range"),
    (["--metrics", "127.0.0.1:{busy}"], "already in use"),
    (["--notify-url", "ftp://example.com/hook"], "http:// or https://"),
    (["--notify-always"], "--notify-always needs --notify-url"),
])
def test_bad_service_options_are_usage_errors_before_the_watcher_starts(cli, azurite, busy_port, tmp_path,
                                                                        args, fragment):
    root = tmp_path / "watched"
    root.mkdir()
    (root / "a.txt").write_text("never sent")
    name = f"bad-{uuid.uuid4().hex[:8]}"
    azurite.create_container(name)
    args = [a.replace("{busy}", str(busy_port)) for a in args]
    result = cli("watch", root, azurite.container_sas_url(name), "--json", *args, timeout=30)
    assert result.returncode == 2, result
    assert fragment in result.stderr
    assert not [e for e in result.events if e.get("event") == "status"]
    assert not list(azurite.container_client(name).list_blobs())


def test_mirror_refuses_a_notify_url_that_is_not_http(cli, azurite, tmp_path):
    result = cli("mirror", tmp_path, azurite.container_sas_url("whatever"), "--notify-url", "file:///etc/passwd")
    assert result.returncode == 2 and "http:// or https://" in result.stderr, result
