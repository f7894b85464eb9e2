"""Start and stop Azurite (the Azure Storage emulator, blob service only) for tests and the demo.

    with AzuriteServer() as azurite:               # in memory
        azurite.create_container("data")
        url = azurite.container_sas_url("data")   # http://127.0.0.1:<port>/devstoreaccount1/data?<sas>

Pass ``location=Path(...)`` for disk persistence; only then do blobs survive :meth:`AzuriteServer.stop`
and a later :meth:`AzuriteServer.start` or :meth:`AzuriteServer.restart` (both reuse the port, to simulate
a storage outage). ``AzuriteServer.attach(port)`` wraps an Azurite
that someone else started (the standalone emulator uses it).

``python -m devtools.azurite [--port N] [--location DIR]`` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO_ROOT / "scripts" / "node" / "node_modules" / ".bin" / "azurite-blob"
# Windows: npm's .bin holds shims (.cmd, .ps1) that Popen cannot run as a program; node runs the script itself.
AZURITE_MAIN = REPO_ROOT / "scripts" / "node" / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"

ACCOUNT_NAME = "devstoreaccount1"
# The well-known development account key, public in Microsoft's documentation. Not a secret, but the CLI
# must still never print it (tests scan for it).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT_S = 20.0


class AzuriteError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the kernel picks it; a race is possible, callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class AzuriteServer:
    """One ``azurite-blob`` process on 127.0.0.1:<port> (or an already running one, see :meth:`attach`)."""

    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def __init__(self, location: Path | str | None = None, port: int | None = None) -> None:
        self.location = Path(location) if location is not None else None
        self.port: int = port or 0
        self._fixed_port = port is not None
        self._proc: subprocess.Popen | None = None
        self._log_path: Path | None = None
        self._external = False

    # -- endpoints ---------------------------------------------------------------------------------
    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    # -- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def attach(cls, port: int) -> "AzuriteServer":
        """Wrap an Azurite already listening on ``port`` (start/stop do nothing)."""
        server = cls(port=port)
        server._external = True
        return server

    @property
    def running(self) -> bool:
        if self._external:
            return port_open(self.port)
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "AzuriteServer":
        if self._external or self.running:
            return self
        if not AZURITE_BIN.exists():
            raise AzuriteError(f"{AZURITE_BIN} not found: run scripts/setup (npm ci in scripts/node)")
        # A port picked by free_port() can be taken before Azurite binds it: try a few.
        attempts = 1 if self._fixed_port else 3
        last_error: AzuriteError | None = None
        for _ in range(attempts):
            if not self._fixed_port:
                self.port = free_port()
            try:
                self._spawn()
                # Later start()s (after stop(), for outage tests) come back on the same port.
                self._fixed_port = True
                return self
            except AzuriteError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def _spawn(self) -> None:
        args = [
            *(["node", str(AZURITE_MAIN)] if os.name == "nt" else [str(AZURITE_BIN)]),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            # --silent matters beyond noise: Azurite's access log prints full SAS URLs (signatures).
            "--silent",
            "--disableTelemetry",
            # azure-storage-blob sends an API version newer than Azurite 3.35 knows.
            "--skipApiVersionCheck",
        ]
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        else:
            args.append("--inMemoryPersistence")
        fd, log = tempfile.mkstemp(prefix="azurite-", suffix=".log")
        self._log_path = Path(log)
        with os.fdopen(fd, "wb") as log_file:
            # Own process group: a Ctrl-C in the terminal reaches our owner, who stops us in order.
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=str(self.location or tempfile.gettempdir()),
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                output = self._read_log()
                self._proc = None
                raise AzuriteError(f"Azurite exited during start-up on port {self.port}:\n{output}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        output = self._read_log()
        self._kill()
        raise AzuriteError(f"Azurite did not listen on port {self.port} within {START_TIMEOUT_S:.0f} s:\n{output}")

    def _read_log(self) -> str:
        if self._log_path is None:
            return ""
        try:
            return self._log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop(self) -> None:
        if self._external:
            return
        self._kill()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def restart(self, downtime_s: float = 0.0) -> None:
        """Stop and start again on the same port (blobs survive only with ``location``)."""
        if self._external:
            raise AzuriteError("cannot restart an attached Azurite")
        self.stop()
        # Wait until the port is really closed, so clients see connection errors during downtime.
        deadline = time.monotonic() + 5
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if downtime_s:
            time.sleep(downtime_s)
        self.start()

    def __enter__(self) -> "AzuriteServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------------------------------
    def service_client(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def container_client(self, name: str):
        """A ContainerClient with the account key, to check blobs independently of bucket-sync."""
        return self.service_client().get_container_client(name)

    def create_container(self, name: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.container_client(name).create_container()
        except ResourceExistsError:
            pass

    def container_sas(self, container: str, permission: str = "racwdl", lifetime_s: float = 3600) -> str:
        """The SAS query string (no ``?``) for ``container``."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        now = datetime.now(timezone.utc)
        return generate_container_sas(
            account_name=self.account_name,
            container_name=container,
            account_key=self.account_key,
            # Canonical letter order (racwdl...): the service signs the string as given.
            permission=ContainerSasPermissions.from_string(permission),
            expiry=now + timedelta(seconds=lifetime_s),
            # A minute in the past so a slightly different clock never sees a not-yet-valid SAS.
            start=now - timedelta(minutes=1),
        )

    def container_sas_url(self, container: str, permission: str = "racwdl", lifetime_s: float = 3600) -> str:
        return f"{self.blob_endpoint}/{container}?{self.container_sas(container, permission, lifetime_s)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.azurite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--location", type=Path, default=None, help="persist to this folder (default: in memory)")
    args = parser.parse_args(argv)

    stop = False

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with AzuriteServer(location=args.location, port=args.port) as azurite:
        print(f"AZURITE_PORT={azurite.port}", flush=True)
        print(f"AZURITE_BLOB_ENDPOINT={azurite.blob_endpoint}", flush=True)
        while not stop and azurite.running:
            time.sleep(0.2)
        if not azurite.running and not stop:
            print("Azurite exited unexpectedly", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
