"""Run the real installed ``bucket-sync`` console script in an isolated environment, and check that its
output never carries a secret (a contract guarantee, checked after every call)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import pytest

SECRET_MASK = "<SECRET>"
_SIG_RE = re.compile(r"(?i)\bsig=([^&\s\"']+)")


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    json_lines: list[dict] = field(default_factory=list)

    @property
    def events(self) -> list[dict]:
        """JSON lines that carry an ``event`` key (``--json`` output)."""
        return [line for line in self.json_lines if "event" in line]

    @property
    def summary(self) -> dict | None:
        """The last ``{"event": "summary", ...}`` line, if any."""
        summaries = [e for e in self.events if e.get("event") == "summary"]
        return summaries[-1] if summaries else None

    def transfers(self, **match: object) -> list[dict]:
        """``transfer`` events whose fields equal ``match`` (e.g. ``op="upload", status="ok"``)."""
        return [
            e for e in self.events
            if e.get("event") == "transfer" and all(e.get(k) == v for k, v in match.items())
        ]

    def __str__(self) -> str:  # for assertion messages: the output was already checked for secrets
        return (
            f"$ bucket-sync {' '.join(self.args)}\nexit code {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


def parse_json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, SECRET_MASK)
    return _SIG_RE.sub("sig=" + SECRET_MASK, text)


def find_leaks(streams: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """One message per (stream, secret) leak, with masked context: never the secret itself."""
    secrets = [s for s in set(secrets) if s and len(s) >= 8]
    problems = []
    for name, text in streams.items():
        for secret in secrets:
            index = text.find(secret)
            if index >= 0:
                context = text[max(0, index - 80): index + len(secret) + 80]
                problems.append(
                    f"{name} contains a secret ({len(secret)} chars) at offset {index}: ...{mask(context, secrets)}..."
                )
    return problems


class CliRunner:
    """``cli(*args, env=None, input=None, timeout=120, cwd=None, allow_secrets=False) -> CliResult``."""

    def __init__(self, home: Path, base_env: dict[str, str], secret_source, executable: Path | None = None) -> None:
        self.home = home
        self.base_env = base_env
        self._secret_source = secret_source  # callable -> iterable of secrets known right now
        self.extra_secrets: set[str] = set()
        self.executable = executable or Path(sys.executable).parent / "bucket-sync"
        self.calls: list[CliResult] = []

    def add_secret(self, value: str) -> None:
        """Also scan the output for ``value`` (e.g. a SAS URL's signature made by the test itself)."""
        self.extra_secrets.add(value)

    def env_for(self, env: Mapping[str, str | None] | None = None) -> dict[str, str]:
        merged = dict(self.base_env)
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = str(value)
        return merged

    def __call__(
        self,
        *args: object,
        env: Mapping[str, str | None] | None = None,
        input: str | bytes | None = None,  # noqa: A002
        timeout: float = 120,
        cwd: Path | str | None = None,
        allow_secrets: bool = False,
    ) -> CliResult:
        if not self.executable.exists():
            pytest.fail(f"{self.executable} is not installed: run scripts/setup (pip install -e '.[test]')")
        argv = [str(a) for a in args]
        full_env = self.env_for(env)
        # Secrets the test hands to the CLI itself must not come back out either.
        own = {m.group(1) for a in argv for m in _SIG_RE.finditer(a)}
        own |= {m.group(1) for v in full_env.values() for m in _SIG_RE.finditer(v)}
        for key in ("ITWIN_ACCESS_TOKEN", "ITWIN_CLIENT_SECRET"):
            if full_env.get(key):
                own.add(full_env[key])
        data = input.encode() if isinstance(input, str) else input
        try:
            proc = subprocess.run(
                [str(self.executable), *argv],
                env=full_env,
                input=data,
                stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                cwd=str(cwd or self.home.parent),
            )
        except subprocess.TimeoutExpired as exc:
            secrets = set(self._secret_source()) | self.extra_secrets | own
            out = mask((exc.stdout or b"").decode(errors="replace"), secrets)
            err = mask((exc.stderr or b"").decode(errors="replace"), secrets)
            pytest.fail(f"bucket-sync {mask(' '.join(argv), secrets)} timed out after {timeout} s\n"
                        f"--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}")
        stdout = proc.stdout.decode("utf-8", errors="replace")
        stderr = proc.stderr.decode("utf-8", errors="replace")
        result = CliResult(argv, proc.returncode, stdout, stderr, parse_json_lines(stdout))
        self.calls.append(result)
        if not allow_secrets:
            secrets = set(self._secret_source()) | self.extra_secrets | own
            leaks = find_leaks({"stdout": stdout, "stderr": stderr}, secrets)
            if leaks:
                shown = mask(" ".join(argv), secrets)
                pytest.fail(f"bucket-sync {shown} printed a secret (contract: never):\n" + "\n".join(leaks),
                            pytrace=False)
        return result


def clean_env(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment: nothing from the developer's shell leaks into the run (no real credentials)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")]),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
    env.update(extra)
    return env
