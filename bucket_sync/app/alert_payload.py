"""What a --notify-url alert says (README, "Alerts"): the run's JSON summary, why it was sent, where it ran,
the first failures, and a ``text`` line, which Slack and Teams incoming webhooks display as the message.

Every string goes through redact() again when it is sent (notify_url.redact_payload); blob names are
not secrets and are what the person on call needs, so failures name their files (never in metrics).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ExitCode
from ..redact import redact
from ..sync.listener import Listener, Summary
from ..sync.model import Status, TransferResult
from .render import rfc3339_now

MAX_FAILURES = 10  # failures listed in one alert; the rest are counted in "failures_omitted"
COUNTS = ("uploaded", "downloaded", "deleted", "skipped", "failed", "bytes")


class Why:
    FAILED = "failed"  # one or more files failed
    REFUSED = "refused"  # a safety guard refused (mirror exit 6; watch: an empty LOCAL_DIR not mirrored)
    ERROR = "error"  # the run itself failed (credentials, not found, the watcher ended with an error)
    ALWAYS = "always"  # --notify-always, nothing went wrong


def why_alert(summary: Summary, *, refusal: str | None = None, error: str | None = None,
              always: bool = False) -> str | None:
    """Why this run or batch deserves an alert; None when it does not. Exit 5 (another run of the pair
    is still going) never does: it is how cron runs that overlap are meant to end."""
    if summary.exit_code == ExitCode.LOCKED:
        return None
    if refusal or summary.exit_code == ExitCode.GUARD:
        return Why.REFUSED
    if summary.failed:
        return Why.FAILED
    if error or summary.exit_code:
        return Why.ERROR
    return Why.ALWAYS if always else None


@dataclass(frozen=True)
class RunContext:
    command: str  # mirror or watch
    source: str  # a local folder, or remote.describe() (a SAS URL target is shown without its query)
    destination: str
    host: str = ""

    @classmethod
    def of(cls, command: str, source: str, destination: str) -> "RunContext":
        return cls(command, redact(source), redact(destination), socket.gethostname())


class FailureSamples(Listener):
    """The first failures since the last take(), for the alert; thread-safe (engine workers call it)."""

    wants_unchanged = False

    def __init__(self, limit: int = MAX_FAILURES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] = []
        self._total = 0

    def on_result(self, result: TransferResult) -> None:
        if result.status is not Status.FAILED:
            return
        with self._lock:
            self._total += 1
            if len(self._items) < self.limit:
                self._items.append({"op": result.op.value, "key": result.key, "error": redact(result.error or "")})

    def take(self) -> tuple[list[dict[str, Any]], int]:
        """(failures listed, how many more there were), and start over."""
        with self._lock:
            items, total = self._items, self._total
            self._items, self._total = [], 0
        return items, max(0, total - len(items))


def alert_payload(ctx: RunContext, summary: Summary, *, why: str, scope: str, failures: list[dict[str, Any]] | None = None,
                  omitted: int = 0, refusal: str | None = None, error: str | None = None) -> dict[str, Any]:
    payload = {**summary.as_event(), "scope": scope, "why": why, "host": ctx.host, "source": ctx.source,
               "destination": ctx.destination, "time": rfc3339_now(), "batches": 1 if scope == "batch" else 0,
               "failures": list(failures or []), "failures_omitted": omitted}
    if refusal:
        payload["refusal"] = redact(refusal)
    if error:
        payload["error"] = redact(error)
    payload["text"] = alert_text(payload)
    return payload


def merge_alerts(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Alerts that waited for the same delivery, as one: counts added, the first failures kept."""
    if len(items) == 1:
        return items[0]
    out = dict(items[-1])
    for key in COUNTS + ("batches", "failures_omitted"):
        out[key] = sum(int(i.get(key, 0)) for i in items)
    out["seconds"] = round(sum(float(i.get("seconds", 0)) for i in items), 3)
    out["exit_code"] = max(int(i.get("exit_code", 0)) for i in items)
    failures = [f for i in items for f in i.get("failures", [])]
    out["failures"] = failures[:MAX_FAILURES]
    out["failures_omitted"] += len(failures) - len(out["failures"])
    for key in ("refusal", "error"):
        found = [i[key] for i in items if i.get(key)]
        if found:
            out[key] = found[-1]
    whys = [i.get("why") for i in items]
    out["why"] = next((w for w in (Why.REFUSED, Why.ERROR, Why.FAILED) if w in whys), Why.ALWAYS)
    out["since"] = items[0].get("time")
    out["text"] = alert_text(out)
    return out


def alert_text(p: dict[str, Any]) -> str:
    counts = ", ".join(f"{p[k]} {k}" for k in ("failed", "uploaded", "downloaded", "deleted") if p.get(k))
    what = {Why.FAILED: "files failed", Why.REFUSED: "a safety guard refused", Why.ERROR: "the run failed",
            Why.ALWAYS: "finished"}.get(p.get("why", ""), "finished")
    batches = f" in {p['batches']} batches" if p.get("batches", 0) > 1 else ""
    line = f"bucket-sync {p.get('op')} on {p.get('host')}: {what}{batches} ({counts or 'nothing to do'}; exit {p.get('exit_code')})"
    line += f": {p.get('source')} -> {p.get('destination')}"
    if p.get("refusal"):
        line += f". Refused: {p['refusal']}"
    if p.get("error"):
        line += f". Error: {p['error']}"
    if p.get("failures"):
        first = p["failures"][0]
        more = len(p["failures"]) - 1 + p.get("failures_omitted", 0)
        line += f". First failure: {first['key']}: {first['error']}" + (f" (and {more} more)" if more else "")
    return line


__all__ = ["FailureSamples", "RunContext", "Why", "alert_payload", "alert_text", "merge_alerts", "why_alert"]
