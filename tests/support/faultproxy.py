"""A fault-injecting loopback TCP proxy in front of Azurite, for the fault tests.

    with FaultProxy(azurite.port, seed=7) as proxy:
        url = proxy.rewrite(azurite.container_sas_url("data"))   # same SAS, the proxy's port
        proxy.fail_requests(3, status=503, match=r"comp=block")    # next 3 Put Block: 503 ServerBusy
        proxy.reset_request_after(40_000, match=r"comp=block")     # RST mid-upload of one block
        proxy.reset_response_after(5_000, method="GET")            # RST mid-download / mid-listing
        proxy.throttle(256 * 1024)                                 # a slow link, bytes/s each way
        ... run bucket-sync against ``url`` ...
        proxy.stats.faults_injected, proxy.stats.bytes_up, ...

The SAS signature covers the account and container, not the host or port, so Azurite accepts the same
token through the proxy. The proxy understands just enough HTTP/1.1 to find request boundaries on the
client side (request line, headers, Content-Length body); responses are relayed as raw bytes. That is
enough because the storage client never pipelines: a new request starts only after the previous response
was read in full, so an injected answer can never interleave with a real one.

Rules match ``re.search(match, "<METHOD> <path?query>")`` and ``method``; they fire ``times`` times (None:
until cleared). A rule's byte threshold may be a range ``(lo, hi)``: the proxy draws it from its seeded
random generator, so a test run is reproducible. Request targets carry SAS tokens: the proxy never logs
them (nothing is printed at all).
"""

from __future__ import annotations

import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
            408: "Request Timeout", 429: "Too Many Requests"}
_ERROR_CODES = {500: "InternalError", 503: "ServerBusy", 429: "ServerBusy", 408: "OperationTimedOut"}


class FaultKind(Enum):
    STATUS = "status"  # answer with an injected HTTP error, the request never reaches storage
    RESET_REQUEST = "reset request"  # RST after N bytes of the request body went upstream
    RESET_RESPONSE = "reset response"  # RST after N bytes of the response came downstream
    STALL = "stall"  # hold the request for N seconds before forwarding it (a hung link)


@dataclass
class Rule:
    kind: FaultKind
    match: re.Pattern
    method: str | None
    times: int | None
    after: int | tuple[int, int] = 0
    status: int = 503
    retry_after: str | None = None
    body: bytes | None = None
    fired: int = 0

    def matches(self, method: str, target: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.match.search(f"{method} {target}"))


@dataclass
class ProxyStats:
    connections: int = 0
    requests: int = 0
    bytes_up: int = 0  # client -> storage
    bytes_down: int = 0  # storage -> client
    faults_injected: int = 0
    by_kind: dict = field(default_factory=dict)
    requests_by_method: dict = field(default_factory=dict)


class _Throttle:
    """A token bucket per direction: ``rate`` bytes/s, shared by all connections (one slow link)."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self._lock = threading.Lock()
        self._next_free = 0.0

    def take(self, n: int) -> None:
        with self._lock:
            rate = self.rate
            if not rate:
                return
            now = time.monotonic()
            start = max(now, self._next_free)
            self._next_free = start + n / rate
            wait = self._next_free - now
        if wait > 0:
            time.sleep(wait)


class FaultProxy:
    faults_in_session = 0  # across every proxy of the test session (the README quotes the figure)

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1", seed: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rng = random.Random(seed)
        self.stats = ProxyStats()
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._up_throttle = _Throttle()
        self._down_throttle = _Throttle()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "FaultProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        if self._listener is not None:
            _close(self._listener, rst=False)  # shutdown() wakes the accept() blocked in the other thread
        self.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rewrite(self, url: str) -> str:
        """``url`` (an Azurite SAS URL) with host and port replaced by the proxy's."""
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, f"127.0.0.1:{self.port}", parts.path, parts.query, parts.fragment))

    # -- faults ------------------------------------------------------------------------------------
    def fail_requests(self, k: int, *, status: int = 503, match: str = "", method: str | None = None,
                      retry_after: str | int | None = None, body: bytes | None = None) -> Rule:
        """Answer the next ``k`` matching requests with ``status`` (an Azure-style XML error body)."""
        return self._add(Rule(FaultKind.STATUS, re.compile(match), _m(method), k, status=status,
                              retry_after=None if retry_after is None else str(retry_after), body=body))

    def reset_request_after(self, after: int | tuple[int, int], *, match: str = "", method: str | None = None,
                            times: int | None = 1) -> Rule:
        """Reset the connection once ``after`` bytes of a matching request's body were forwarded."""
        return self._add(Rule(FaultKind.RESET_REQUEST, re.compile(match), _m(method), times, after=after))

    def reset_response_after(self, after: int | tuple[int, int], *, match: str = "", method: str | None = None,
                             times: int | None = 1) -> Rule:
        """Reset the connection once ``after`` bytes of a matching request's response were relayed."""
        return self._add(Rule(FaultKind.RESET_RESPONSE, re.compile(match), _m(method), times, after=after))

    def stall(self, seconds: float, *, match: str = "", method: str | None = None, times: int | None = 1) -> Rule:
        return self._add(Rule(FaultKind.STALL, re.compile(match), _m(method), times, after=int(seconds * 1000)))

    def throttle(self, bytes_per_s: float | None, *, up: bool = True, down: bool = True) -> None:
        """Limit the link to ``bytes_per_s`` in each chosen direction (None: full speed)."""
        if up:
            self._up_throttle.rate = bytes_per_s
        if down:
            self._down_throttle.rate = bytes_per_s

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        self.throttle(None)

    def pending(self) -> list[Rule]:
        with self._lock:
            return [r for r in self._rules if r.times is None or r.fired < r.times]

    def drop_connections(self) -> None:
        """Reset every open connection now (a network blip)."""
        with self._lock:
            socks = list(self._sockets)
        for s in socks:
            _reset(s)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no connection is open (requests a killed client left in flight have landed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._sockets:
                    return True
            time.sleep(0.01)
        return False

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def _take(self, method: str, target: str, kinds: tuple[FaultKind, ...],
              body_length: int | None = None) -> tuple[Rule, int] | None:
        """The first live rule of ``kinds`` for this request, counted as fired, with its drawn threshold.

        A request-reset rule only takes a request whose body is longer than the threshold (a Get Block
        List before the Put Blocks must not use it up)."""
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds and (rule.times is None or rule.fired < rule.times) and rule.matches(method, target):
                    after = rule.after if isinstance(rule.after, int) else self.rng.randint(*rule.after)
                    if body_length is not None and body_length <= after:
                        continue
                    rule.fired += 1
                    return rule, after
        return None

    def _count_fault(self, kind: FaultKind) -> None:
        with self._lock:
            FaultProxy.faults_in_session += 1
            self.stats.faults_injected += 1
            self.stats.by_kind[kind.value] = self.stats.by_kind.get(kind.value, 0) + 1

    # -- relaying ----------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.stats.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _reset(client)  # storage is down: the client sees a refused/reset connection
            return
        upstream.settimeout(None)
        conn = _Conn(self, client, upstream)
        with self._lock:
            self._sockets.update((client, upstream))
        down = threading.Thread(target=conn.relay_down, daemon=True)
        down.start()
        try:
            conn.relay_up()
        finally:
            down.join(timeout=30)
            with self._lock:
                self._sockets.discard(client)
                self._sockets.discard(upstream)
            conn.close()


class _Conn:
    """One client connection and its upstream twin."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.down_budget: int | None = None  # bytes of the current response still allowed before a reset
        self.dead = threading.Event()

    def close(self) -> None:
        self.dead.set()
        for s in (self.client, self.upstream):
            _close(s, rst=False)

    def kill(self) -> None:
        self.dead.set()
        _reset(self.client)
        _reset(self.upstream)

    # client -> storage, request by request
    def relay_up(self) -> None:
        buf = b""
        try:
            while not self.dead.is_set():
                while _HEAD_END not in buf:
                    chunk = self.client.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    if len(buf) > _MAX_HEAD:
                        self._opaque(buf)
                        return
                head, _, buf = buf.partition(_HEAD_END)
                head += _HEAD_END
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                method, _, rest = request_line.partition(" ")
                target = rest.rsplit(" ", 1)[0]
                headers = _headers(head)
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self._send_up(head + buf)
                    self._opaque(b"")
                    return
                length = int(headers.get("content-length", "0") or 0)
                with self.proxy._lock:
                    self.proxy.stats.requests += 1
                    self.proxy.stats.requests_by_method[method] = self.proxy.stats.requests_by_method.get(method, 0) + 1
                stall = self.proxy._take(method, target, (FaultKind.STALL,))
                if stall is not None:
                    self.proxy._count_fault(FaultKind.STALL)
                    time.sleep(stall[1] / 1000)
                status = self.proxy._take(method, target, (FaultKind.STATUS,))
                if status is not None:
                    buf = self._drain(buf, length)
                    self.proxy._count_fault(FaultKind.STATUS)
                    self._answer(status[0])
                    return  # Connection: close, as a busy front end would
                reset_up = self.proxy._take(method, target, (FaultKind.RESET_REQUEST,), body_length=length)
                reset_down = self.proxy._take(method, target, (FaultKind.RESET_RESPONSE,))
                with self.lock:
                    self.down_budget = reset_down[1] if reset_down else None
                cut = reset_up[1] if reset_up else None
                self._send_up(head)
                remaining = length
                sent_body = 0
                while remaining > 0:
                    if not buf:
                        buf = self.client.recv(min(65536, remaining))
                        if not buf:
                            return
                    piece, buf = buf[:remaining], buf[remaining:]
                    if cut is not None and sent_body + len(piece) >= cut:
                        self._send_up(piece[: max(0, cut - sent_body)])
                        self.proxy._count_fault(FaultKind.RESET_REQUEST)
                        self.kill()
                        return
                    self._send_up(piece)
                    sent_body += len(piece)
                    remaining -= len(piece)
        except OSError:
            pass
        finally:
            self.dead.set()
            try:
                self.upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _opaque(self, pending: bytes) -> None:
        """Not HTTP we understand: relay the rest raw."""
        if pending:
            self._send_up(pending)
        while True:
            chunk = self.client.recv(65536)
            if not chunk:
                return
            self._send_up(chunk)

    def _drain(self, buf: bytes, length: int) -> bytes:
        """Read and discard a refused request's body, so the client gets to read our answer."""
        remaining = length - len(buf[:length])
        buf = buf[length:]
        self.client.settimeout(10)
        while remaining > 0:
            chunk = self.client.recv(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
        return buf

    def _answer(self, rule: Rule) -> None:
        code = _ERROR_CODES.get(rule.status, "InternalError")
        body = rule.body if rule.body is not None else (
            '<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>Injected fault.</Message></Error>'
            % code).encode()
        lines = [f"HTTP/1.1 {rule.status} {_REASONS.get(rule.status, 'Error')}",
                 "Content-Type: application/xml", f"Content-Length: {len(body)}", f"x-ms-error-code: {code}",
                 "Connection: close"]
        if rule.retry_after is not None:
            lines.append(f"Retry-After: {rule.retry_after}")
        self.client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        with self.proxy._lock:
            self.proxy.stats.bytes_down += len(body)
        self.close()

    def _send_up(self, data: bytes) -> None:
        if not data:
            return
        self.proxy._up_throttle.take(len(data))
        self.upstream.sendall(data)
        with self.proxy._lock:
            self.proxy.stats.bytes_up += len(data)

    # storage -> client, raw
    def relay_down(self) -> None:
        try:
            while True:
                chunk = self.upstream.recv(65536)
                if not chunk:
                    break
                with self.lock:
                    budget = self.down_budget
                    if budget is not None:
                        self.down_budget = budget - len(chunk)
                if budget is not None and len(chunk) >= budget:
                    self._send_down(chunk[: max(0, budget)])
                    self.proxy._count_fault(FaultKind.RESET_RESPONSE)
                    self.kill()
                    return
                self._send_down(chunk)
        except OSError:
            pass
        finally:
            try:
                self.client.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _send_down(self, data: bytes) -> None:
        if not data:
            return
        # Small slices so a throttled response trickles instead of arriving in bursts.
        for i in range(0, len(data), 16384):
            piece = data[i:i + 16384]
            self.proxy._down_throttle.take(len(piece))
            self.client.sendall(piece)
            with self.proxy._lock:
                self.proxy.stats.bytes_down += len(piece)


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, _, v = line.partition(b":")
            out[k.decode("latin-1").strip().lower()] = v.decode("latin-1").strip()
    return out


def _m(method: str | None) -> str | None:
    return method.upper() if method else None


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), like a dropped link, not a polite FIN."""
    _close(sock, rst=True)


def _close(sock: socket.socket, *, rst: bool) -> None:
    # shutdown() first: close() alone would not wake the other relay thread blocked in recv() on it.
    try:
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)  # sends nothing; the close below sends the RST
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


__all__ = ["FaultProxy", "FaultKind", "ProxyStats", "Rule"]
