"""Run ``bucket-sync watch`` as a real background process for the watch integration tests.

Output is read by threads as it comes (JSON events on stdout, logs on stderr); tests poll for what they
expect with a timeout rather than sleeping; when the process ends its whole output is checked for
secrets, as the ``cli`` fixture does for every other command.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from typing import Callable

import pytest

from .cli import _SIG_RE, CliRunner, find_leaks


class WatchProcess:
    def __init__(self, cli: CliRunner, *args: object, env: dict | None = None) -> None:
        self.cli = cli
        self.argv = [str(a) for a in args]
        full_env = cli.env_for(env)
        self._own = {m.group(1) for a in self.argv for m in _SIG_RE.finditer(a)}
        self.proc = subprocess.Popen([str(cli.executable), "watch", *self.argv], env=full_env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=str(cli.home.parent))
        self._lock = threading.Lock()
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.returncode: int | None = None

    def _read(self, stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                sink.append(raw.decode("utf-8", errors="replace").rstrip("\n"))

    # -- what it said ------------------------------------------------------------------------------
    @property
    def events(self) -> list[dict]:
        with self._lock:
            lines = list(self.stdout_lines)
        out = []
        for line in lines:
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def transfers(self, **match: object) -> list[dict]:
        return [e for e in self.events if e.get("event") == "transfer" and all(e.get(k) == v for k, v in match.items())]

    @property
    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self.stderr_lines)

    def describe(self) -> str:
        with self._lock:
            out, err = "\n".join(self.stdout_lines[-60:]), "\n".join(self.stderr_lines[-60:])
        return f"--- stdout (tail) ---\n{out}\n--- stderr (tail) ---\n{err}"

    # -- waiting -------------------------------------------------------------------------------------
    def wait_for(self, check: Callable[[], object], what: str, timeout: float = 20.0, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(f"watch exited ({self.proc.returncode}) while waiting for {what}\n{self.describe()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}\n{self.describe()}")
            time.sleep(interval)

    def wait_watching(self, timeout: float = 30.0) -> None:
        self.wait_for(lambda: any(e.get("event") == "status" and e.get("state") == "watching" for e in self.events),
                      "the watching status (initial reconcile done)", timeout)

    # -- stopping ------------------------------------------------------------------------------------
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> float:
        """Send ``sig``; return how long the process took to exit. Checks the output for secrets."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"watch did not exit within {timeout} s of signal {sig}\n{self.describe()}")
        elapsed = time.monotonic() - start
        for t in self._readers:
            t.join(5)
        self.check_secrets()
        return elapsed

    def check_secrets(self) -> None:
        secrets = set(self.cli._secret_source()) | self.cli.extra_secrets | self._own
        with self._lock:
            streams = {"stdout": "\n".join(self.stdout_lines), "stderr": "\n".join(self.stderr_lines)}
        leaks = find_leaks(streams, secrets)
        if leaks:
            pytest.fail("bucket-sync watch printed a secret (contract: never):\n" + "\n".join(leaks), pytrace=False)

    def __enter__(self) -> "WatchProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
