"""Reality Management v1 for the emulator: the properties of a reality data, how create and update bodies
are checked (422 ``InvalidRealityDataRequest`` with ``details[].target``), their representations
(``Prefer: return=minimal`` or ``return=representation``) and list paging (``$top``, ``continuationToken``).

Checked against the Reality Management API documentation (developer.bentley.com). Where the docs are silent (the default
page size, what a delete of a reality data shared with several iTwins answers), the choice is noted.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# The types the docs list (and a few more Bentley tools create); an unknown one is a 422.
TYPES = ("CCImageCollection", "ContextScene", "CCOrientations", "ContextDetector", "RealityMesh3DTiles",
         "Terrain3DTiles", "Cesium3DTiles", "OPC", "PNTS", "LAS", "LAZ", "E57", "PLY", "OBJ", "3MX", "3SM",
         "OMR", "KML", "GeoJSON", "SHP", "Unstructured")
CLASSIFICATIONS = ("Terrain", "Imagery", "Pinned", "Model", "Undefined")
# Not documented: what a list answers without $top. Small enough that paging is exercised.
DEFAULT_TOP = 100
MAX_TOP = 1000
DATA_CENTERS = {"eastus": "East US", "westeurope": "West Europe", "northeurope": "North Europe",
                "australiaeast": "Australia East", "japaneast": "Japan East", "uksouth": "UK South"}
INVALID = ("InvalidRealityDataRequest", "Invalid RealityData request.")
# Modifiable properties: (API name, attribute).
_TEXT = (("displayName", "display_name"), ("dataset", "dataset"), ("group", "group"),
         ("description", "description"), ("rootDocument", "root_document"))


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class RealityDataRecord:
    rd_id: str
    container: str
    itwin_id: str
    write_permissions: str
    read_permissions: str
    display_name: str = ""
    type: str = "Unstructured"
    classification: str = "Undefined"
    description: str | None = None
    dataset: str | None = None
    group: str | None = None
    root_document: str | None = None
    tags: list[str] = field(default_factory=list)
    acquisition: dict | None = None
    authoring: bool = False
    owner_id: str = ""
    created: str = field(default_factory=now_rfc3339)
    modified: str = ""
    last_accessed: str = ""
    shared_with: list[str] = field(default_factory=list)  # iTwins associated besides itwin_id
    # What happened to it, with the authoring flag and the blob count at that moment: tests read the order
    # (write access handed out while authoring was true; authoring false only once every file was there).
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.modified = self.modified or self.created
        self.last_accessed = self.last_accessed or self.created

    def associated(self, itwin_id: str) -> bool:
        return itwin_id == self.itwin_id or itwin_id in self.shared_with

    def record(self, event: str, blobs: int) -> None:
        self.history.append({"event": event, "authoring": self.authoring, "blobs": blobs})

    def representation(self, *, size_kb: int, datacenter: str, minimal: bool = False) -> dict:
        data: dict[str, Any] = {"id": self.rd_id, "displayName": self.display_name, "type": self.type}
        if minimal:
            return data
        for key, attr in _TEXT[1:]:
            if getattr(self, attr) is not None:
                data[key] = getattr(self, attr)
        data.update({
            "classification": self.classification,
            "size": size_kb,
            "authoring": self.authoring,
            "dataCenterLocation": DATA_CENTERS.get(datacenter, datacenter),
            "tags": list(self.tags),
            "ownerId": self.owner_id,
            "createdDateTime": self.created,
            "modifiedDateTime": self.modified,
            "lastAccessedDateTime": self.last_accessed,
        })
        if self.acquisition:
            data["acquisition"] = dict(self.acquisition)
        return data


def _invalid_value(value: object, target: str) -> dict:
    return {"code": "InvalidValue", "message": f"The value '{value}' is not valid.", "target": target}


def _missing(target: str) -> dict:
    return {"code": "MissingRequiredProperty", "message": "Required property is missing.", "target": target}


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def check_fields(body: dict, *, creating: bool) -> tuple[dict[str, Any], list[dict]]:
    """(attribute changes, 422 details) for a create (``iTwinId`` handled by the caller) or update body."""
    changes: dict[str, Any] = {}
    details: list[dict] = []
    allowed = {k for k, _ in _TEXT} | {"type", "classification", "tags", "acquisition", "authoring"}
    if creating:
        allowed.add("iTwinId")
        for required in ("displayName", "type"):
            if body.get(required) in (None, ""):
                details.append(_missing(required))
    for key in body:
        if key not in allowed:
            details.append({"code": "InvalidProperty", "message": f"The property '{key}' is not supported.",
                            "target": key})
    for key, attr in _TEXT:
        if key in body and body[key] is not None:
            value = body[key]
            if not isinstance(value, str) or (key == "displayName" and not value.strip()):
                details.append(_invalid_value(value, key))
            else:
                changes[attr] = value
    if body.get("type") not in (None, ""):
        if body["type"] not in TYPES:
            details.append(_invalid_value(body["type"], "type"))
        else:
            changes["type"] = body["type"]
    if "classification" in body:
        if body["classification"] not in CLASSIFICATIONS:
            details.append(_invalid_value(body["classification"], "classification"))
        else:
            changes["classification"] = body["classification"]
    if "tags" in body:
        tags = body["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            details.append(_invalid_value(tags, "tags"))
        else:
            changes["tags"] = list(tags)
    if "authoring" in body:
        if not isinstance(body["authoring"], bool):
            details.append(_invalid_value(body["authoring"], "authoring"))
        else:
            changes["authoring"] = body["authoring"]
    if "acquisition" in body:
        acquisition, problems = _check_acquisition(body["acquisition"])
        details.extend(problems)
        if not problems:
            changes["acquisition"] = acquisition
    return changes, details


def _check_acquisition(value: object) -> tuple[dict | None, list[dict]]:
    if not isinstance(value, dict):
        return None, [_invalid_value(value, "acquisition")]
    problems = []
    start, end = value.get("startDateTime"), value.get("endDateTime")
    if start is None:
        problems.append(_missing("acquisition.startDateTime"))
    elif _parse_time(start) is None:
        problems.append(_invalid_value(start, "acquisition.startDateTime"))
    if end is not None and _parse_time(end) is None:
        problems.append(_invalid_value(end, "acquisition.endDateTime"))
    elif end is not None and start is not None and _parse_time(start) and _parse_time(end) < _parse_time(start):
        problems.append({"code": "InvalidValue", "message": "The end date must be after the start date.",
                         "target": "acquisition.endDateTime"})
    if "acquirer" in value and not isinstance(value["acquirer"], str):
        problems.append(_invalid_value(value["acquirer"], "acquisition.acquirer"))
    return {k: v for k, v in value.items() if k in ("startDateTime", "endDateTime", "acquirer")}, problems


@dataclass(frozen=True)
class PageRequest:
    itwin_id: str | None
    offset: int
    top: int
    search: str | None
    types: tuple[str, ...]


def encode_token(page: PageRequest) -> str:
    raw = json.dumps({"i": page.itwin_id, "o": page.offset, "t": page.top, "q": page.search, "y": list(page.types)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_page(query: dict[str, list[str]]) -> tuple[PageRequest | None, dict | None]:
    """(the page asked for, or None with a 422 detail). The continuation token carries the filters and the
    page size; a ``$top`` beside it overrides the size."""
    def one(name: str) -> str | None:
        return query.get(name, [None])[0]

    top_text = one("$top")
    top = None
    if top_text is not None:
        try:
            top = int(top_text)
        except ValueError:
            top = -1
        if not 1 <= top <= MAX_TOP:
            return None, {"code": "InvalidValue", "message": f"The field Top must be between 1 and {MAX_TOP}.",
                          "target": "$top"}
    token = one("continuationToken")
    if token:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            page = PageRequest(data["i"], int(data["o"]), int(data["t"]), data["q"], tuple(data["y"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None, _invalid_value(token, "continuationToken")
        return (PageRequest(page.itwin_id, page.offset, top, page.search, page.types) if top else page), None
    types = tuple(t.strip() for t in (one("types") or "").split(",") if t.strip())
    return PageRequest(one("iTwinId"), 0, top or DEFAULT_TOP, one("$search") or None, types), None


def matches(record: RealityDataRecord, page: PageRequest) -> bool:
    if page.itwin_id and not record.associated(page.itwin_id.lower()):
        return False
    if page.types and record.type.lower() not in {t.lower() for t in page.types}:
        return False
    return not page.search or page.search.lower() in record.display_name.lower()


def wants_representation(prefer: str | None) -> bool:
    return any(part.strip().lower() == "return=representation" for part in (prefer or "").split(","))
