"""Reality Management v1: create, list, show, update and delete reality data (the containers themselves are
reached through read and write access, see api.py).

The answers are parsed defensively: every property the API sent is kept (``RealityData.properties``, shown
by ``show`` and ``--json``), and the few the program acts on are read from it with a fallback. A property
the API adds later is shown, never an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from ..errors import ApiError, ExitCode, UsageError
from ..timefmt import rfc3339
from .api_errors import invite_note, snippet

if TYPE_CHECKING:
    import httpx

    from .api import PlatformApi

COLLECTION = "/reality-management/reality-data/"
# Every property, not just id, displayName and type (the API's default for lists, "return=minimal").
PREFER_FULL = {"Prefer": "return=representation"}
MAX_TOP = 1000

# A flat folder of photos: Reality Modeling reads it as one image collection, without subfolders.
FLAT_TYPES = frozenset({"CCImageCollection"})
# Those a user most often needs (the API knows more, and is the judge: an unknown type is its 422).
COMMON_TYPES = ("CCImageCollection", "ContextScene", "CCOrientations", "RealityMesh3DTiles", "Cesium3DTiles",
                "OPC", "LAS", "LAZ", "E57", "PLY", "OBJ", "Unstructured")
CLASSIFICATIONS = ("Terrain", "Imagery", "Pinned", "Model", "Undefined")

# API property -> the option that sets it, so a 422 about "displayName" tells which option to fix.
OPTION_OF = {"displayName": "--name", "type": "--type", "classification": "--classification",
             "description": "--description", "tags": "--tag", "rootDocument": "--root-document",
             "dataset": "--dataset", "group": "--group", "authoring": "--authoring",
             "acquisition": "--acquisition-start/--acquisition-end/--acquirer", "iTwinId": "--itwin",
             "$top": "--top", "$search": "--search", "types": "--type"}
_INVALID_HINT = "correct the values named above"
_VALUES_OF = {"type": f"common types: {', '.join(COMMON_TYPES)}",
              "classification": f"one of {', '.join(CLASSIFICATIONS)}"}
_CONFLICT_HINT = "the reality data's current state does not allow this: see what the API said above"


@dataclass(frozen=True)
class Acquisition:
    start: str | None = None  # RFC 3339 UTC
    end: str | None = None
    acquirer: str | None = None

    @classmethod
    def from_options(cls, start: str | None, end: str | None, acquirer: str | None) -> "Acquisition | None":
        """--acquisition-start/--acquisition-end/--acquirer; times in ISO 8601 (a date alone is midnight, a
        time without an offset is UTC). UsageError for an unreadable time or an end before the start."""
        if not (start or end or acquirer):
            return None
        if end and not start:
            raise UsageError("--acquisition-end needs --acquisition-start", hint="give both, e.g. "
                             "--acquisition-start 2025-05-30T08:00Z --acquisition-end 2025-05-30T11:30Z")
        begun, ended = _moment(start, "--acquisition-start"), _moment(end, "--acquisition-end")
        if begun and ended and ended < begun:
            raise UsageError(f"--acquisition-end {end} is before --acquisition-start {start}")
        return cls(_rfc3339(begun), _rfc3339(ended), acquirer)

    def body(self) -> dict[str, str]:
        pairs = (("startDateTime", self.start), ("endDateTime", self.end), ("acquirer", self.acquirer))
        return {key: value for key, value in pairs if value is not None}


def _moment(value: str | None, option: str) -> datetime | None:
    if not value:
        return None
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date and time",
                         hint="use ISO 8601, e.g. 2025-05-30T08:00:00Z or 2025-05-30") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _rfc3339(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


@dataclass(frozen=True)
class RealityDataFields:
    """The properties to create a reality data with, or to change; None: not sent."""

    display_name: str | None = None
    type: str | None = None
    classification: str | None = None
    description: str | None = None
    dataset: str | None = None
    group: str | None = None
    root_document: str | None = None
    tags: tuple[str, ...] | None = None
    acquisition: Acquisition | None = None
    authoring: bool | None = None

    def body(self) -> dict[str, Any]:
        pairs = (("displayName", self.display_name), ("type", self.type), ("classification", self.classification),
                 ("description", self.description), ("dataset", self.dataset), ("group", self.group),
                 ("rootDocument", self.root_document),
                 ("tags", list(self.tags) if self.tags is not None else None),
                 ("acquisition", self.acquisition.body() if self.acquisition else None),
                 ("authoring", self.authoring))
        return {key: value for key, value in pairs if value is not None}


@dataclass(frozen=True)
class RealityData:
    """One reality data as the API described it. ``properties`` holds everything it sent, in its order."""

    id: str
    display_name: str | None
    type: str | None
    authoring: bool | None  # None: the answer did not say (a minimal representation)
    size_kb: int | None
    created: str | None
    properties: Mapping[str, Any]

    @classmethod
    def from_api(cls, data: object, what: str) -> "RealityData":
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"].strip():
            raise _unexpected(what, "a reality data without an id")
        authoring = data.get("authoring")
        size = data.get("size")
        return cls(
            id=data["id"].strip().lower(),
            display_name=_text(data.get("displayName")),
            type=_text(data.get("type")),
            authoring=authoring if isinstance(authoring, bool) else None,
            size_kb=int(size) if isinstance(size, (int, float)) and not isinstance(size, bool) else None,
            created=_text(data.get("createdDateTime")),
            properties=MappingProxyType(dict(data)),
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _unexpected(what: str, seen: str) -> ApiError:
    return ApiError(f"could not {what}: the API answered with {seen}", status=0, exit_code=ExitCode.FAILED,
                    hint="the API's answer may have changed: check --api-url, or report this")


def invalid_hint(details: tuple[tuple[str | None, str | None, str | None], ...]) -> str:
    """A 422's hint: the options behind the properties its details name, with the values they take."""
    fixes = []
    for _, _, target in details:
        prop = (target or "").split(".")[0]
        if prop and prop in OPTION_OF:
            fix = OPTION_OF[prop] + (f" ({_VALUES_OF[prop]})" if prop in _VALUES_OF else "")
            if fix not in fixes:
                fixes.append(fix)
    return f"correct {' and '.join(fixes)}" if fixes else _INVALID_HINT


def _forbidden_hint(permission: str, itwin_id: str | None, action: str, app_email: str | None) -> str:
    """A 403: access is decided from the iTwin, so without one the first fix is to name it."""
    if not itwin_id:
        return (f"{action} a reality data needs {permission} on its iTwin, and without one the API decides "
                f"from the reality data alone: pass --itwin <iTwinId> (the iTwin it belongs to or is shared with)")
    return (f"{action} a reality data needs the {permission} permission on iTwin {itwin_id}: ask an iTwin "
            f"administrator for a role that has it{invite_note(app_email)}")


class RealityDataClient:
    """The reality data calls, through one :class:`PlatformApi` (its retries, auth and error mapping)."""

    def __init__(self, api: "PlatformApi") -> None:
        self.api = api

    def _request(self, method: str, target: str, what: str, **kwargs: Any) -> "httpx.Response":
        try:
            return self.api.request(method, target, what, **kwargs)
        except ApiError as err:
            if err.status == 422 and err.hint == _INVALID_HINT:
                err.hint = invalid_hint(err.details)
            raise

    def _hints(self, permission: str, itwin_id: str | None, action: str, **overrides: str) -> dict[int, str]:
        hints = {403: _forbidden_hint(permission, itwin_id, action, self.api.tokens.app_email),
                 409: _CONFLICT_HINT, 422: _INVALID_HINT}
        if "invalid" in overrides:
            hints[422] = overrides["invalid"]
        return hints

    def create(self, itwin_id: str, fields: RealityDataFields) -> RealityData:
        """POST: 201 with the new reality data, associated with (and stored in the data center of) the iTwin."""
        what = f"create a reality data in iTwin {itwin_id}"
        resp = self._request("POST", COLLECTION, what, headers=PREFER_FULL,
                                json={"iTwinId": itwin_id, **fields.body()},
                                hints=self._hints("realitydata_create", itwin_id, "creating"))
        return RealityData.from_api(_member(resp, what), what)

    def get(self, rd_id: str, *, itwin_id: str | None = None) -> RealityData:
        what = f"get reality data {rd_id}"
        resp = self._request("GET", _item(rd_id), what, params={"iTwinId": itwin_id} if itwin_id else None,
                                hints=self._hints("realitydata_use", itwin_id, "reading"))
        return RealityData.from_api(_member(resp, what), what)

    def update(self, rd_id: str, fields: RealityDataFields, *, itwin_id: str | None = None) -> RealityData:
        what = f"update reality data {rd_id}"
        resp = self._request("PATCH", _item(rd_id), what, headers=PREFER_FULL, json=fields.body(),
                                hints=self._hints("realitydata_manage", itwin_id, "changing"))
        try:
            return RealityData.from_api(_member(resp, what), what)
        except ApiError:
            # The change was made: a 200/204 without the object must not read as a failure.
            return self.get(rd_id, itwin_id=itwin_id)

    def delete(self, rd_id: str, *, itwin_id: str | None = None) -> None:
        """DELETE: 204. The API deletes only a reality data associated with at most one iTwin."""
        what = f"delete reality data {rd_id}"
        self._request("DELETE", _item(rd_id), what, hints=self._hints(
            "realitydata_manage", itwin_id, "deleting",
            invalid=("a reality data associated with more than one iTwin cannot be deleted: dissociate the other "
                     "iTwins first (the iTwin Platform's reality data associations), then delete it")))

    def iter_all(self, itwin_id: str, *, types: tuple[str, ...] = (), search: str | None = None,
                 top: int | None = None) -> Iterator[RealityData]:
        """Every reality data of the iTwin, page after page: ``_links.next.href`` is followed as given (it
        carries the continuation token; without ``$top`` the next page keeps the first one's size)."""
        what = f"list the reality data of iTwin {itwin_id}"
        params: dict[str, str] = {"iTwinId": itwin_id}
        if top is not None:
            params["$top"] = str(top)
        if search:
            params["$search"] = search
        if types:
            params["types"] = ",".join(types)
        hints = self._hints("realitydata_use", itwin_id, "listing")
        target, kwargs = COLLECTION, {"params": params}
        seen: set[str] = set()
        while True:
            resp = self._request("GET", target, what, headers=PREFER_FULL, hints=hints, **kwargs)
            data = _json(resp)
            items = data.get("realityData") if isinstance(data, dict) else None
            if not isinstance(items, list) or not isinstance(data, dict):  # (the second: for the type checker)
                raise _unexpected(what, _seen(resp, data))
            for item in items:
                yield RealityData.from_api(item, what)
            href = _next_href(data)
            if href is None:
                return
            target, kwargs = self._same_api(href, what), {}
            if target in seen:
                raise _unexpected(what, f"a next page it had already given ({len(seen)} pages in)")
            seen.add(target)

    def _same_api(self, href: str, what: str) -> str:
        """The next page's absolute URL; it must be on the API we talk to (the bearer token goes with it)."""
        url = urljoin(self.api.api_url + "/", href)
        mine, theirs = urlsplit(self.api.api_url), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            raise _unexpected(what, f"a next page on another host ({theirs.scheme}://{theirs.netloc}); "
                                    "it was not followed, so the token is not sent there")
        return url


def _item(rd_id: str) -> str:
    return COLLECTION + quote(rd_id, safe="")


def _json(resp: "httpx.Response") -> object:
    try:
        return resp.json()
    except ValueError:
        return None


def _seen(resp: "httpx.Response", data: object) -> str:
    if isinstance(data, dict):
        return f"HTTP {resp.status_code} without the expected fields (fields: {', '.join(sorted(map(str, data)))})"
    return f"HTTP {resp.status_code} and {snippet(resp.text, resp.headers.get('content-type', ''))!r}"


def _member(resp: "httpx.Response", what: str) -> object:
    """``{"realityData": {...}}``, or the object itself as some answers may give it."""
    data = _json(resp)
    if isinstance(data, dict) and isinstance(data.get("realityData"), dict):
        return data["realityData"]
    if isinstance(data, dict) and "id" in data:
        return data
    raise _unexpected(what, _seen(resp, data))


def _next_href(data: dict[str, Any]) -> str | None:
    links = data.get("_links")
    nxt = links.get("next") if isinstance(links, dict) else None
    href = nxt.get("href") if isinstance(nxt, dict) else nxt
    return href.strip() if isinstance(href, str) and href.strip() else None
