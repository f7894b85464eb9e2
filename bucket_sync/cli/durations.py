"""Durations as rclone reads them (``--modify-window 2s``): a number with a unit, several summed."""

from __future__ import annotations

import re

from ..errors import UsageError

_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
             "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


def parse_duration_ns(value: str | int | float | None, option: str) -> int | None:
    """'2s', '500ms', '1m30s', '1.5s' -> nanoseconds; a bare number is seconds (as rclone takes it);
    None or '' -> None. A usage error (exit 2) for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise UsageError(f"{option} {value!r} is not a duration", hint="use e.g. 2s, 500ms or 1m")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            if _PART.sub("", text):  # something that is not <number><unit>
                raise UsageError(f"{option} {value!r} is not a duration",
                                 hint="use a number and a unit: ns, us, ms, s, m, h or d, e.g. 2s or 1m30s") from None
            return sum(round(float(n) * _UNITS_NS[unit]) for n, unit in _PART.findall(text))
    if seconds < 0:
        raise UsageError(f"{option} {value!r} is negative", hint="use 0 or more, e.g. 2s")
    return round(seconds * 1_000_000_000)
