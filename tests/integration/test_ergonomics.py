"""Everyday ergonomics rclone and AzCopy users expect, through the real command: a dry run that shows the
whole plan even when a guard would refuse, environment variables for every option, a log file, --stats,
a time on every JSON event, filters by case, size and age, --files-from for upload, Content-Type and
--metadata, shell completion."""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone

import pytest

from tests.support.mirror_trees import put_blob, remote_state

pytestmark = pytest.mark.integration

NS = 1_700_000_000_000_000_000
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_dry_run_shows_the_whole_plan_when_the_guard_would_refuse(cli, listing_itwin, bucket_container, make_files, tmp_path):
    container = bucket_container(listing_itwin)
    for i in range(4):
        put_blob(container, f"g/f{i}.txt", f"file {i}".encode(), NS)
    src = make_files(tmp_path / "src", {"f0.txt": "changed", "new.txt": "new"})
    before = remote_state(container)
    human = cli("mirror", src, f"itwin://{listing_itwin}/g", "--dry-run")
    assert human.returncode == 6, human
    for line in ("would delete g/f1.txt (extra)", "would delete g/f3.txt (extra)", "would upload g/new.txt (new)"):
        assert line in human.stdout, human
    assert "would be refused" in human.stderr and "refusing to delete 3 of 4" in human.stderr
    as_json = cli("mirror", src, f"itwin://{listing_itwin}/g", "--dry-run", "--json")
    assert as_json.returncode == 6 and as_json.summary["exit_code"] == 6, as_json
    planned = {(e["op"], e["key"]) for e in as_json.transfers(status="planned")}
    assert {("delete", "g/f1.txt"), ("delete", "g/f2.txt"), ("delete", "g/f3.txt"), ("upload", "g/new.txt")} <= planned
    assert remote_state(container) == before


def test_every_option_has_an_environment_variable_shown_in_help(cli, azurite, make_files, tmp_path):
    for command in ("upload", "download", "mirror", "watch", "ls", "rm", "check"):
        help_text = cli(command, "--help").stdout
        assert "env var: BUCKET_SYNC_" in help_text.replace("\n", " ") or "BUCKET_SYNC_" in help_text, command
    assert "BUCKET_SYNC_CONCURRENCY" in cli("upload", "--help").stdout
    azurite.create_container("envopts")
    url = azurite.container_sas_url("envopts", "racwdl", 3600)
    src = make_files(tmp_path / "src", {"a.txt": "a", "b.tmp": "b"})
    result = cli("upload", src, url, env={"BUCKET_SYNC_EXCLUDE": "*.tmp", "BUCKET_SYNC_JSON": "1",
                                          "BUCKET_SYNC_DRY_RUN": "true"})
    assert result.returncode == 0, result
    assert [e["key"] for e in result.transfers(status="planned")] == ["a.txt"]  # dry run, *.tmp excluded


def test_json_events_carry_a_time(cli, azurite, make_files, tmp_path):
    azurite.create_container("jsontime")
    url = azurite.container_sas_url("jsontime", "racwdl", 3600)
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    result = cli("upload", src, url, "--json")
    assert result.returncode == 0, result
    assert result.events and all(RFC3339.match(e.get("time", "")) for e in result.events), result.events
    stamp = datetime.strptime(result.summary["time"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 120
    listed = cli("ls", url, "--json")
    assert all(RFC3339.match(e.get("time", "")) for e in listed.events), listed.events
    failed = cli("upload", tmp_path / "missing", url, "--json")
    assert failed.returncode == 2 and RFC3339.match(failed.summary["time"]), failed


def test_log_file_gets_the_log_with_the_same_redaction(cli, azurite, make_files, tmp_path):
    azurite.create_container("logfile")
    url = azurite.container_sas_url("logfile", "racwdl", 3600)
    signature = url.split("sig=", 1)[1].split("&", 1)[0]
    src = make_files(tmp_path / "src", {"a.txt": "a"})
    log_file = tmp_path / "logs" / "run.log"
    result = cli("upload", src, url, "--log-file", log_file, "-vvv")  # -vvv: the SDK's request logs, with URLs
    assert result.returncode == 0, result
    text = log_file.read_text()
    assert "upload a.txt (new)" in text and " DEBUG " in text and "sig=" in text, text[:2000]
    assert signature not in text  # the same redaction as the console
    again = cli("upload", src, "no-such-remote://x", "--log-file", log_file)
    assert again.returncode == 2
    assert "not a remote location" in log_file.read_text()  # errors go to the log file too


def test_stats_prints_status_lines_when_stderr_is_not_a_terminal(cli, azurite, make_files, tmp_path):
    azurite.create_container("stats")
    url = azurite.container_sas_url("stats", "racwdl", 3600)
    src = make_files(tmp_path / "src", {f"f{i}.bin": 48 * 1024 for i in range(4)})
    result = cli("upload", src, url, "--stats", "0.5", "--bwlimit", "96K", "--concurrency", "1")
    assert result.returncode == 0, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("status:")]
    assert len(lines) >= 2, result.stderr
    assert re.search(r"\d+/4 files", lines[-1]) and "KiB" in lines[-1] and "ETA" in lines[0], lines
    as_json = cli("upload", src, url, "--json", "--stats", "0.5", "--overwrite", "--bwlimit", "96K", "--concurrency", "1")
    stats = [e for e in as_json.events if e["event"] == "stats"]
    assert stats and {"files_done", "files_total", "bytes_done", "bytes_total", "rate", "eta_s"} <= set(stats[-1])


def test_filters_by_case_size_and_age(cli, azurite, make_files, tmp_path):
    azurite.create_container("filters")
    url = azurite.container_sas_url("filters", "racwdl", 3600)
    src = make_files(tmp_path / "src", {"DJI_0001.JPG": 2000, "dji_0002.jpg": 2000, "notes.txt": 10, "big.laz": 50_000})
    old = time.time() - 10 * 86400
    os.utime(src / "dji_0002.jpg", (old, old))
    case = cli("upload", src, url, "--include", "*.jpg", "--ignore-case", "--dry-run", "--json")
    assert sorted(e["key"] for e in case.transfers(status="planned")) == ["DJI_0001.JPG", "dji_0002.jpg"], case
    sized = cli("upload", src, url, "--min-size", "1K", "--max-size", "10K", "--dry-run", "--json")
    assert sorted(e["key"] for e in sized.transfers(status="planned")) == ["DJI_0001.JPG", "dji_0002.jpg"], sized
    recent = cli("upload", src, url, "--max-age", "1d", "--dry-run", "--json")
    assert "dji_0002.jpg" not in {e["key"] for e in recent.transfers(status="planned")}, recent
    aged = cli("upload", src, url, "--min-age", "2d", "--dry-run", "--json")
    assert [e["key"] for e in aged.transfers(status="planned")] == ["dji_0002.jpg"], aged
    bad = cli("upload", src, url, "--max-age", "soon")
    assert bad.returncode == 2 and "--max-age" in bad.stderr, bad


def test_upload_files_from(cli, azurite, make_files, tmp_path):
    azurite.create_container("upfrom")
    url = azurite.container_sas_url("upfrom", "racwdl", 3600)
    src = make_files(tmp_path / "src", {"a.txt": "a", "sub/b.txt": "b", "c.txt": "c"})
    names = tmp_path / "names.txt"
    names.write_text("a.txt\n# a comment\nsub/b.txt\nmissing.txt\n")
    result = cli("upload", src, url, "--files-from", names, "--json")
    assert result.returncode == 1, result  # one name is not there: reported, not silent
    assert sorted(e["key"] for e in result.transfers(status="ok")) == ["a.txt", "sub/b.txt"]
    assert [e["key"] for e in result.transfers(status="failed")] == ["missing.txt"]


def test_content_type_from_one_table_and_metadata(cli, azurite, make_files, tmp_path):
    azurite.create_container("ctypes")
    url = azurite.container_sas_url("ctypes", "racwdl", 3600)
    src = make_files(tmp_path / "src", {"cloud.laz": 10, "scan.e57": 10, "mesh.3mx": 10, "photo.JPG": 10,
                                        "tiles.json": "{}", "odd.unknownext": 10})
    result = cli("upload", src, url, "--metadata", "project=bridge-7", "--metadata", "camera=DJI")
    assert result.returncode == 0, result
    container = azurite.container_client("ctypes")
    props = {b.name: container.get_blob_client(b.name).get_blob_properties() for b in container.list_blobs()}
    types = {name: p.content_settings.content_type for name, p in props.items()}
    assert types["cloud.laz"] == "application/vnd.laszip" and types["photo.JPG"] == "image/jpeg"
    assert types["tiles.json"] == "application/json" and types["odd.unknownext"] == "application/octet-stream"
    assert types["scan.e57"] == "application/e57" and types["mesh.3mx"] == "application/3mx"
    assert all(p.metadata.get("project") == "bridge-7" and p.metadata.get("camera") == "DJI" and p.metadata.get("mtime")
               for p in props.values())
    forced = cli("upload", src / "scan.e57", url.replace("ctypes?", "ctypes/forced?"), "--content-type", "text/plain")
    assert forced.returncode == 0, forced
    blob = container.get_blob_client("forced/scan.e57").get_blob_properties()
    assert blob.content_settings.content_type == "text/plain"
    bad = cli("upload", src, url, "--metadata", "no-equals-sign")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr, bad
    for own in ("mtime", "SHA256Pieces"):  # what the skip rules and the download check rely on
        refused = cli("upload", src, url, "--metadata", f"{own}=x")
        assert refused.returncode == 2 and "bucket-sync's own" in refused.stderr, refused


def test_shell_completion_answers_for_bash(cli):
    result = cli(env={"_BUCKET_SYNC_COMPLETE": "bash_complete", "COMP_WORDS": "bucket-sync mi", "COMP_CWORD": "1"})
    assert result.returncode == 0, result
    assert "mirror" in result.stdout
    options = cli(env={"_BUCKET_SYNC_COMPLETE": "bash_complete", "COMP_WORDS": "bucket-sync upload --con",
                       "COMP_CWORD": "2"})
    assert "--concurrency" in options.stdout and "--content-type" in options.stdout


def test_watch_status_follows_stats_and_goes_to_the_log_file(cli, azurite, tmp_path):
    from tests.support.watch_proc import WatchProcess

    azurite.create_container("watchstats")
    url = azurite.container_sas_url("watchstats", "racwdl", 3600)
    root = tmp_path / "watched"
    root.mkdir()
    log_file = tmp_path / "watch.log"
    with WatchProcess(cli, root, url, "--json", "--stats", "0.5", "--log-file", log_file) as w:
        w.wait_watching()
        (root / "a.txt").write_text("a")
        w.wait_for(lambda: len([e for e in w.events if e.get("event") == "status" and e.get("state") == "status"]) >= 2,
                   "two periodic status events")
        w.wait_for(lambda: "upload a.txt" in log_file.read_text(), "the upload in the log file")
        w.stop()
    assert w.returncode == 0, w.describe()
    assert all(RFC3339.match(e["time"]) for e in w.events)
