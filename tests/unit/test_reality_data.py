"""Reality data calls and their pure parts: what goes out, how every page is followed (and never to another
host), how answers are read and shown, and the flat-folder check done before anything is created."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from bucket_sync.app.reality_data_format import as_event, details, table
from bucket_sync.app.reality_data_ops import check_capture_folder
from bucket_sync.errors import ApiError, ExitCode, UsageError
from bucket_sync.platform.api import ACCEPT_V1, PlatformApi
from bucket_sync.platform.credentials import StaticToken
from bucket_sync.platform.reality_data import Acquisition, RealityData, RealityDataFields
from bucket_sync.sync.filters import PathFilter

API = "https://api.example.test"
ITWIN = "90b86d36-ca6f-4d9f-a795-e3118d2a0073"
RD = "11111111-2222-3333-4444-555555555555"
TOKEN = "api-access-token-xyz"


def item(n: int, **extra) -> dict:
    return {"id": f"{n:08}-2222-3333-4444-555555555555", "displayName": f"scan {n}", "type": "LAS", **extra}


class Api:
    """Answers each request with the next of ``replies`` (status, JSON body) and keeps the requests."""

    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.replies.pop(0)
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    def client(self):
        return PlatformApi(API, StaticToken(TOKEN), http=httpx.Client(transport=httpx.MockTransport(self)),
                           sleep=lambda s: None).reality_data


def test_create_sends_the_itwin_and_only_the_fields_given():
    api = Api((201, {"realityData": item(1, authoring=True, size=0)}))
    fields = RealityDataFields(display_name="Flight", type="CCImageCollection", tags=("a", "b"), authoring=True,
                               acquisition=Acquisition.from_options("2025-05-30", None, "me"))
    rd = api.client().create(ITWIN, fields)
    request = api.requests[0]
    assert (request.method, str(request.url)) == ("POST", f"{API}/reality-management/reality-data/")
    assert request.headers["Accept"] == ACCEPT_V1 and request.headers["Prefer"] == "return=representation"
    assert json.loads(request.content) == {"iTwinId": ITWIN, "displayName": "Flight", "type": "CCImageCollection",
                                           "tags": ["a", "b"], "authoring": True,
                                           "acquisition": {"startDateTime": "2025-05-30T00:00:00Z", "acquirer": "me"}}
    assert (rd.id, rd.authoring, rd.size_kb) == (item(1)["id"], True, 0)


def test_every_page_is_followed_as_given():
    api = Api((200, {"realityData": [item(1), item(2)],
                     "_links": {"next": {"href": f"{API}/reality-management/reality-data/?continuationToken=abc"}}}),
              (200, {"realityData": [item(3)], "_links": {"next": None}}))
    names = [rd.display_name for rd in api.client().iter_all(ITWIN, types=("LAS", "LAZ"), search="scan", top=2)]
    assert names == ["scan 1", "scan 2", "scan 3"]
    first, second = api.requests
    assert dict(first.url.params) == {"iTwinId": ITWIN, "$top": "2", "$search": "scan", "types": "LAS,LAZ"}
    assert str(second.url) == f"{API}/reality-management/reality-data/?continuationToken=abc"  # as given
    assert second.headers["Prefer"] == "return=representation"


def test_a_next_page_on_another_host_is_not_followed():
    api = Api((200, {"realityData": [item(1)], "_links": {"next": {"href": "https://evil.example/steal?x=1"}}}))
    with pytest.raises(ApiError, match="another host") as caught:
        list(api.client().iter_all(ITWIN))
    assert len(api.requests) == 1 and TOKEN not in str(caught.value)


def test_a_page_that_repeats_itself_ends_the_listing_with_an_error():
    again = {"realityData": [item(1)], "_links": {"next": {"href": "/reality-management/reality-data/?continuationToken=x"}}}
    api = Api((200, again), (200, again), (200, again))
    with pytest.raises(ApiError, match="already had given|had already given"):
        list(api.client().iter_all(ITWIN))


def test_a_422_names_the_options_to_fix_and_a_403_the_permission_or_itwin():
    invalid = {"error": {"code": "InvalidRealityDataRequest", "message": "Invalid RealityData request.",
                         "details": [{"code": "InvalidValue", "message": "The value 'X' is not valid.", "target": "type"}]}}
    with pytest.raises(ApiError) as caught:
        Api((422, invalid)).client().create(ITWIN, RealityDataFields(display_name="n", type="X"))
    assert caught.value.exit_code == ExitCode.USAGE and "type: The value 'X' is not valid." in caught.value.message
    assert caught.value.hint.startswith("correct --type (common types: CCImageCollection")
    forbidden = {"error": {"code": "InsufficientPermissions", "message": "no"}}
    with pytest.raises(ApiError) as caught:
        Api((403, forbidden)).client().get(RD)
    assert caught.value.exit_code == ExitCode.AUTH and "pass --itwin" in caught.value.hint
    with pytest.raises(ApiError) as caught:
        Api((403, forbidden)).client().delete(RD, itwin_id=ITWIN)
    assert f"realitydata_manage permission on iTwin {ITWIN}" in caught.value.hint


def test_an_update_answered_without_the_object_reads_it_back():
    api = Api((204, None), (200, {"realityData": item(7, authoring=False)}))
    rd = api.client().update(RD, RealityDataFields(authoring=False))
    assert rd.authoring is False
    assert [r.method for r in api.requests] == ["PATCH", "GET"]
    assert json.loads(api.requests[0].content) == {"authoring": False}


def test_answers_are_read_defensively():
    rd = RealityData.from_api({"id": RD.upper(), "displayName": "n", "size": "big", "extent": {"a": 1}}, "x")
    assert (rd.id, rd.authoring, rd.size_kb, rd.type) == (RD, None, None, None)
    assert as_event(rd)["extent"] == {"a": 1}  # a property we do not know is kept and shown
    with pytest.raises(ApiError, match="without an id"):
        RealityData.from_api({"displayName": "n"}, "get it")


@pytest.mark.parametrize("start, end, message", [
    (None, "2025-01-01", "needs --acquisition-start"),
    ("2025-01-02", "2025-01-01", "is before"),
    ("yesterday", None, "is not a date and time"),
])
def test_acquisition_times_are_checked_before_any_call(start, end, message):
    with pytest.raises(UsageError, match=message):
        Acquisition.from_options(start, end, None)


def test_acquisition_times_become_utc():
    acquisition = Acquisition.from_options("2025-05-30T10:00+02:00", "2025-05-30T09:30:15Z", None)
    assert acquisition.body() == {"startDateTime": "2025-05-30T08:00:00Z", "endDateTime": "2025-05-30T09:30:15Z"}


def test_the_table_and_the_details():
    rows = [RealityData.from_api(item(1, size=2048, authoring=True, createdDateTime="2025-05-30T11:37:13.5Z"), "x"),
            RealityData.from_api(item(2), "x")]
    lines = table(rows)
    assert lines[0].split() == ["ID", "NAME", "TYPE", "SIZE", "CREATED", "AUTHORING"]
    assert lines[1].split() == [item(1)["id"], "scan", "1", "LAS", "2.0", "MiB", "2025-05-30", "11:37", "true"]
    assert lines[2].split()[-3:] == ["-", "-", "-"]
    shown = [" ".join(line.split()) for line in
             details(RealityData.from_api(item(3, size=5, acquisition={"startDateTime": "t0"}, tags=[]), "x"))]
    assert shown[3:] == ["size: 5 KB (5.0 KiB)", "acquisition.startDateTime: t0", "tags: -"]


def test_a_flat_type_refuses_files_in_subfolders(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    check_capture_folder(str(tmp_path), "CCImageCollection", PathFilter())
    (tmp_path / "empty").mkdir()
    check_capture_folder(str(tmp_path), "CCImageCollection", PathFilter())  # an empty folder uploads nothing
    (tmp_path / "thumbs").mkdir()
    (tmp_path / "thumbs" / "t.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"thumbs/t\.jpg.*nothing was created"):
        check_capture_folder(str(tmp_path), "ccimagecollection", PathFilter())
    check_capture_folder(str(tmp_path), "CCImageCollection", PathFilter.from_options(exclude=("thumbs/**",)))
    check_capture_folder(str(tmp_path), "Unstructured", PathFilter())  # a tree is fine for other types


def test_the_capture_folder_must_be_a_folder(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        check_capture_folder(str(tmp_path / "missing"), "LAS", PathFilter())
    (tmp_path / "f.las").write_bytes(b"x")
    with pytest.raises(UsageError, match="is not a folder"):
        check_capture_folder(str(tmp_path / "f.las"), "LAS", PathFilter())


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinks_in_subfolders_do_not_count(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "a.jpg", tmp_path / "sub" / "link.jpg")
    check_capture_folder(str(tmp_path), "CCImageCollection", PathFilter())  # upload skips symlinks
