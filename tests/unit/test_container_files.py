"""The container image's recipe (Docker cannot run here: these check the Dockerfile's content, not a
built image): a slim Python base, a non-root user, the state folder as a volume that the environment
points bucket-sync at, and bucket-sync as the entry point; the build context leaves local clutter out."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def env() -> dict[str, str]:
    found = {}
    for word, rest in final_stage():
        if word == "ENV":
            found.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return found


def test_a_slim_python_base_as_the_package_requires():
    for word, rest in instructions():
        if word == "FROM":
            assert re.match(r"python:3\.(1[1-9])-slim\b", rest), rest


def test_it_runs_as_a_user_of_its_own_never_root():
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), users
    assert any(word == "RUN" and "useradd" in rest and users[-1] in rest for word, rest in final_stage())


def test_the_state_folder_is_a_volume_and_the_environment_points_there():
    volumes = [v for word, rest in final_stage() if word == "VOLUME" for v in json.loads(rest)]
    variables = env()
    assert variables["BUCKET_SYNC_STATE_DIR"] in volumes, (variables, volumes)
    assert variables["BUCKET_SYNC_CACHE_DIR"] and variables["BUCKET_SYNC_CACHE_DIR"] != variables["BUCKET_SYNC_STATE_DIR"]
    assert variables.get("BUCKET_SYNC_LOGIN_STORE") == "file", "no OS keychain in a container"


def test_bucket_sync_is_the_entry_point_behind_an_init():
    [entrypoint] = [json.loads(rest) for word, rest in final_stage() if word == "ENTRYPOINT"]
    assert entrypoint[-1] == "bucket-sync", entrypoint
    assert "tini" in entrypoint[0], "PID 1 must pass SIGTERM on (watch stops cleanly, exit 0)"


def test_the_build_context_leaves_local_clutter_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "scripts/node/node_modules", "tests"} <= ignored
    copied = [rest.split()[0] for word, rest in instructions() if word == "COPY" and not rest.startswith("--from")]
    assert copied and not any(c in ignored for c in copied)


def test_readme_examples_use_the_image_s_folders():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Containers", 1)[1].split("\n## ", 1)[0]
    assert "kind: CronJob" in section and "watch" in section and "services:" in section
    assert env()["BUCKET_SYNC_STATE_DIR"] in section and "fsGroup: 10001" in section


def test_the_image_exposes_the_metrics_port_the_readme_probes_use():
    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "\nEXPOSE 9464\n" in text
    assert "9464" in readme and "/healthz" in readme
