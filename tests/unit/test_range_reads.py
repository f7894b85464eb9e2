"""Ranged reads over http.client: a body cut off midway resumes from the next byte (not from the start of
the range), a 403 gets one fresh SAS, the ETag goes on every attempt, and bytes from the wrong offset are
refused. Against a loopback server that serves one blob and misbehaves on cue."""

from __future__ import annotations

import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bucket_sync.errors import TransientError
from bucket_sync.storage.list_http import ConnectionFailed, StorageHttpError
from bucket_sync.storage.range_reads import RangeClient
from bucket_sync.retry import Backoff
from tests.support.sas_sources import RenewingSource

BLOB = os.urandom(3 * 1024 * 1024 + 77)


class Blob:
    """Serves BLOB; ``faults`` are used up one per request: "cut" (half the body, then the connection
    closes), "ignore-range" (200 and the whole blob), or a status code."""

    def __init__(self, *faults) -> None:
        self.faults = list(faults)
        self.requests: list[dict[str, str]] = []

    def serve(self):
        blob = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                blob.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                fault = blob.faults.pop(0) if blob.faults else None
                if isinstance(fault, int):
                    body = b"<Error/>"
                    self.send_response(fault)
                    self.send_header("x-ms-error-code", "AuthenticationFailed" if fault == 403 else "Nope")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                first, last = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers["x-ms-range"]).groups())
                if fault == "ignore-range":
                    first, last = 0, len(BLOB) - 1
                body = BLOB[first:last + 1]
                self.send_response(200 if fault == "ignore-range" else 206)
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(BLOB)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "cut":
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def read():
    servers = []

    def start(*faults, attempts=4):
        blob = Blob(*faults)
        server = blob.serve()
        servers.append(server)
        source = RenewingSource(f"http://127.0.0.1:{server.server_port}/acct/cont")
        client = RangeClient(source.current().container_url, source, Backoff(attempts=attempts, sleep=lambda s: None))

        def fetch(offset: int, length: int) -> bytes:
            out = bytearray()

            def sink(at: int, piece: memoryview) -> None:
                assert at == offset + len(out)  # in order, no gap, no repeat
                out.extend(piece)

            try:
                client.stream("dir/a b.bin", offset, length, '"0x8D1"', sink)
            finally:
                client.close()
            return bytes(out)

        return fetch, blob, source

    yield start
    for server in servers:
        server.shutdown()


def test_a_range_arrives_whole_and_pinned_to_the_etag(read):
    fetch, blob, _ = read()
    assert fetch(1000, 2 * 1024 * 1024) == BLOB[1000:1000 + 2 * 1024 * 1024]
    assert blob.requests[0]["path"] == "/acct/cont/dir/a%20b.bin?sv=1&sig=one"
    assert blob.requests[0]["if-match"] == '"0x8D1"'


def test_a_body_cut_midway_resumes_from_the_next_byte(read):
    fetch, blob, _ = read("cut", "cut")
    assert fetch(0, len(BLOB)) == BLOB
    ranges = [r["x-ms-range"] for r in blob.requests]
    assert ranges[0] == f"bytes=0-{len(BLOB) - 1}"
    assert len(ranges) == 3 and all(r.endswith(f"-{len(BLOB) - 1}") for r in ranges)
    starts = [int(r[6:].split("-")[0]) for r in ranges]
    assert 0 < starts[1] < starts[2] < len(BLOB)  # each resend starts where the bytes stopped
    assert all(r["if-match"] == '"0x8D1"' for r in blob.requests)  # both halves of one version


def test_cuts_beyond_the_attempts_fail_as_a_dropped_connection(read):
    fetch, _, _ = read("cut", "cut", "cut", attempts=2)
    with pytest.raises(ConnectionFailed):
        fetch(0, len(BLOB))


def test_a_403_gets_one_fresh_sas_and_a_412_is_not_retried(read):
    fetch, blob, source = read(403)
    assert fetch(0, 5000) == BLOB[:5000]
    assert source.refreshes == 1 and blob.requests[-1]["path"].endswith("sig=two")
    fetch, blob, _ = read(412)
    with pytest.raises(StorageHttpError) as exc:
        fetch(0, 5000)
    assert exc.value.status == 412 and len(blob.requests) == 1


def test_bytes_from_another_offset_are_refused(read):
    fetch, _, _ = read("ignore-range")
    with pytest.raises(TransientError):
        fetch(4096, 5000)  # a 200 is the blob from byte 0: never written at 4096
