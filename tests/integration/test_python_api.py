"""The Python API (bucket_sync.upload/download/mirror/watch/check) in this process, against Azurite and the
emulator: typed summaries, every transfer event, the caller's own token source, errors as exceptions."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import bucket_sync
from bucket_sync.errors import ExitCode, NoCredentialsError, PermissionDeniedError, SafetyGuardError, UsageError

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    """The API runs in this process: its state, cache and config folders go to the test's own."""
    for var, sub in (("XDG_STATE_HOME", "state"), ("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_HOME", "config")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("ITWIN_ACCESS_TOKEN", "ITWIN_CLIENT_ID", "ITWIN_CLIENT_SECRET", "BUCKET_SYNC_STATE_DIR",
                "BUCKET_SYNC_CACHE_DIR", "BUCKET_SYNC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BUCKET_SYNC_LOGIN_STORE", "file")


@pytest.fixture
def site(azurite):
    name = f"api-{uuid.uuid4().hex[:10]}"
    azurite.create_container(name)
    return azurite.container_sas_url(name, "racwdl", 3600), azurite.container_client(name)


def test_upload_download_and_mirror_return_summaries_and_events(site, make_files, tmp_path):
    url, container = site
    src = make_files(tmp_path / "src", {"a.txt": "a", "b/c.laz": 3000})
    events: list[dict] = []
    up = bucket_sync.upload([src], url, on_event=events.append)
    assert (up.uploaded, up.failed, up.exit_code) == (2, 0, 0)
    assert sorted(e["key"] for e in events if e["status"] == "ok") == ["a.txt", "b/c.laz"]
    assert all(e["event"] == "transfer" and e["time"].endswith("Z") for e in events)
    again = bucket_sync.upload(src, url)
    assert again.uploaded == 0 and again.skipped == 2

    one = bucket_sync.download(url.replace("?", "/b/c.laz?", 1), str(tmp_path / "one") + "/")  # a folder: ends with /
    assert one.downloaded == 1 and (tmp_path / "one" / "c.laz").read_bytes() == (src / "b" / "c.laz").read_bytes()
    named = bucket_sync.download(url, tmp_path / "named", files_from=["a.txt"])
    assert named.downloaded == 1 and (tmp_path / "named" / "a.txt").read_text() == "a"

    (src / "a.txt").unlink()
    for i in range(3):
        container.upload_blob(f"extra{i}.txt", b"x")
    with pytest.raises(SafetyGuardError) as refused:  # 4 of 5 would go: the guard, as in the CLI
        bucket_sync.mirror(src, url)
    assert refused.value.exit_code == ExitCode.GUARD
    done = bucket_sync.mirror(src, url, max_delete="100%")
    assert done.deleted == 4 and sorted(b.name for b in container.list_blobs()) == ["b/c.laz"]


def test_the_callers_token_source_reaches_the_platform(emulator, new_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"roi.json": "{}"})
    calls = []

    def token() -> str:
        calls.append(1)
        return emulator.issue_access_token()

    summary = bucket_sync.upload(src, f"itwin://{new_itwin}/jobs", credentials=token,
                                 api_url=emulator.url, ims_url=emulator.url)
    assert summary.uploaded == 1 and calls
    assert [b.name for b in bucket_container(new_itwin).list_blobs()] == ["jobs/roi.json"]
    report = bucket_sync.check(f"itwin://{new_itwin}", credentials=token, api_url=emulator.url, ims_url=emulator.url)
    assert report.as_event()["sas"][0]["permissions"] == "rw" and report.exit_code == 0
    with pytest.raises(PermissionDeniedError):  # the documented bucket cannot delete: refused up front
        bucket_sync.mirror(src, f"itwin://{new_itwin}/jobs", credentials=token, api_url=emulator.url, ims_url=emulator.url)
    with pytest.raises(NoCredentialsError):
        bucket_sync.upload(src, f"itwin://{new_itwin}/jobs", api_url=emulator.url, ims_url=emulator.url)


def test_bad_input_raises_usage_errors(site, tmp_path):
    url, _ = site
    with pytest.raises(UsageError):
        bucket_sync.upload(tmp_path, "ftp://nowhere")
    with pytest.raises(UsageError):
        bucket_sync.upload(tmp_path / "missing", url)
    with pytest.raises(UsageError):
        bucket_sync.mirror(tmp_path, tmp_path)


def test_watch_runs_in_a_thread_until_stopped(site, tmp_path):
    url, container = site
    root = tmp_path / "watched"
    root.mkdir()
    stop = threading.Event()
    result: list = []
    statuses: list[dict] = []
    thread = threading.Thread(target=lambda: result.append(bucket_sync.watch(root, url, stop=stop, debounce=0.3,
                                                                             on_status=statuses.append)))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not any(s.get("state") == "watching" for s in statuses) and time.monotonic() < deadline:
            time.sleep(0.05)
        (root / "new.txt").write_text("new")
        while "new.txt" not in {b.name for b in container.list_blobs()} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "new.txt" in {b.name for b in container.list_blobs()}
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive() and result and result[0].exit_code == 0 and result[0].uploaded == 1
