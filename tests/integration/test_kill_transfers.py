"""SIGKILL at seeded random points of upload, download and mirror (both directions): 20 trials.

A killed run may leave work undone, never damage: every local file under its final name has either its
old or its new content (downloads go through ``.bucket-sync-partial`` + rename), every committed blob's
bytes match its Content-MD5 and are either the old or the new version of the source (block uploads commit
only once every block is staged), and the next run converges to an exact copy.

Kills land while bytes move: the trial waits for the proxy to see the run's first request, then sleeps a
seeded random delay within the (throttled, ~0.6 s) transfer before SIGKILL.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass

import pytest

from tests.support.cli import find_leaks
from tests.support.faultproxy import FaultProxy
from tests.support.integrity import (
    describe_diff,
    final_files,
    local_tree,
    new_container,
    partial_files,
    remote_state,
    write_tree,
)

pytestmark = pytest.mark.integration

KIB = 1024
TRIALS = 20
SCENARIOS = ("upload", "download", "mirror-up", "mirror-down")
OLD_MTIME = "2020-01-01T00:00:00Z"
OLD_EPOCH = 1577836800
LINK_RATE = 1024 * KIB  # bytes/s through the proxy while the killed run runs


@dataclass(frozen=True)
class Versions:
    old: dict[str, bytes]  # what the destination holds before the run
    new: dict[str, bytes]  # what the source holds: the destination must end up equal to this


def make_versions(rng: random.Random, mirror: bool) -> Versions:
    new = {f"big/b{i}.bin": rng.randbytes(rng.randrange(130 * KIB, 200 * KIB)) for i in range(3)}
    new.update({f"small/s{i}.dat": rng.randbytes(rng.randrange(1, 24 * KIB)) for i in range(6)})
    old = {}
    for key, data in new.items():
        roll = rng.random()
        if roll < 0.4:
            old[key] = rng.randbytes(len(data))  # same size, other content: must never be mixed
        elif roll < 0.6:
            old[key] = rng.randbytes(max(1, len(data) // 2))
    if mirror:
        old.update({f"extra/x{i}.dat": rng.randbytes(rng.randrange(1, 8 * KIB)) for i in range(2)})
    return Versions(old, new)


def allowed(versions: Versions, key: str, data: bytes) -> bool:
    return data == versions.new.get(key) or data == versions.old.get(key)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_mid_transfer_damages_nothing_and_next_run_converges(trial, cli, azurite, tmp_path, kill_log):
    rng = random.Random(7000 + trial)
    scenario = SCENARIOS[trial % len(SCENARIOS)]
    upward = scenario in ("upload", "mirror-up")
    versions = make_versions(rng, mirror=scenario.startswith("mirror"))
    container_name = new_container(azurite, "kill")
    container = azurite.container_client(container_name)
    local = tmp_path / "local"
    local.mkdir()

    with FaultProxy(azurite.port, seed=trial) as proxy:
        url = proxy.rewrite(azurite.container_sas_url(container_name))
        cli.add_secret(url.split("sig=")[1].split("&")[0])
        # The old versions are a day older than the new ones, as after a real edit: size and mtime
        # alone must tell them apart (a same-second rewrite of a same-size file is skipped by design).
        if upward:
            write_tree(local, versions.new)
            for name, data in versions.old.items():
                container.upload_blob(name, data, overwrite=True, metadata={"mtime": OLD_MTIME})
        else:
            write_tree(local, versions.old)
            for key in versions.old:
                os.utime(local / key, (OLD_EPOCH, OLD_EPOCH))
            for name, data in versions.new.items():
                container.upload_blob(name, data, overwrite=True)
        argv = {
            "upload": ["upload", str(local), url],
            "download": ["download", url, str(local)],
            "mirror-up": ["mirror", str(local), url, "--max-delete", "100%"],
            "mirror-down": ["mirror", url, str(local), "--max-delete", "100%"],
        }[scenario] + ["--block-size", "64K", "--concurrency", "4", "--json"]

        proxy.throttle(LINK_RATE)
        delay = rng.uniform(0.0, 0.5)
        outcome, output = run_and_kill(cli, argv, proxy, delay, tmp_path)
        leaks = find_leaks({"output": output}, {url.split("sig=")[1].split("&")[0], azurite.account_key})
        assert not leaks, leaks
        # Requests the killed process had already handed to the network still land, as they would on a
        # real link: check the state once they have.
        proxy.throttle(None)
        assert proxy.wait_idle(), "connections still open 10 s after the kill"

        # -- nothing damaged ----------------------------------------------------------------------
        state = remote_state(container)
        assert not state.bad_md5, f"trial {trial} ({scenario}, {outcome}): blobs whose bytes do not match " \
            f"Content-MD5: {[explain(versions, k, state.blobs[k], container) for k in state.bad_md5]}"
        tree = local_tree(local)
        if upward:
            wrong = [k for k, v in state.blobs.items() if not allowed(versions, k, v)]
            assert not wrong, f"trial {trial} ({scenario}, {outcome}): blobs neither old nor new: {wrong}"
        else:
            wrong = [k for k, v in final_files(tree).items() if not allowed(versions, k, v)]
            assert not wrong, f"trial {trial} ({scenario}, {outcome}): truncated or mixed local files: {wrong}"

        # -- the next run converges ----------------------------------------------------------------
        again = cli(*argv)
        assert again.returncode == 0, again
        state = remote_state(container)
        tree = local_tree(local)
        assert not partial_files(tree), f"trial {trial}: partial files left after a clean run: {partial_files(tree)}"
        if upward:
            expected = versions.new if scenario == "mirror-up" else {**versions.old, **versions.new}
            assert state.blobs == expected, describe_diff(expected, state.blobs)
            assert not state.bad_md5 and not state.no_md5
        else:
            expected = versions.new if scenario == "mirror-down" else {**versions.old, **versions.new}
            assert final_files(tree) == expected, describe_diff(expected, final_files(tree))
        kill_log.append((scenario, outcome, proxy.stats.bytes_up + proxy.stats.bytes_down, len(expected)))


def explain(versions: Versions, key: str, data: bytes, container) -> str:
    md5 = bytes(container.get_blob_client(key).get_blob_properties().content_settings.content_md5 or b"")
    new, old = versions.new.get(key, b""), versions.old.get(key, b"")
    return (f"{key}: {len(data)} bytes (new {len(new)}, old {len(old)}); is new {data == new}, is old {data == old}, "
            f"prefix of new {new.startswith(data)}; Content-MD5 is new's {md5 == hashlib.md5(new).digest()}, "
            f"old's {md5 == hashlib.md5(old).digest()}")


def run_and_kill(cli, argv: list[str], proxy: FaultProxy, delay: float, tmp_path) -> tuple[str, str]:
    """Start the real command, wait for its first storage request, sleep ``delay``, SIGKILL it.

    Returns ('killed' | 'finished', output). 'finished' means the run ended before the kill."""
    out_path = tmp_path / "killed-run.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([str(cli.executable), *argv], env=cli.env_for(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=str(tmp_path))
        try:
            deadline = time.monotonic() + 20
            while proxy.stats.requests == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(delay)
            outcome = "finished" if proc.poll() is not None else "killed"
            if outcome == "killed":
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = out_path.read_bytes().decode(errors="replace")
    if outcome == "killed":
        assert proc.returncode == -signal.SIGKILL
    return outcome, text


@pytest.fixture(scope="module")
def kill_log() -> list[tuple[str, str, int, int]]:
    """(scenario, outcome, bytes through the proxy, files checked) per trial, for the check below."""
    return _LOG


_LOG: list[tuple[str, str, int, int]] = []


def test_kills_landed_mid_run():
    """Most kills must land while the run is still going, or the trials above prove little."""
    if len(_LOG) < TRIALS:
        pytest.skip(f"only {len(_LOG)} of {TRIALS} kill trials ran in this session")
    killed = sum(1 for _, outcome, _, _ in _LOG if outcome == "killed")
    print(f"kill trials: {killed} of {TRIALS} killed mid-run, {sum(n for *_, n in _LOG)} files checked, "
          f"{sum(b for _, _, b, _ in _LOG)} bytes through the proxy")
    assert killed >= TRIALS * 3 // 4, f"only {killed} of {TRIALS} runs were killed before they finished: {_LOG}"
