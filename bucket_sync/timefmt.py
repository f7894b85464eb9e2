"""Moments as text: RFC 3339 UTC for what machines read (JSON, --long listings), a plain UTC form for
messages. (Blob ``mtime`` metadata keeps its own nanosecond form: sync/mtime.py.)"""

from __future__ import annotations

from datetime import datetime, timezone


def _utc(moment: datetime | float) -> datetime:
    if isinstance(moment, datetime):
        return moment.astimezone(timezone.utc)
    return datetime.fromtimestamp(moment, timezone.utc)


def rfc3339(moment: datetime | float) -> str:
    """``2026-12-01T09:50:14Z`` for a datetime or epoch seconds (whole seconds)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def readable_utc(moment: datetime | float) -> str:
    """``2026-12-01 09:50:14 UTC``, for messages."""
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")
