"""--notify-url: what is a usage error, what an alert says (and never says), retries against a real
loopback HTTP server, and the queue that spaces alerts out and merges what waits."""

from __future__ import annotations

import json
import threading
import time

import pytest

from bucket_sync.app.alert_payload import FailureSamples, RunContext, Why, alert_payload, merge_alerts, why_alert
from bucket_sync.app.notify_url import AlertQueue, WebhookPoster, parse_notify_url
from bucket_sync.errors import ExitCode, UsageError
from bucket_sync.redact import redact, register_secret
from bucket_sync.sync.listener import Summary
from bucket_sync.sync.model import Action, Status, TransferResult
from tests.support.webhook import Webhook


def summary(*, failed=0, uploaded=0, exit_code=0) -> Summary:
    return Summary("mirror", uploaded, 0, 0, 2, failed, 100, 1.5, exit_code)


@pytest.mark.parametrize("text, fragment", [
    ("ftp://example.com/hook", "http:// or https://"),
    ("hooks.slack.com/services/x", "http:// or https://"),
    ("mailto:ops@example.com", "http:// or https://"),
    ("https://", "names no host"),
    ("", "http:// or https://"),
])
def test_only_http_urls_are_accepted(text, fragment):
    with pytest.raises(UsageError) as info:
        parse_notify_url(text)
    assert fragment in info.value.message and info.value.exit_code == ExitCode.USAGE


def test_the_webhook_url_is_a_secret():
    target = parse_notify_url("https://hooks.slack.com/services/T0001/B0002/SeCrEtWeBhOoKtOkEn")
    assert target.describe() == "https://hooks.slack.com"
    assert "SeCrEtWeBhOoKtOkEn" not in redact("posting to https://hooks.slack.com/services/T0001/B0002/SeCrEtWeBhOoKtOkEn")


def test_why_an_alert_is_sent():
    assert why_alert(summary()) is None
    assert why_alert(summary(), always=True) == Why.ALWAYS
    assert why_alert(summary(failed=2, exit_code=1)) == Why.FAILED
    assert why_alert(summary(exit_code=6)) == Why.REFUSED
    assert why_alert(summary(exit_code=3), error="no credentials") == Why.ERROR
    assert why_alert(summary(exit_code=5), always=True) is None  # another run holds the lock: by design


def test_payload_is_the_summary_plus_context_and_never_a_secret():
    register_secret("tok-0123456789abcdef")
    samples = FailureSamples(limit=2)
    for i in range(5):
        samples.on_result(TransferResult(Action.UPLOAD, f"cap/f{i}.jpg", 1, Status.FAILED,
                                         error=f"refused with sig=abcdef{i} and token tok-0123456789abcdef"))
    samples.on_result(TransferResult(Action.UPLOAD, "cap/ok.jpg", 1, Status.OK))
    failures, omitted = samples.take()
    ctx = RunContext.of("mirror", "/srv/cap", "https://acct.blob.core.windows.net/c?sv=1&sig=SECRETSIG")
    p = alert_payload(ctx, summary(failed=5, uploaded=3, exit_code=1), why=Why.FAILED, scope="run",
                      failures=failures, omitted=omitted)
    assert p["event"] == "summary" and p["op"] == "mirror" and p["failed"] == 5 and p["exit_code"] == 1
    assert p["why"] == "failed" and p["source"] == "/srv/cap" and p["host"]
    assert [f["key"] for f in p["failures"]] == ["cap/f0.jpg", "cap/f1.jpg"] and p["failures_omitted"] == 3
    assert p["text"].startswith("bucket-sync mirror on ") and "5 failed" in p["text"] and "cap/f0.jpg" in p["text"]
    text = json.dumps(p)
    for secret in ("SECRETSIG", "abcdef0", "tok-0123456789abcdef"):
        assert secret not in text


def test_alerts_that_waited_are_merged():
    ctx = RunContext("watch", "/w", "itwin://x/p", "host")
    a = alert_payload(ctx, Summary("watch", 1, 0, 0, 0, 1, 10, 1.0, 1), why=Why.FAILED, scope="batch",
                      failures=[{"op": "upload", "key": "p/a", "error": "x"}])
    b = alert_payload(ctx, Summary("watch", 2, 0, 1, 0, 0, 20, 2.0, 0), why=Why.REFUSED, scope="batch",
                      refusal="/w is empty: not deleting")
    m = merge_alerts([a, b])
    assert (m["uploaded"], m["deleted"], m["failed"], m["bytes"], m["batches"]) == (3, 1, 1, 30, 2)
    assert m["why"] == "refused" and m["refusal"].startswith("/w is empty") and m["exit_code"] == 1
    assert "in 2 batches" in m["text"] and m["failures"][0]["key"] == "p/a"


# -- delivery ----------------------------------------------------------------------------------------
@pytest.fixture
def hook():
    made = []

    def make(statuses=()):
        made.append(Webhook(statuses))
        return made[-1]

    yield make
    for h in made:
        h.close()


def no_wait(waits):
    def wait(seconds):
        waits.append(seconds)
        return False
    return wait


def test_retried_with_backoff_until_delivered(hook):
    h = hook([503, 429, 500])
    waits: list[float] = []
    poster = WebhookPoster(parse_notify_url(h.url), wait=no_wait(waits))
    assert poster.deliver({"text": "hello"})
    assert len(h.bodies) == 4 and h.bodies[-1] == {"text": "hello"}
    assert len(waits) == 3  # 1, 2 and 4 s, each with up to 25% jitter
    assert all(base <= w <= base * 1.25 for base, w in zip((1, 2, 4), waits)), waits


def test_a_client_error_or_a_redirect_is_final(hook):
    for status in (400, 404, 302):
        h = hook([status])
        waits: list[float] = []
        assert not WebhookPoster(parse_notify_url(h.url), wait=no_wait(waits)).deliver({"text": "x"})
        assert len(h.bodies) == 1 and waits == []


def test_nobody_listening_gives_up_after_the_attempts(caplog):
    waits: list[float] = []
    poster = WebhookPoster(parse_notify_url("http://127.0.0.1:9/hooks/SECRETPATH123"), attempts=3, wait=no_wait(waits))
    assert not poster.deliver({"text": "x"})
    assert len(waits) == 2
    assert "SECRETPATH123" not in caplog.text and "http://127.0.0.1" in caplog.text


def test_queue_delivers_in_the_background_and_close_waits(hook):
    h = hook()
    queue = AlertQueue(WebhookPoster(parse_notify_url(h.url)))
    queue.post({"text": "one"})
    queue.close(5)
    assert h.bodies == [{"text": "one"}] and queue.delivered == 1
    queue.post({"text": "after close"})  # ignored: the run is over
    assert len(h.bodies) == 1


class FakePoster:
    def __init__(self) -> None:
        self.delivered: list[dict] = []
        self.cancel = threading.Event()
        self.target = parse_notify_url("https://example.com/x")

    def deliver(self, payload):
        self.delivered.append(payload)
        return True


def test_gap_between_alerts_doubles_while_they_keep_coming():
    poster = FakePoster()
    queue = AlertQueue(poster, merge=lambda items: {"n": sum(i["n"] for i in items)}, min_gap_s=0.3)
    queue.post({"n": 1})
    _wait_for(lambda: len(poster.delivered) == 1)  # the first goes at once
    queue.post({"n": 1})
    queue.post({"n": 2})  # both wait for the gap, then go as one
    _wait_for(lambda: len(poster.delivered) == 2)
    assert poster.delivered == [{"n": 1}, {"n": 3}]
    assert queue._gap == pytest.approx(0.6)  # they had to wait: alerting goes on, space them out
    time.sleep(0.7)  # a quiet spell longer than the gap
    queue.post({"n": 5})
    _wait_for(lambda: len(poster.delivered) == 3)
    assert queue._gap == pytest.approx(0.3)
    queue.close(2)


def _wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
