"""The CI workflow for forks (it cannot run here: this checks what it asks GitHub Actions to do)."""

from __future__ import annotations

import re
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "ci.yml"


def test_the_matrix_covers_three_systems_and_two_pythons():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert re.search(r"os: \[ubuntu-latest, windows-latest, macos-latest\]", text)
    assert re.search(r'python: \["3\.11", "3\.12"\]', text)
    assert 'node-version: "20"' in text, "Azurite 3.35 wants Node 20"
    assert "fail-fast: false" in text, "one system's failure must not hide the others'"


def test_unix_runs_scripts_test_and_windows_its_steps_in_powershell():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "./scripts/test" in text
    windows = text.split("Test (Windows)", 1)[1]
    assert "shell: pwsh" in windows
    for step in ("python -m venv .venv", 'pip install --disable-pip-version-check -e ".[test]"', "npm ci",
                 "python.exe -m pytest"):
        assert step in windows, step
    assert windows.count("$LASTEXITCODE") >= 3, "a failing step must fail the job"
