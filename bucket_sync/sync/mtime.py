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


# Seconds at midnight UTC of each date seen ("YYYY-MM-DD"): a listing's mtimes share few dates, and this
# skips building a datetime per blob (a no-op run parses one mtime per unchanged file).
_MIDNIGHTS: dict[str, int] = {}
_UTC_FAST = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")


def parse_mtime(text: str | None) -> int | None:
    """Nanoseconds since the epoch, or None when the value is missing or not RFC 3339."""
    if not text:
        return None
    fast = _UTC_FAST.fullmatch(text)  # the form rclone and bucket-sync write
    if fast is not None:
        date, hour, minute, second, frac = fast.groups()
        midnight = _MIDNIGHTS.get(date)
        if midnight is None:
            try:
                day_start = datetime(int(date[:4]), int(date[5:7]), int(date[8:]), tzinfo=timezone.utc)
            except ValueError:
                return None
            midnight = int(day_start.timestamp())
            if len(_MIDNIGHTS) < 4096:
                _MIDNIGHTS[date] = midnight
        h, mi, sec = int(hour), int(minute), int(second)
        if h > 23 or mi > 59 or sec > 59:
            return None  # as datetime() refuses them below
        ns = int(frac.ljust(9, "0")) if frac else 0
        return (midnight + h * 3600 + mi * 60 + sec) * 1_000_000_000 + ns
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
