"""The watcher's HTTP endpoint (``watch --metrics HOST:PORT``): ``/metrics``, ``/healthz`` and ``/readyz``.

- ``/metrics``: Prometheus text format (OpenMetrics when the scraper asks for it), see watch_metrics.py.
- ``/healthz``: 200 with a small JSON body while the watcher keeps up, 503 with the reason when it does not
  (watch_health.py): what liveness probes, load balancers and uptime checkers call.
- ``/readyz``: the same, and 503 also until the first reconcile is done (a readiness probe that should
  wait for the bucket to have caught up after a start).

The socket is bound before the watcher starts, so an address that cannot be used (a port in use, a host
that is not this machine's) is a usage error (exit 2) rather than a watcher running without the metrics
it was asked for. Served by threads of the standard library's HTTP server: a scrape never waits for an
upload, nor an upload for a scrape.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from ..errors import UsageError
from .watch_health import HealthVerdict

log = logging.getLogger("bucket_sync.watch")

DEFAULT_HOST = "127.0.0.1"  # loopback unless asked: the page says what the watcher is doing
EXAMPLES = "give PORT, :PORT, HOST:PORT or [IPv6]:PORT, e.g. --metrics 9464 or --metrics 0.0.0.0:9464"


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int  # 0: any free port (the one chosen is printed at start)

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}"


def parse_listen_address(text: str) -> ListenAddress:
    """'9464', ':9464', 'localhost:9464', '0.0.0.0:9464', '[::1]:9464' -> ListenAddress; UsageError else."""
    raw = (text or "").strip()
    bad = UsageError(f"--metrics {text!r} is not HOST:PORT", hint=EXAMPLES)
    if raw.startswith("["):
        m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", raw)
        if not m:
            raise bad
        host, port_text = m.group(1), m.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"--metrics {text!r}: {host!r} is not an IPv6 address", hint=EXAMPLES) from None
    else:
        host, _, port_text = raw.rpartition(":")
        if ":" in host or any(c.isspace() or c in "/[]" for c in host):
            raise bad  # a bare IPv6 address needs its brackets: [::1]:9464
        host = host or DEFAULT_HOST
    if not re.fullmatch(r"\d{1,5}", port_text):
        raise bad
    port = int(port_text)
    if port > 65535:
        raise UsageError(f"--metrics {text!r}: port {port} is out of range (0 to 65535)", hint=EXAMPLES)
    return ListenAddress(host, port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a scraper that hangs up slowly must not hold the watcher's exit
    allow_reuse_address = False  # a port in use is an error, not shared (SO_REUSEADDR on Windows would)


class HealthServer:
    """Binds at construction (UsageError when it cannot), serves from :meth:`start` until :meth:`close`."""

    def __init__(self, address: ListenAddress, *, metrics: Callable[[str | None], tuple[bytes, str]],
                 health: Callable[[], HealthVerdict]) -> None:
        self.address = address
        family = self._family(address)
        server_cls = type("Server", (_Server,), {"address_family": family})
        handler = _make_handler(metrics, health)
        try:
            self._server = server_cls((address.host, address.port), handler)
        except OSError as exc:
            raise _bind_error(address, exc) from None
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @staticmethod
    def _family(address: ListenAddress) -> socket.AddressFamily:
        try:
            infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise UsageError(f"--metrics {address.host}:{address.port}: cannot resolve {address.host!r} ({exc.strerror})",
                             hint="use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0 (all interfaces)") from None
        return infos[0][0]

    @property
    def url(self) -> str:
        return self.address.url(self.port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="watch-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=2)
        self._server.server_close()


def _bind_error(address: ListenAddress, exc: OSError) -> UsageError:
    where = f"--metrics {address.host}:{address.port}"
    if exc.errno == errno.EADDRINUSE or getattr(exc, "winerror", None) == 10048:
        return UsageError(f"{where}: the port is already in use (another watcher, or another program)",
                          hint="choose another port, or stop what listens there (`ss -ltnp` shows it)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UsageError(f"{where}: not allowed to listen on this port ({exc.strerror})",
                          hint="ports below 1024 need privileges: use a port above 1024, e.g. 9464")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"{where}: {address.host} is not an address of this machine",
                          hint="use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    return UsageError(f"{where}: cannot listen ({exc.strerror or exc})", hint=EXAMPLES)


def _make_handler(metrics: Callable[[str | None], tuple[bytes, str]],
                  health: Callable[[], HealthVerdict]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bucket-sync"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, *, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    data, content_type = metrics(self.headers.get("Accept"))
                    self._send(200, data, content_type, body)
                elif path in ("/healthz", "/readyz"):
                    verdict = health()
                    ok = verdict.healthy and (verdict.ready or path == "/healthz")
                    answer = verdict.body()
                    if path == "/readyz" and verdict.healthy and not verdict.ready:
                        answer = {**answer, "status": "unhealthy", "reason": "the first reconcile is not done yet"}
                    data = (json.dumps(answer) + "\n").encode()
                    self._send(200 if ok else 503, data, "application/json", body)
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain", body)
            except Exception:  # a scrape must never take the endpoint down
                log.debug("the metrics endpoint failed to answer %s", path, exc_info=True)
                self._send(500, b"internal error\n", "text/plain", body)

        def _send(self, status: int, data: bytes, content_type: str, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            log.debug("metrics endpoint: " + format, *args)  # every scrape on stderr would drown the log

    return Handler


__all__ = ["DEFAULT_HOST", "HealthServer", "ListenAddress", "parse_listen_address"]
