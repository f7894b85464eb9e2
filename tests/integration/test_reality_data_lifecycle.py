"""`bucket-sync reality-data create / ls / show / update / delete` and the authoring flag, through the real
command against the emulator: a surveyor's day from creating a capture to deleting it."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import time
import uuid

import httpx
import pytest

pytestmark = pytest.mark.integration

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COLLECTION = r"/reality-management/reality-data/?$"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def timeless(lines: list[dict]) -> list[dict]:
    """The JSON lines without their ``time`` (every event has one, RFC 3339 UTC)."""
    assert all(RFC3339.match(line.get("time", "")) for line in lines), lines
    return [{k: v for k, v in line.items() if k != "time"} for line in lines]


@pytest.fixture
def photos(make_files, tmp_path):
    return make_files(tmp_path / "photos", {f"IMG_{i:04}.JPG": 2048 + i for i in range(6)})


def rd_blobs(azurite, rd_id: str) -> list[str]:
    return sorted(b.name for b in azurite.container_client(f"rd-{rd_id}").list_blobs())


def history(emulator, rd_id: str) -> list[tuple[str, bool, int]]:
    return [(h["event"], h["authoring"], h["blobs"]) for h in emulator.reality_data_record(rd_id)["history"]]


def test_a_capture_from_creation_to_deletion(cli, emulator, azurite, new_itwin, photos):
    created = cli("reality-data", "create", "--itwin", new_itwin, "--name", "Flight 42", "--type", "CCImageCollection",
                  "--description", "bridge, north side", "--tag", "drone", "--tag", "2025",
                  "--acquisition-start", "2025-05-30T08:00Z", "--acquisition-end", "2025-05-30 11:30")
    assert created.returncode == 0, created
    rd = created.stdout.strip()
    assert GUID.match(rd), created  # the id alone on stdout: what a script captures
    record = emulator.reality_data_record(rd)
    assert (record["display_name"], record["type"], record["itwin_id"]) == ("Flight 42", "CCImageCollection", new_itwin)
    assert record["tags"] == ["drone", "2025"] and record["description"] == "bridge, north side"
    assert record["acquisition"] == {"startDateTime": "2025-05-30T08:00:00Z", "endDateTime": "2025-05-30T11:30:00Z"}

    found = cli("reality-data", "ls", "--itwin", new_itwin)
    assert found.returncode == 0, found
    header, *rows = found.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "TYPE", "SIZE", "CREATED", "AUTHORING"]
    assert len(rows) == 1 and rows[0].startswith(rd) and "Flight 42" in rows[0] and "CCImageCollection" in rows[0]

    up = cli("upload", photos, f"reality-data://{rd}", "--itwin", new_itwin)
    assert up.returncode == 0, up
    assert rd_blobs(azurite, rd) == sorted(p.name for p in photos.iterdir())
    # Its authoring was false: the upload reads it and leaves it alone.
    assert emulator.request_count(rf"/reality-data/{rd}$", method="GET", status=200) == 1
    assert emulator.request_count(rf"/reality-data/{rd}$", method="PATCH") == 0

    shown = cli("reality-data", "show", rd, "--itwin", new_itwin)
    assert shown.returncode == 0, shown
    props = dict(re.split(r":\s+", line, maxsplit=1) for line in shown.stdout.splitlines())
    assert props["id"] == rd and props["displayName"] == "Flight 42" and props["authoring"] == "false"
    assert props["tags"] == "drone, 2025" and props["acquisition.startDateTime"] == "2025-05-30T08:00:00Z"
    assert props["size"] == "13 KB (13.0 KiB)"  # 12,303 bytes, in whole KB as the API counts
    for key in ("classification", "dataCenterLocation", "createdDateTime", "modifiedDateTime", "ownerId"):
        assert key in props, shown

    changed = cli("reality-data", "update", rd, "--name", "Flight 42 (north)", "--tag", "bridge",
                  "--classification", "Imagery", "--json")
    assert changed.returncode == 0, changed
    assert [line["event"] for line in timeless(changed.json_lines)] == ["reality_data"]
    assert changed.json_lines[0]["displayName"] == "Flight 42 (north)" and changed.json_lines[0]["tags"] == ["bridge"]
    record = emulator.reality_data_record(rd)
    assert (record["display_name"], record["tags"], record["classification"]) == ("Flight 42 (north)", ["bridge"], "Imagery")

    refused = cli("reality-data", "delete", rd)  # stdin is not a terminal
    assert refused.returncode == 2, refused
    assert "not on a terminal" in refused.stderr and "--yes" in refused.stderr
    assert emulator.reality_data_record(rd) and emulator.request_count(r"/reality-data/", method="DELETE") == 0

    deleted = cli("reality-data", "delete", rd, "--yes", "--json")
    assert deleted.returncode == 0, deleted
    assert timeless(deleted.json_lines) == [{"event": "delete", "reality_data_id": rd, "status": "ok", "exit_code": 0}]
    assert emulator.reality_data_record(rd) == {}
    gone = cli("reality-data", "show", rd)
    assert gone.returncode == 4 and "RealityDataNotFound" in gone.stderr, gone


def test_create_with_upload_is_authoring_while_the_files_go_in(cli, emulator, azurite, new_itwin, photos):
    result = cli("reality-data", "create", "--itwin", new_itwin, "--name", "Flight 43", "--type", "CCImageCollection",
                 "--upload", photos, "--json")
    assert result.returncode == 0, result
    first, *rest = result.json_lines
    assert first["event"] == "reality_data" and first["authoring"] is True, first
    rd = first["id"]
    assert result.summary["uploaded"] == 6 and result.summary["exit_code"] == 0
    assert result.json_lines[-1] == result.summary  # the summary comes last, after the authoring change
    assert any(e["event"] == "notice" and "authoring set to false" in e["message"] for e in rest)
    assert rd_blobs(azurite, rd) == sorted(p.name for p in photos.iterdir())
    # The emulator's record: created authoring, write access handed out while authoring, and authoring
    # false only once all six files were there.
    events = history(emulator, rd)
    assert events[0] == ("created", True, 0)
    assert ("writeaccess", True, 0) in events
    assert events[-1] == ("updated", False, 6)
    assert [e for e in events if not e[1]] == [("updated", False, 6)]


def test_ls_lists_every_page(cli, emulator, new_itwin):
    ids = [emulator.add_reality_data(itwin_id=new_itwin, display_name=f"scan {i}", rd_type="LAS" if i % 2 else "E57")
           for i in range(5)]
    emulator.add_reality_data()  # another iTwin's: never listed
    emulator.reset()
    result = cli("reality-data", "ls", "--itwin", new_itwin, "--top", "2", "--json")
    assert result.returncode == 0, result
    assert [e["id"] for e in result.events if e["event"] == "reality_data"] == ids
    assert timeless(result.json_lines)[-1] == {"event": "summary", "op": "reality-data ls", "count": 5, "exit_code": 0}
    assert emulator.request_count(COLLECTION, method="GET", status=200) == 3  # 2 + 2 + 1
    # Every property, not the minimal default: size and authoring are in the table.
    assert all("size" in e and "authoring" in e for e in result.events if e["event"] == "reality_data")

    human = cli("reality-data", "ls", "--itwin", new_itwin, "--top", "2", "--type", "LAS", "--search", "SCAN")
    assert human.returncode == 0, human
    assert [line.split()[0] for line in human.stdout.splitlines()[1:]] == [ids[1], ids[3]]


def test_the_emulator_pages_as_documented(emulator, new_itwin):
    for i in range(3):
        emulator.add_reality_data(itwin_id=new_itwin, display_name=f"mesh {i}")
    headers = {"Authorization": f"Bearer {emulator.issue_access_token()}",
               "Accept": "application/vnd.bentley.itwin-platform.v1+json"}
    url = f"{emulator.url}/reality-management/reality-data/"
    too_many = httpx.get(url, params={"iTwinId": new_itwin, "$top": "1001"}, headers=headers)
    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"][0]["message"] == "The field Top must be between 1 and 1000."
    first = httpx.get(url, params={"iTwinId": new_itwin, "$top": "2"}, headers=headers).json()
    assert [set(item) for item in first["realityData"]] == [{"id", "displayName", "type"}] * 2  # return=minimal
    second = httpx.get(first["_links"]["next"]["href"], headers=headers).json()  # keeps the size of 2
    assert len(second["realityData"]) == 1 and "next" not in second.get("_links", {})


def test_a_nested_folder_for_a_flat_type_is_refused_before_anything_is_created(cli, emulator, new_itwin, make_files,
                                                                               tmp_path):
    src = make_files(tmp_path / "shoot", {"IMG_1.JPG": 10, "day2/IMG_2.JPG": 10})
    result = cli("reality-data", "create", "--itwin", new_itwin, "--name", "Shoot", "--type", "CCImageCollection",
                 "--upload", src)
    assert result.returncode == 2, result
    assert "flat folder of photos" in result.stderr and "day2/IMG_2.JPG" in result.stderr
    assert "nothing was created" in result.stderr and "Traceback" not in result.stderr
    assert emulator.requests == []  # not even a token was asked for
    assert not [r for r in emulator.state()["realityData"] if r["itwin_id"] == new_itwin]

    excluded = cli("reality-data", "create", "--itwin", new_itwin, "--name", "Shoot", "--type", "CCImageCollection",
                   "--upload", src, "--exclude", "day2/**", "-q")
    assert excluded.returncode == 0, excluded
    assert rd_blobs(emulator.azurite, excluded.stdout.strip()) == ["IMG_1.JPG"]


def test_an_unknown_type_is_refused_by_the_api_with_its_details(cli, emulator, new_itwin):
    result = cli("reality-data", "create", "--itwin", new_itwin, "--name", "x", "--type", "PhotoCollection", "--json")
    assert result.returncode == 2, result
    assert "InvalidRealityDataRequest" in result.stderr
    assert "type: The value 'PhotoCollection' is not valid." in result.stderr
    assert "hint: correct --type (common types: CCImageCollection, " in result.stderr  # which option, which values
    assert result.json_lines[-1]["exit_code"] == 2 and "PhotoCollection" in result.json_lines[-1]["error"]
    assert not [r for r in emulator.state()["realityData"] if r["itwin_id"] == new_itwin]


def test_an_interrupted_create_upload_is_finished_by_upload(cli, emulator, azurite, new_itwin, make_files, tmp_path):
    src = make_files(tmp_path / "big-shoot", {f"IMG_{i:02}.JPG": 48 * 1024 for i in range(8)})
    proc = subprocess.Popen([str(cli.executable), "reality-data", "create", "--itwin", new_itwin, "--name", "Long day",
                             "--type", "CCImageCollection", "--upload", str(src), "--bwlimit", "96K",
                             "--concurrency", "1"],
                            env=cli.env_for(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(cli.home.parent))
    rd = proc.stdout.readline().decode().strip()  # printed before the upload starts
    assert GUID.match(rd), rd
    deadline = time.monotonic() + 30
    while not rd_blobs(azurite, rd) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a power cut, mid-upload
    proc.communicate(timeout=30)
    done = rd_blobs(azurite, rd)
    assert 1 <= len(done) < 8, done
    assert emulator.reality_data_record(rd)["authoring"] is True

    resumed = cli("upload", src, f"reality-data://{rd}", "--itwin", new_itwin, "--json")
    assert resumed.returncode == 0, resumed
    assert resumed.summary["uploaded"] == 8 - len(done) and resumed.summary["skipped"] == len(done)
    assert rd_blobs(azurite, rd) == sorted(p.name for p in src.iterdir())
    assert emulator.reality_data_record(rd)["authoring"] is False
    assert history(emulator, rd)[-1] == ("updated", False, 8)


def test_authoring_left_true_by_a_failed_patch_is_cleared_by_the_next_upload(cli, emulator, azurite, new_itwin, photos):
    emulator.inject(r"/reality-management/reality-data/[^/]+$", 500, method="PATCH")
    result = cli("reality-data", "create", "--itwin", new_itwin, "--name", "Flight 44", "--type", "CCImageCollection",
                 "--upload", photos)
    rd = result.stdout.splitlines()[0]
    assert result.returncode == 1, result
    assert "every file is uploaded, but reality data" in result.stderr and "--authoring false" in result.stderr
    assert len(rd_blobs(azurite, rd)) == 6 and emulator.reality_data_record(rd)["authoring"] is True

    again = cli("upload", photos, f"reality-data://{rd}", "--json")
    assert again.returncode == 0, again
    assert again.summary["uploaded"] == 0 and again.summary["skipped"] == 6  # nothing sent again
    assert "authoring set to false" in again.stderr
    assert emulator.reality_data_record(rd)["authoring"] is False


@pytest.mark.parametrize("answer, code", [("y", 0), ("n", 1)])
def test_delete_asks_on_a_terminal(cli, emulator, new_itwin, answer, code):
    rd = emulator.add_reality_data(itwin_id=new_itwin, display_name="old scan")
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([str(cli.executable), "reality-data", "delete", rd], env=cli.env_for(), stdin=follower,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(cli.home.parent))
        os.write(leader, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == code, (out, err)
    assert b"Delete reality data " + rd.encode() + b" ('old scan', Unstructured, 0 B)" in err
    assert bool(emulator.reality_data_record(rd)) is (answer == "n")


def test_refusals_name_the_permission_or_the_itwin(cli, emulator, new_itwin):
    rd = emulator.add_reality_data(itwin_id=new_itwin)
    emulator.configure_itwin(new_itwin, denied_permissions=["realitydata_create", "realitydata_use"])
    create = cli("reality-data", "create", "--itwin", new_itwin, "--name", "x", "--type", "LAS")
    assert create.returncode == 3, create
    assert "InsufficientPermissions" in create.stderr and f"realitydata_create permission on iTwin {new_itwin}" in create.stderr
    show = cli("reality-data", "show", rd)
    assert show.returncode == 3 and "pass --itwin" in show.stderr, show
    listed = cli("reality-data", "ls", "--itwin", new_itwin)
    assert listed.returncode == 3 and "realitydata_use" in listed.stderr, listed


def test_not_found_conflict_and_shared_deletes(cli, emulator, new_itwin):
    missing = str(uuid.uuid4())
    for args in (["show", missing], ["delete", missing, "--yes"], ["update", missing, "--authoring", "false"]):
        result = cli("reality-data", *args)
        assert result.returncode == 4 and "RealityDataNotFound" in result.stderr, result
    rd = emulator.add_reality_data(itwin_id=new_itwin)
    emulator.inject(r"/reality-data/[^/]+$", 409, method="PATCH")
    conflict = cli("reality-data", "update", rd, "--description", "x")
    assert conflict.returncode == 1 and "409 Conflict" in conflict.stderr, conflict
    emulator.share_reality_data(rd, emulator.add_itwin())
    shared = cli("reality-data", "delete", rd, "--yes")
    assert shared.returncode == 2 and "dissociate" in shared.stderr, shared
    assert emulator.reality_data_record(rd)
    wrong_itwin = cli("reality-data", "delete", rd, "--yes", "--itwin", emulator.add_itwin())
    assert wrong_itwin.returncode == 4 and emulator.reality_data_record(rd), wrong_itwin
    bad = cli("reality-data", "update", "not-a-guid", "--name", "x")
    assert bad.returncode == 2 and "is not a GUID" in bad.stderr, bad
    nothing = cli("reality-data", "update", rd)
    assert nothing.returncode == 2 and "nothing to update" in nothing.stderr, nothing


def test_a_rate_limited_create_is_waited_out_and_creates_one(cli, emulator, new_itwin):
    emulator.inject(COLLECTION, 429, retry_after=1, method="POST")
    result = cli("reality-data", "create", "--itwin", new_itwin, "--name", "x", "--type", "OPC", "--json")
    assert result.returncode == 0, result
    assert emulator.request_count(COLLECTION, method="POST", status=429) == 1
    assert [r["rd_id"] for r in emulator.state()["realityData"] if r["itwin_id"] == new_itwin] == [result.json_lines[0]["id"]]


def test_an_upload_to_a_sas_url_never_loads_the_api_client(cli, azurite, make_files, tmp_path):
    """The authoring check is for reality-data:// targets only: a SAS URL upload stays off the API."""
    import sys

    name = f"plain-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] == 'httpx'"
             " or m.endswith('reality_data_ops')), file=sys.stderr))\n"
             "from bucket_sync.cli.main import main\n"
             "main(sys.argv[1:])\n")
    r = subprocess.run([sys.executable, "-c", probe, "upload", str(src), azurite.container_sas_url(name), "--json"],
                       capture_output=True, text=True, env=cli.env_for(), timeout=60)
    assert r.returncode == 0 and '"uploaded": 1' in r.stdout, r.stderr[-2000:]
    assert "IMPORTED []" in r.stderr, r.stderr[-500:]


def test_upload_options_without_upload_are_a_usage_error(cli, emulator, new_itwin):
    result = cli("reality-data", "create", "--itwin", new_itwin, "--name", "x", "--type", "LAS", "--exclude", "*.tmp")
    assert result.returncode == 2 and "--exclude only apply with --upload" in result.stderr, result
    assert emulator.requests == []


def test_a_command_s_own_options_never_come_from_another_command_s_variables(cli, emulator, new_itwin):
    rd = emulator.add_reality_data(itwin_id=new_itwin, display_name="keep me")
    shared = {"BUCKET_SYNC_NAME": "renamed", "BUCKET_SYNC_YES": "1", "BUCKET_SYNC_TYPE": "LAS"}
    assert cli("reality-data", "update", rd, "--description", "d", env=shared).returncode == 0
    assert emulator.reality_data_record(rd)["display_name"] == "keep me"
    assert len(cli("reality-data", "ls", "--itwin", new_itwin, env=shared).stdout.splitlines()) == 2  # no type filter
    assert cli("reality-data", "delete", rd, env=shared).returncode == 2 and emulator.reality_data_record(rd)
    assert "BUCKET_SYNC_REALITY_DATA_DELETE_YES" in cli("reality-data", "delete", "--help").stdout
    gone = cli("reality-data", "delete", rd, env={"BUCKET_SYNC_REALITY_DATA_DELETE_YES": "1"})
    assert gone.returncode == 0 and emulator.reality_data_record(rd) == {}, gone
