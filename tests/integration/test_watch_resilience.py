"""watch keeps going: through a storage outage (Azurite stopped and restarted on the same port) and across
many SAS and token lifetimes (the emulator hands out SAS valid for 4 s, tokens for 8 s), without failing a
file or exiting."""

from __future__ import annotations

import os
import signal
import time

from tests.support.watch_proc import WatchProcess


def names(container, prefix: str = "") -> set[str]:
    return {b.name for b in container.list_blobs(name_starts_with=prefix or None)}


def test_storage_outage_is_ridden_out_and_the_queue_caught_up(cli, azurite_factory, tmp_path):
    server = azurite_factory()
    server.create_container("outage")
    container = server.container_client("outage")
    url = server.container_sas_url("outage")
    root = tmp_path / "watched"
    root.mkdir()
    with WatchProcess(cli, root, url, "--json") as w:
        w.wait_watching()
        (root / "before.txt").write_text("before the outage")
        w.wait_for(lambda: "before.txt" in names(container), "before.txt")

        server.stop()
        (root / "during-1.txt").write_text("written while storage is down")
        (root / "sub").mkdir()
        (root / "sub" / "during-2.txt").write_text("this one too")
        # Longer than one request's retries (about 3.5 s at most): the watcher itself must keep the changes
        # queued, back off and try again, and not exit.
        time.sleep(float(os.environ.get("WATCH_OUTAGE_S", "7")))
        assert w.proc.poll() is None, w.describe()
        server.start()

        w.wait_for(lambda: {"before.txt", "during-1.txt", "sub/during-2.txt"} <= names(server.container_client("outage")),
                   "the files queued during the outage", timeout=60)
        (root / "after.txt").write_text("after")
        w.wait_for(lambda: "after.txt" in names(server.container_client("outage")), "after.txt")
        w.stop(signal.SIGTERM)
    assert w.returncode == 0, w.describe()
    summary = [e for e in w.events if e.get("event") == "summary"][-1]
    assert summary["uploaded"] >= 4 and summary["exit_code"] == 0
    assert "changes stay queued" in w.stderr  # the outage outlasted the request retries, as intended


def test_short_lived_sas_and_token_are_refreshed_for_the_whole_run(cli, emulator, new_itwin, bucket_container, tmp_path):
    emulator.configure(sas_lifetime=4, token_lifetime=8)
    container = bucket_container(new_itwin)
    root = tmp_path / "watched"
    root.mkdir()
    (root / "first.txt").write_text("uploaded by the first reconcile")
    started = time.monotonic()
    with WatchProcess(cli, root, f"itwin://{new_itwin}/sas", "--json") as w:
        w.wait_watching()
        written = []
        for i in range(10):  # ~20 s: five SAS lifetimes
            (root / f"f{i:02d}.txt").write_text(f"file {i}")
            written.append(f"sas/f{i:02d}.txt")
            time.sleep(2)
        w.wait_for(lambda: set(written) | {"sas/first.txt"} <= names(container, "sas/"), "every file", timeout=30)
        w.stop()
    assert time.monotonic() - started > 4 * 5
    assert w.returncode == 0, w.describe()
    assert not w.transfers(status="failed"), w.describe()
    assert len(w.transfers(op="upload", status="ok")) == 11
    # The SAS was fetched again and again, and the access token renewed, not once for the whole run.
    assert emulator.request_count(r"/reality-modeling/itwins/.*/bucket", "GET", status=200) >= 5
    assert emulator.request_count(r"/connect/token", "POST", status=200) >= 2
    assert emulator.request_count(r"/reality-modeling/itwins/.*/bucket", "GET", status=401) == 0
