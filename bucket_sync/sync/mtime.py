"""The ``mtime`` blob metadata, in the RFC 3339 form rclone writes (nanoseconds, trailing zeros trimmed)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


def format_mtime(mtime_ns: int) -> str:
    seconds, ns = divmod(mtime_ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if ns:
        base += "." + f"{ns:09d}".rstrip("0")
    return base + "Z"


def parse_mtime(text: str | None) -> int | None:
    """Nanoseconds since the epoch, or None when the value is missing or not RFC 3339."""
    if not text:
        return None
    m = _RFC3339.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
    except ValueError:
        return None
    offset = 0
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    ns = int((frac or "").ljust(9, "0")) if frac else 0
    return (int(dt.timestamp()) - offset) * 1_000_000_000 + ns


def datetime_to_ns(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1_000
