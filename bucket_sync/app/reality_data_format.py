"""How reality data are shown: the ``ls`` table, ``show``'s property list, and their JSON lines.

JSON lines are ``{"event": "reality_data", <every property as the API sent it>, "time": ...}``; human
output names the properties by the API's own names too, so the two read alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..platform.reality_data import RealityData
from .render import human_bytes, with_time

_COLUMNS = ("ID", "NAME", "TYPE", "SIZE", "CREATED", "AUTHORING")
_NAME_MAX = 48


def as_event(rd: RealityData) -> dict[str, Any]:
    return {"event": "reality_data", **rd.properties}


def json_line(obj: Mapping[str, Any]) -> str:
    """One JSON line, with the time it happened (README.md, "Output": every event carries ``time``, RFC 3339 UTC).
    ASCII escapes: any console or pipe can carry the line, and every JSON reader decodes it."""
    return json.dumps(with_time(dict(obj)))


def size_text(size_kb: int | None) -> str:
    return "-" if size_kb is None else human_bytes(size_kb * 1024)


def _when(value: str | None) -> str:
    """'2025-05-30T11:37:13.123Z' -> '2025-05-30 11:37' (UTC, as the API gives it)."""
    if not value:
        return "-"
    return value.replace("T", " ")[:16]


def _flag(value: bool | None) -> str:
    return "-" if value is None else str(value).lower()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Iterable[RealityData]) -> list[str]:
    """ls: id, name, type, size, created (UTC) and authoring, in columns; no lines for no rows."""
    cells = [(rd.id, _clip(rd.display_name or "", _NAME_MAX), rd.type or "-", size_text(rd.size_kb),
              _when(rd.created), _flag(rd.authoring)) for rd in rows]
    if not cells:
        return []
    widths = [max(len(c[i]) for c in [_COLUMNS, *cells]) for i in range(len(_COLUMNS))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [_COLUMNS, *cells]]


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        if not value:
            yield prefix, "-"
        for key, inner in value.items():
            yield from _flatten(f"{prefix}.{key}", inner)
    elif isinstance(value, list):
        items = [v if isinstance(v, str) else json.dumps(v) for v in value]
        yield prefix, ", ".join(items) if items else "-"
    elif isinstance(value, bool):
        yield prefix, str(value).lower()
    elif value is None:
        yield prefix, "-"
    else:
        yield prefix, str(value)


def details(rd: RealityData) -> list[str]:
    """show: every property, one per line (nested ones as ``acquisition.startDateTime``)."""
    pairs: list[tuple[str, str]] = []
    for key, value in rd.properties.items():
        if key == "size" and rd.size_kb is not None:
            pairs.append(("size", f"{rd.size_kb} KB ({size_text(rd.size_kb)})"))
        else:
            pairs.extend(_flatten(key, value))
    width = max((len(k) for k, _ in pairs), default=0) + 1
    return [f"{(key + ':').ljust(width)} {value}" for key, value in pairs]
