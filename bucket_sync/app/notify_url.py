"""``--notify-url URL``: POST a JSON alert (alert_payload.py) to a webhook, in the background, with retries.

- Only http:// and https:// URLs (anything else is a usage error, exit 2, before the run starts).
- A webhook URL is a secret (Slack's and Teams' carry their token in the path or a ``sig=``): it is
  registered with the redactor, and messages name only its scheme and host.
- Delivery never blocks a transfer: :class:`AlertQueue` hands payloads to a thread of its own. A failed
  POST (no answer, 408, 429, 5xx) is retried with exponential backoff and jitter, honouring Retry-After;
  another 4xx is final. Redirects are not followed (a 302 would turn the POST into a GET elsewhere).
- Alerts wait at least a gap between deliveries (watch: a minute); what arrives meanwhile is merged into
  one, and the gap doubles, to an hour, for as long as alerts keep coming (an outage must not post every
  minute for a day), then returns to a minute after a quiet gap.
- At the end of a run, :meth:`AlertQueue.close` waits a bounded time for what is queued to be delivered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from urllib.request import OpenerDirector  # imported when an alert is sent

from .. import __version__
from ..errors import UsageError
from ..redact import redact, register_secret
from ..retry import WEBHOOK

log = logging.getLogger("bucket_sync")

TIMEOUT_S = 10.0
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class NotifyTarget:
    url: str  # a secret: never printed (describe() is what messages show)
    always: bool = False  # --notify-always: after every run, not only failed or refused ones

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}"


def parse_notify_url(text: str, *, always: bool = False) -> NotifyTarget:
    raw = (text or "").strip()
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("http", "https"):
        got = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise UsageError(f"--notify-url must be an http:// or https:// URL (got {got})",
                         hint="e.g. a Teams or Slack incoming webhook: https://hooks.slack.com/services/...")
    if not parts.hostname:
        raise UsageError(f"--notify-url {parts.scheme}:// names no host",
                         hint="give the whole webhook URL, e.g. https://hooks.slack.com/services/...")
    for secret in (raw, parts.path, parts.query, parts.password):
        register_secret(secret)  # the path of a Slack or Teams webhook is its password
    return NotifyTarget(raw, always)


def redact_payload(value: object) -> object:
    """Every string in a payload through redact(): no token, signature or secret leaves in an alert."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_payload(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_payload(v) for v in value]
    return value


class WebhookPoster:
    """One delivery, retried; ``wait(seconds)`` sleeps between attempts and returns True to give up."""

    def __init__(self, target: NotifyTarget, *, attempts: int = WEBHOOK.attempts or 1, timeout_s: float = TIMEOUT_S,
                 wait: Callable[[float], bool] | None = None) -> None:
        self.target = target
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.cancel = threading.Event()
        self._wait = wait or self.cancel.wait
        self._opener: OpenerDirector | None = None

    def deliver(self, payload: dict[str, Any]) -> bool:
        body = json.dumps(redact_payload(payload)).encode("utf-8")
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                status, retry_after = self._post(body)
            except OSError as exc:  # no answer: refused, reset, timed out, DNS
                retry_after, last = None, redact(getattr(exc, "reason", None) or exc)
            else:
                if 200 <= status < 300:
                    return True
                last = f"HTTP {status}"
                if status not in RETRY_STATUSES:
                    log.warning("the alert was refused by %s (%s); not retried: check --notify-url",
                                self.target.describe(), last)
                    return False
            if attempt == self.attempts:
                break
            if self._wait(WEBHOOK.wait(attempt, retry_after)):
                break
        log.warning("could not deliver the alert to %s after %d attempt(s) (%s)", self.target.describe(),
                    attempt, last)
        return False

    def _post(self, body: bytes) -> tuple[int, str | None]:
        """The answer's status, and its Retry-After header."""
        import urllib.error
        import urllib.request  # only when an alert is sent: a clean cron run never imports it

        if self._opener is None:
            class NoRedirects(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                    return None  # the 3xx comes back as an HTTPError: final

            self._opener = urllib.request.build_opener(NoRedirects)  # proxies from the environment still apply
        request = urllib.request.Request(self.target.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"bucket-sync/{__version__}"})
        try:
            with self._opener.open(request, timeout=self.timeout_s) as answer:
                answer.read(64 * 1024)
                return answer.status, None
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers.get("Retry-After")


class AlertQueue:
    """Delivers payloads in the background, at least a gap apart, merging what waits (module docstring)."""

    def __init__(self, poster: WebhookPoster, *, merge: Callable[[list[dict[str, Any]]], dict[str, Any]] = lambda items: items[-1],
                 min_gap_s: float = 0.0, max_gap_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.poster = poster
        self.merge = merge
        self.min_gap_s = min_gap_s
        self.max_gap_s = max_gap_s
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[tuple[float, dict[str, Any]]] = []
        self._closing = False
        self._gap = min_gap_s
        self._next_at = 0.0
        self._thread: threading.Thread | None = None
        self.delivered = 0

    def post(self, payload: dict[str, Any]) -> None:
        with self._cond:
            if self._closing:
                return
            self._pending.append((self._clock(), payload))
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver_forever, name="notify-url", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self, timeout_s: float) -> None:
        """Deliver what is queued (the gap no longer applies) for up to ``timeout_s``, then give up."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is None:
            return
        thread.join(timeout_s)
        if thread.is_alive():
            self.poster.cancel.set()  # stop waiting between retries
            thread.join(1.0)
            log.warning("an alert for %s was still undelivered at exit", self.poster.target.describe())

    def _deliver_forever(self) -> None:
        while True:
            with self._cond:
                while not self._pending or (not self._closing and self._clock() < self._next_at):
                    if not self._pending and self._closing:
                        return
                    timeout = None if not self._pending else max(0.01, self._next_at - self._clock())
                    self._cond.wait(timeout)
                batch, self._pending = self._pending, []
                now = self._clock()
                # Alerts that had to wait for the gap: alerting goes on, space them out further.
                stormy = batch[0][0] < self._next_at
                self._gap = min(self.max_gap_s, max(self._gap * 2, self.min_gap_s)) if stormy else self.min_gap_s
                self._next_at = now + self._gap
            try:
                payload = self.merge([p for _, p in batch])
                if self.poster.deliver(payload):
                    self.delivered += 1
            except Exception:  # never let an alert take anything down with it
                log.debug("alert delivery failed", exc_info=True)


__all__ = ["AlertQueue", "NotifyTarget", "WebhookPoster", "parse_notify_url", "redact_payload"]
