"""README.md, "Windows, macOS and Linux", through the real command: a Windows console or pipe in cp1252 (simulated with
PYTHONIOENCODING) and file names outside it. --json is UTF-8 whatever the locale; human output escapes
what the console cannot show instead of crashing."""

from __future__ import annotations

import io
import json

import pytest

from bucket_sync.app.render import HumanRenderer, JsonRenderer
from bucket_sync.sync.listener import Summary

NAMES = {"測量.jpg": b"survey", "café/résumé.txt": b"cv", "plain.txt": b"ascii"}
CP1252 = {"PYTHONIOENCODING": "cp1252"}


def without_time(event: dict) -> dict:
    assert "time" in event, "every JSON event carries its time"
    return {k: v for k, v in event.items() if k != "time"}


def strict_json_lines(result) -> list[dict]:
    # CliResult decoded stdout with errors="replace": a U+FFFD means stdout was not UTF-8 (é as 0xE9).
    assert "\ufffd" not in result.stdout, result
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines and all("event" in line for line in lines), result
    return lines


@pytest.mark.integration
def test_json_is_utf8_and_human_output_never_crashes_on_a_cp1252_console(cli, sas_url, make_files, tmp_path):
    url, container = sas_url
    src = make_files(tmp_path / "src", NAMES)

    up = cli("upload", src, url, "--json", env=CP1252)
    assert up.returncode == 0, up
    keys = {e["key"] for e in strict_json_lines(up) if e["event"] == "transfer" and e["status"] == "ok"}
    assert keys == set(NAMES), up
    assert {b.name for b in container.list_blobs()} == set(NAMES)

    dest = tmp_path / "dest"
    down = cli("download", url, dest, "--json", "-v", env=CP1252)
    assert down.returncode == 0, down
    assert {e["key"] for e in strict_json_lines(down) if e["event"] == "transfer"} == set(NAMES), down
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == NAMES

    # Human output (plan lines on stdout, -vv lines on stderr) on the same console: escaped, not a crash.
    plan = cli("upload", src, url, "--dry-run", "--overwrite", env=CP1252)
    assert plan.returncode == 0, plan
    assert "would upload \\u6e2c\\u91cf.jpg" in plan.stdout, plan
    again = cli("download", url, dest, "--overwrite", "-vv", env=CP1252)
    assert again.returncode == 0, again
    assert "\\u6e2c\\u91cf.jpg" in again.stderr and "Traceback" not in again.stderr, again


@pytest.mark.integration
def test_ls_and_check_on_a_cp1252_console(cli, sas_url, make_files, tmp_path):
    """The commands that print names or JSON outside the transfer renderers: names come out escaped,
    JSON as UTF-8, and none of them crashes."""
    url, container = sas_url
    for name, data in NAMES.items():
        container.upload_blob(name, data)
    base, query = url.split("?", 1)

    names = cli("ls", url, "--recursive", env=CP1252)
    assert names.returncode == 0 and "Traceback" not in names.stderr, names
    assert "\\u6e2c\\u91cf.jpg" in names.stdout and "plain.txt" in names.stdout, names
    long = cli("ls", url, "--recursive", "--long", env=CP1252)
    assert long.returncode == 0 and "\\u6e2c\\u91cf.jpg" in long.stdout, long

    listed = cli("ls", url, "--recursive", "--json", env=CP1252)
    assert listed.returncode == 0, listed
    lines = strict_json_lines(listed)
    assert {e["key"] for e in lines if e["event"] == "blob"} == set(NAMES), listed
    assert without_time(lines[-1]) == {"event": "summary", "op": "ls", "count": len(NAMES), "exit_code": 0}

    # A name outside cp1252 in the REMOTE itself: check's report repeats it.
    checked = cli("check", f"{base}/\u6e2c\u91cf?{query}", "--json", env=CP1252)
    assert checked.returncode == 0, checked
    assert any("\u6e2c\u91cf" in json.dumps(e, ensure_ascii=False) for e in strict_json_lines(checked)), checked
    human = cli("check", f"{base}/\u6e2c\u91cf?{query}", env=CP1252)
    assert human.returncode == 0 and "Traceback" not in human.stderr, human


# -- the renderers on their own, on streams like a Windows pipe's ------------------------------------


def cp1252_stream() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="cp1252", errors="strict", write_through=True)


def test_json_renderer_switches_a_cp1252_stream_to_utf8():
    out = cp1252_stream()
    renderer = JsonRenderer(out)
    renderer.emit({"event": "transfer", "key": "測量.jpg", "other": "café", "odd": "\udcff"})
    raw = out.buffer.getvalue()
    line = json.loads(raw.decode("utf-8"))  # strict: raises if anything is not UTF-8
    assert without_time(line) == {"event": "transfer", "key": "測量.jpg", "other": "café", "odd": "\udcff"}


def test_json_renderer_on_a_stream_it_cannot_switch_writes_ascii_json():
    class Cp1252Only:  # no reconfigure: a wrapper of some other kind
        encoding = "cp1252"

        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> int:
            s.encode("cp1252")  # raises as the real one would
            self.text += s
            return len(s)

        def flush(self) -> None:
            pass

    out = Cp1252Only()
    JsonRenderer(out).emit({"event": "transfer", "key": "測量.jpg"})
    assert without_time(json.loads(out.text)) == {"event": "transfer", "key": "測量.jpg"}


def test_human_renderer_escapes_what_the_console_cannot_show():
    out, err = cp1252_stream(), cp1252_stream()
    renderer = HumanRenderer(verbose=2, progress=False, out=out, err=err)
    renderer.on_notice("測量.jpg", "a symlink")
    renderer.finish(Summary("upload", 0, 0, 0, 0, 0, 0, 0.1, 0))
    assert "skipped \\u6e2c\\u91cf.jpg: a symlink" in err.buffer.getvalue().decode("cp1252")
    assert out.buffer.getvalue().decode("cp1252").startswith("upload: ")
