"""watch --metrics without a watcher: the page prometheus_client renders from events, no file name or
secret in any label, SAS and token refreshes observed, and the endpoint's answers and bad addresses."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bucket_sync.app.watch_credentials import CredentialWatch, ObservedTokens  # noqa: E402
from bucket_sync.app.watch_health import HealthRules, WatchHealth  # noqa: E402
from bucket_sync.app.watch_http import HealthServer, parse_listen_address  # noqa: E402
from bucket_sync.app.watch_metrics import WatchMetrics  # noqa: E402
from bucket_sync.app.watch_monitor import BatchReport, Scope, Trouble, TroubleKind, WatchSnapshot  # noqa: E402
from bucket_sync.errors import UsageError  # noqa: E402
from bucket_sync.sas import ContainerSas, SasSource  # noqa: E402
from bucket_sync.sync.listener import Summary  # noqa: E402
from bucket_sync.sync.model import Action, Reason, Status, TransferResult  # noqa: E402
from bucket_sync.storage.container import ContainerRef  # noqa: E402


def samples(page: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(page.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def snap(mode: str = "native", queued: int = 0) -> WatchSnapshot:
    return WatchSnapshot(mode, queued, 0, 0, 0, 0, None)


class RotatingSas(SasSource):
    def __init__(self) -> None:
        self.n = 0

    def _make(self) -> ContainerSas:
        expires = datetime.now(timezone.utc) + timedelta(seconds=300)
        return ContainerSas.from_url(f"https://acct.blob.core.windows.net/c?sp=rw&se={expires:%Y-%m-%dT%H:%M:%SZ}"
                                     f"&sig=SIGNATURE{self.n}")

    def current(self) -> ContainerSas:
        return self._make()

    def refresh(self, stale: ContainerSas) -> ContainerSas:
        self.n += 1
        return self._make()


class Tokens:
    app_email = None

    def __init__(self) -> None:
        self.value = "token-one-0123456789"

    def token(self) -> str:
        return self.value

    def invalidate(self, token: str) -> None: ...

    def describe(self) -> str:
        return "test tokens"

    def cache_identity(self):
        return "id"

    @property
    def expires_at(self):
        return datetime.now(timezone.utc) + timedelta(seconds=90)


def test_counters_follow_events_and_labels_name_no_file():
    health = WatchHealth(HealthRules(1800))
    creds = CredentialWatch()
    metrics = WatchMetrics(health, creds)
    for m in (health, metrics):
        m.on_start(lambda: snap("polling", queued=4))
    secret_name = "customer-survey/秘密-site-A.las"
    for r in [TransferResult(Action.UPLOAD, secret_name, 1000, Status.OK, bytes_sent=1000),
              TransferResult(Action.UPLOAD, "b.jpg", 10, Status.OK, bytes_sent=10),
              TransferResult(Action.DELETE, "old.jpg", 77, Status.OK),
              TransferResult(Action.UPLOAD, "x.jpg", 5, Status.FAILED, error=f"{secret_name}: storage said no", exit_code=1),
              TransferResult(Action.UPLOAD, "../evil", 5, Status.FAILED, reason=Reason.UNSAFE_NAME, exit_code=1),
              TransferResult(Action.UPLOAD, "y.jpg", 5, Status.FAILED, exit_code=3),
              TransferResult(Action.UPLOAD, "z.jpg", 5, Status.SKIPPED)]:
        metrics.on_result(r)
        health.on_result(r)
    metrics.on_batch(BatchReport(Scope.RECONCILE, Summary("watch", 0, 0, 0, 0, 0, 0, 0, 0)))
    metrics.on_trouble(Trouble(TroubleKind.OUTAGE, "unreachable", 1))
    page, content_type = metrics.render(None)
    assert content_type.startswith("text/plain")
    got = samples(page)
    assert got[("bucket_sync_watch_files_total", (("op", "upload"),))] == 2
    assert got[("bucket_sync_watch_files_total", (("op", "delete"),))] == 1
    assert got[("bucket_sync_watch_bytes_total", (("op", "upload"),))] == 1010
    assert got[("bucket_sync_watch_bytes_total", (("op", "delete"),))] == 77
    assert got[("bucket_sync_watch_failures_total", (("kind", "transfer"), ("op", "upload")))] == 1
    assert got[("bucket_sync_watch_failures_total", (("kind", "rejected"), ("op", "upload")))] == 1
    assert got[("bucket_sync_watch_failures_total", (("kind", "auth"), ("op", "upload")))] == 1
    assert got[("bucket_sync_watch_failures_total", (("kind", "auth"), ("op", "delete")))] == 0
    assert got[("bucket_sync_watch_rescans_total", ())] == 1
    assert got[("bucket_sync_watch_backoffs_total", (("kind", "outage"),))] == 1
    assert got[("bucket_sync_watch_queue_length", ())] == 4
    assert got[("bucket_sync_watch_observer", (("mode", "polling"),))] == 1
    assert got[("bucket_sync_watch_observer", (("mode", "native"),))] == 0
    assert got[("bucket_sync_watch_healthy", ())] == 1
    labels = {v for (_n, ls) in got for _k, v in ls}
    assert not any(name in value for value in labels for name in (secret_name, "b.jpg", "x.jpg", "evil", "old.jpg"))
    assert b"customer-survey" not in page and b"x.jpg" not in page


def test_sas_and_token_refreshes_and_seconds_left():
    creds = CredentialWatch()
    inner = RotatingSas()
    ref = creds.container(ContainerRef(inner))
    sas = ref.source.current()
    ref.source.current()
    ref.source.refresh(sas)  # after a 403: a new signature
    tokens = creds.observe_tokens(Tokens())
    assert isinstance(tokens, ObservedTokens)
    tokens.token()
    tokens.inner.value = "token-two-0123456789"
    tokens.token()
    metrics = WatchMetrics(WatchHealth(HealthRules(60)), creds)
    page, _ = metrics.render("application/openmetrics-text")
    assert b"# EOF" in page  # OpenMetrics when asked for
    page, _ = metrics.render(None)
    got = samples(page)
    assert got[("bucket_sync_watch_sas_refreshes_total", (("access", "write"),))] == 1
    assert 290 < got[("bucket_sync_watch_sas_seconds_left", (("access", "write"),))] <= 300
    assert got[("bucket_sync_watch_token_refreshes_total", ())] == 1
    assert 80 < got[("bucket_sync_watch_token_seconds_left", ())] <= 90
    for secret in (b"SIGNATURE", b"token-one", b"token-two"):
        assert secret not in page


def test_the_endpoint_answers_and_refuses_a_port_in_use():
    health = WatchHealth(HealthRules(60))
    health.on_start(lambda: snap())
    metrics = WatchMetrics(health)
    server = HealthServer(parse_listen_address("127.0.0.1:0"), metrics=metrics.render, health=health.verdict)
    server.start()
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as answer:
            assert answer.status == 200 and json.loads(answer.read())["state"] == "starting"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + "/readyz", timeout=5)
        assert info.value.code == 503  # not ready before the first reconcile
        health.on_ready()
        with urllib.request.urlopen(server.url + "/readyz", timeout=5) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as answer:
            assert b"bucket_sync_watch_healthy 1.0" in answer.read()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + "/nope", timeout=5)
        assert info.value.code == 404
        with pytest.raises(UsageError) as busy:
            HealthServer(parse_listen_address(f"127.0.0.1:{server.port}"), metrics=metrics.render, health=health.verdict)
        assert "already in use" in busy.value.message
    finally:
        server.close()


def test_an_address_not_of_this_machine_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        HealthServer(parse_listen_address("192.0.2.1:0"), metrics=lambda a: (b"", "text/plain"),
                     health=lambda: None)
    assert "not an address of this machine" in info.value.message or "cannot" in info.value.message


@pytest.mark.parametrize("text", ["abc", "host:", "::1:80", "[zz]:1", "1.2.3.4:70000", "a b:1"])
def test_bad_listen_addresses(text):
    with pytest.raises(UsageError):
        parse_listen_address(text)


@pytest.mark.parametrize("text, host, port", [("9464", "127.0.0.1", 9464), (":9464", "127.0.0.1", 9464),
                                              ("0.0.0.0:9464", "0.0.0.0", 9464), ("[::1]:0", "::1", 0)])
def test_good_listen_addresses(text, host, port):
    a = parse_listen_address(text)
    assert (a.host, a.port) == (host, port)


def test_ipv6_loopback_when_the_machine_has_it():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = HealthServer(parse_listen_address("[::1]:0"), metrics=lambda a: (b"", "text/plain"),
                              health=lambda: None)
    except UsageError:
        pytest.skip("no ::1 on this machine")
    server.close()
    assert server.url.startswith("http://[::1]:")


def test_without_metrics_nothing_of_it_is_imported():
    """A watch without --metrics, and a clean mirror with --notify-url, never load prometheus_client, the
    HTTP server or urllib: cron runs every few minutes notice every import."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import bucket_sync.cli.watch_cmd, bucket_sync.cli.mirror_cmd\n"
        "from bucket_sync.app.alert_payload import RunContext\n"
        "from bucket_sync.app.notify_url import parse_notify_url\n"
        "from bucket_sync.app.run_alerts import RunAlerts\n"
        "from bucket_sync.app.watch_service import ServiceOptions, WatchService\n"
        "from bucket_sync.sync.listener import Summary\n"
        "WatchService(ServiceOptions(), rescan_s=600, ctx=RunContext('watch', '/w', 'r'), env={}).close()\n"
        "alerts = RunAlerts(parse_notify_url('https://example.com/hook'), RunContext('mirror', '/w', 'r'))\n"
        "alerts.run_ended(Summary('mirror', 0, 0, 0, 3, 0, 0, 0.1, 0))\n"
        "alerts.close()\n"
        "print(sorted(m for m in ('prometheus_client', 'http.server', 'urllib.request') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_observed_sas_url_is_still_one_that_cannot_be_renewed():
    """--metrics wraps the SAS source: a refused SAS URL given directly must still end the watcher (exit 3)."""
    from bucket_sync.app.watch_auth import AuthPolicy
    from bucket_sync.errors import AuthError
    from bucket_sync.sas import StaticSasSource

    sas = ContainerSas.from_url("https://acct.blob.core.windows.net/c?sp=rw&sig=abcdefgh")
    observed = CredentialWatch().container(ContainerRef(StaticSasSource(sas))).source
    policy = AuthPolicy(observed, clock=lambda: 0.0)
    policy.succeeded()
    assert not policy.survivable(AuthError("storage refused the SAS (403)"))
