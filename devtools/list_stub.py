"""A List Blobs stub for the scale bench: real Azure XML pages over synthetic blobs, uploads discarded.

Azurite lists ~75 µs of its own CPU per blob, so a million-blob container would measure Azurite. This stub
answers the same REST shapes for containers whose blobs exist only as a function of their index: a
container named ``tree-<N>`` holds N blobs ``t<iii>/s<d>/f<nnnnnnn>.dat`` (1,000 per folder, 10 folders per
top-level folder), ``flat-<N>`` holds N blobs ``f<nnnnnnn>.dat`` at its root, and any other name is empty.
Names sort as their index does, so a prefix, a marker or a delimiter is a binary search, never a list:
a million blobs cost no memory. Each blob's size (1 byte), content, Content-MD5, ETag and ``mtime``
metadata derive from its index (see :class:`Layout`); the bench writes the local tree from the same
functions so that a no-op is a no-op for every tool.

Answered: List Blobs (prefix, delimiter, marker/NextMarker, maxresults, include=metadata), Get Blob
Properties (HEAD) and Get Blob for a listed name, container properties, and every write (Put Blob, Put
Block, Put Block List, Set Blob Metadata/Properties, Delete Blob) accepted and its bytes discarded (an
uploaded blob's size, MD5 and ``mtime`` are kept, so a HEAD after the upload finds it, as rclone checks). The SAS in the
query is not validated and never logged (nor is any query string). Pages are built lazily per
(container, prefix, delimiter, marker) and kept in a bounded cache, so later runs over the same listing
cost the stub almost nothing.

``python -m devtools.list_stub [--port N]`` prints ``LIST_STUB_PORT=<port>`` and serves until SIGTERM;
``GET /_stats`` answers the request counts and the process's CPU seconds as JSON.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

ACCOUNT = "devstoreaccount1"
BASE_MTIME_S = 1_700_000_000  # 2023-11-14T22:13:20Z
FILES_PER_FOLDER = 1000
FOLDERS_PER_TOP = 10
MAX_RESULTS = 5000
CACHE_BYTES = 1024 * 1024 * 1024  # a million blobs' pages take ~750 MB per listing shape
LAST_MODIFIED = formatdate(BASE_MTIME_S + 86400, usegmt=True)
CREATION_TIME = formatdate(BASE_MTIME_S, usegmt=True)
_CONTAINER_RE = re.compile(r"^(tree|flat)-(\d+)$")


class Layout:
    """The blobs of one container, as functions of their index."""

    def __init__(self, kind: str, count: int) -> None:
        self.kind = kind
        self.count = count
        self._range = range(count)

    @classmethod
    def for_container(cls, container: str) -> "Layout":
        m = _CONTAINER_RE.match(container)
        return cls(m.group(1), int(m.group(2))) if m else cls("empty", 0)

    def name(self, i: int) -> str:
        if self.kind == "flat":
            return f"f{i:07d}.dat"
        return f"t{i // (FILES_PER_FOLDER * FOLDERS_PER_TOP):03d}/s{i // FILES_PER_FOLDER % FOLDERS_PER_TOP}/f{i:07d}.dat"

    def index(self, name: str) -> int | None:
        """The index of a listed name, None for any other name."""
        m = re.search(r"f(\d{7})\.dat$", name)
        if not m:
            return None
        i = int(m.group(1))
        return i if i < self.count and self.name(i) == name else None

    # Properties: every blob holds one byte, a letter chosen by its index.
    @staticmethod
    def content(i: int) -> bytes:
        return bytes((97 + i % 26,))

    @staticmethod
    def mtime_ns(i: int) -> int:
        return (BASE_MTIME_S + i) * 1_000_000_000 + (i * 7_919_113) % 1_000_000_000

    @staticmethod
    def etag(i: int) -> str:
        return f"0x8DC{i:012X}"

    def first_at_or_after(self, text: str, lo: int = 0) -> int:
        return bisect_left(self._range, text, lo=lo, key=self.name)

    def end_of_prefix(self, prefix: str, lo: int = 0) -> int:
        """The first index at or after ``lo`` whose name is past every name starting with ``prefix``."""
        n = len(prefix)
        return bisect_right(self._range, prefix, lo=lo, key=lambda i: self.name(i)[:n])


_DAYS: dict[int, str] = {}


def format_mtime(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed (as rclone and bucket-sync write ``mtime``)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    day, rem = divmod(seconds, 86400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    return f"{date}{hour:02d}:{minute:02d}:{second:02d}" + ("." + f"{frac:09d}".rstrip("0") if frac else "") + "Z"


_MD5 = [base64.b64encode(hashlib.md5(bytes((97 + k,))).digest()).decode() for k in range(26)]

_BLOB = ("<Blob><Name>%s</Name><Properties><Creation-Time>" + CREATION_TIME + "</Creation-Time>"
         "<Last-Modified>" + LAST_MODIFIED + "</Last-Modified><Etag>%s</Etag><Content-Length>1</Content-Length>"
         "<Content-Type>application/octet-stream</Content-Type><Content-Encoding /><Content-Language />"
         "<Content-CRC64 /><Content-MD5>%s</Content-MD5><Cache-Control /><Content-Disposition />"
         "<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>"
         "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
         "<ServerEncrypted>true</ServerEncrypted></Properties>%s<OrMetadata /></Blob>")


def list_page(layout: Layout, container: str, endpoint: str, prefix: str, delimiter: str, marker: str,
              max_results: int, metadata: bool) -> bytes:
    """One List Blobs page, as Azure shapes it. The marker is the index the page starts at."""
    n = layout.count
    start = layout.first_at_or_after(prefix) if prefix else 0
    if marker:
        start = max(start, int(marker[2:]) if marker.startswith("2!") and marker[2:].isdigit() else n)
    end = layout.end_of_prefix(prefix, start) if prefix else n
    parts = []
    i = start
    emitted = 0
    plen = len(prefix)
    name = layout.name
    while i < end and emitted < max_results:
        full = name(i)
        cut = full.find(delimiter, plen) if delimiter else -1
        if cut >= 0:
            folder = full[:cut + len(delimiter)]
            parts.append(f"<BlobPrefix><Name>{escape(folder)}</Name></BlobPrefix>")
            i = layout.end_of_prefix(folder, i)
        else:
            meta = f"<Metadata><mtime>{format_mtime(layout.mtime_ns(i))}</mtime></Metadata>" if metadata else "<Metadata />"
            parts.append(_BLOB % (full, layout.etag(i), _MD5[i % 26], meta))
            i += 1
        emitted += 1
    next_marker = f"2!{i}" if i < end else ""
    head = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{escape(endpoint)}/" '
            f'ContainerName="{escape(container)}">'
            + (f"<Prefix>{escape(prefix)}</Prefix>" if prefix else "")
            + (f"<Marker>{escape(marker)}</Marker>" if marker else "")
            + f"<MaxResults>{max_results}</MaxResults>"
            + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
            + "<Blobs>")
    tail = f"</Blobs><NextMarker>{next_marker}</NextMarker></EnumerationResults>"
    return (head + "".join(parts) + tail).encode()


class PageCache:
    """Page bodies by request, least recently used dropped first, at most ``limit`` bytes in all."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self._pages: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple, build) -> bytes:
        with self._lock:
            body = self._pages.get(key)
            if body is not None:
                self._pages.move_to_end(key)
                self.hits += 1
                return body
            self.misses += 1
        body = build()
        with self._lock:
            if key not in self._pages and len(body) <= self.limit:
                self._pages[key] = body
                self._bytes += len(body)
                while self._bytes > self.limit:
                    _, old = self._pages.popitem(last=False)
                    self._bytes -= len(old)
        return body


class Uploads:
    """What was written, without the bytes: enough for a tool's look-up after its upload (rclone reads
    each blob's properties back) to find the blob it wrote. The contents are discarded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[tuple[str, str], tuple] = {}
        self._staged: dict[tuple[str, str], int] = {}

    def stage(self, container: str, blob: str, block_id: str, nbytes: int) -> None:
        with self._lock:
            key = (container, blob)
            self._staged[key] = self._staged.get(key, 0) + nbytes

    def commit(self, container: str, blob: str, etag: str, md5: str | None, mtime: str | None) -> None:
        with self._lock:
            size = self._staged.pop((container, blob), 0)
            self._blobs[(container, blob)] = (size, etag, md5, mtime)

    def put(self, container: str, blob: str, size: int, etag: str, md5: str | None, mtime: str | None) -> None:
        with self._lock:
            self._blobs[(container, blob)] = (size, etag, md5, mtime)

    def get(self, container: str, blob: str) -> dict[str, str] | None:
        with self._lock:
            found = self._blobs.get((container, blob))
        if found is None:
            return None
        size, etag, md5, mtime = found
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream", "ETag": etag,
                   "Last-Modified": LAST_MODIFIED, "x-ms-blob-type": "BlockBlob", "x-ms-server-encrypted": "true"}
        if md5:
            headers["Content-MD5"] = md5
        if mtime:
            headers["x-ms-meta-mtime"] = mtime
        return headers


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.bytes_in = 0

    def count(self, what: str, nbytes: int = 0) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1
            self.bytes_in += nbytes

    def as_dict(self, cache: PageCache) -> dict:
        t = os.times()
        with self._lock:
            return {"requests": dict(self.counts), "bytes_in": self.bytes_in, "cpu_s": t.user + t.system,
                    "cache_hits": cache.hits, "cache_misses": cache.misses}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "list-stub"
    sys_version = ""
    server: "StubServer"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # request lines carry the SAS: nothing is logged, not even without it (the bench's output stays clean)

    # -- plumbing ----------------------------------------------------------------------------------
    def _target(self) -> tuple[str, str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = unquote(parts.path)
        account, _, rest = path.lstrip("/").partition("/")
        container, _, blob = rest.partition("/")
        if account != ACCOUNT:
            container, blob = "", ""
        return container, blob, query

    def _body(self) -> int:
        """Read and drop the request body; its length."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        return length

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                content_type: str | None = None) -> None:
        self.send_response(status)
        self.send_header("x-ms-request-id", "00000000-0000-0000-0000-000000000000")
        self.send_header("x-ms-version", self.headers.get("x-ms-version") or "2025-11-05")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if content_type:
            self.send_header("Content-Type", content_type)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'.encode()
        self._answer(status, body, {"x-ms-error-code": code}, "application/xml")

    def _blob_headers(self, layout: Layout, i: int) -> dict[str, str]:
        return {"Content-Length": "1", "Content-Type": "application/octet-stream", "Content-MD5": _MD5[i % 26],
                "ETag": f'"{layout.etag(i)}"', "Last-Modified": LAST_MODIFIED, "x-ms-creation-time": CREATION_TIME,
                "x-ms-blob-type": "BlockBlob", "x-ms-server-encrypted": "true", "Accept-Ranges": "bytes",
                "x-ms-meta-mtime": format_mtime(layout.mtime_ns(i)), "x-ms-lease-state": "available",
                "x-ms-lease-status": "unlocked", "x-ms-access-tier": "Hot", "x-ms-access-tier-inferred": "true"}

    # -- verbs ---------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path == "/_stats":
            self.server.stats.count("stats")
            body = json.dumps(self.server.stats.as_dict(self.server.cache)).encode()
            return self._answer(200, body, content_type="application/json")
        container, blob, q = self._target()
        self._body()
        if not container:
            return self._error(400, "InvalidUri")
        if blob:
            return self._blob(container, blob, head=False)
        if q.get("restype") == "container" and q.get("comp") == "list":
            return self._list(container, q)
        if q.get("restype") == "container":
            self.server.stats.count("container")
            return self._answer(200, headers={"ETag": '"0x8DC000000000000"', "Last-Modified": LAST_MODIFIED})
        return self._error(400, "UnsupportedQueryParameter")

    def do_HEAD(self) -> None:
        container, blob, q = self._target()
        self._body()
        if not container:
            return self._error(400, "InvalidUri")
        if not blob:
            self.server.stats.count("container")
            return self._answer(200, headers={"ETag": '"0x8DC000000000000"', "Last-Modified": LAST_MODIFIED})
        return self._blob(container, blob, head=True)

    def do_PUT(self) -> None:
        container, blob, q = self._target()
        nbytes = self._body()
        comp = q.get("comp", "")
        self.server.stats.count(f"put:{comp or ('container' if not blob else 'blob')}", nbytes)
        etag = f'"0x8DD{time.time_ns() & 0xFFFFFFFFFFFF:012X}"'
        headers = {"ETag": etag, "Last-Modified": formatdate(usegmt=True), "x-ms-request-server-encrypted": "true"}
        if not blob:  # create container: always new, so a first upload may create it
            return self._answer(201, headers=headers)
        uploads = self.server.uploads
        if comp in ("metadata", "properties"):
            return self._answer(200, headers=headers)
        if comp == "block":
            uploads.stage(container, blob, q.get("blockid", ""), nbytes)
            return self._answer(201, headers={"x-ms-request-server-encrypted": "true",
                                              "x-ms-content-crc64": "AAAAAAAAAAA="})
        md5 = self.headers.get("x-ms-blob-content-md5") or self.headers.get("Content-MD5")
        mtime = self.headers.get("x-ms-meta-mtime")
        if comp == "blocklist":
            uploads.commit(container, blob, etag, md5, mtime)
            return self._answer(201, headers=headers)
        if comp == "":
            uploads.put(container, blob, nbytes, etag, md5, mtime)
            return self._answer(201, headers=headers)
        return self._error(400, "UnsupportedQueryParameter")

    def do_DELETE(self) -> None:
        container, blob, q = self._target()
        self._body()
        self.server.stats.count("delete")
        self._answer(202, headers={"x-ms-delete-type-permanent": "true"})

    # -- answers -------------------------------------------------------------------------------------
    def _list(self, container: str, q: dict[str, str]) -> None:
        self.server.stats.count("list")
        layout = self.server.layout(container)
        try:
            max_results = max(1, min(MAX_RESULTS, int(q.get("maxresults") or MAX_RESULTS)))
        except ValueError:
            return self._error(400, "InvalidQueryParameterValue")
        prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
        metadata = "metadata" in q.get("include", "").split(",")
        endpoint = f"http://{self.headers.get('Host') or '127.0.0.1'}/{ACCOUNT}"
        key = (container, prefix, delimiter, marker, max_results, metadata, endpoint)
        body = self.server.cache.get(key, lambda: list_page(layout, container, endpoint, prefix, delimiter, marker,
                                                             max_results, metadata))
        self._answer(200, body, content_type="application/xml")

    def _blob(self, container: str, blob: str, *, head: bool) -> None:
        self.server.stats.count("head" if head else "get")
        layout = self.server.layout(container)
        i = layout.index(blob)
        if i is None:
            uploaded = self.server.uploads.get(container, blob)
            if uploaded is None:
                return self._error(404, "BlobNotFound")
            return self._answer(200, headers=uploaded) if head else self._error(400, "UploadedContentDiscarded")
        headers = self._blob_headers(layout, i)
        if head:
            return self._answer(200, headers=headers)
        ranged = self.headers.get("x-ms-range") or self.headers.get("Range")
        if ranged:
            headers["Content-Range"] = "bytes 0-0/1"
            return self._answer(206, layout.content(i), headers)
        self._answer(200, layout.content(i), headers)


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.stats = Stats()
        self.cache = PageCache()
        self.uploads = Uploads()
        self._layouts: dict[str, Layout] = {}

    def layout(self, container: str) -> Layout:
        found = self._layouts.get(container)
        if found is None:
            found = self._layouts[container] = Layout.for_container(container)
        return found

    @property
    def port(self) -> int:
        return self.server_address[1]


def sas_query(permissions: str = "racwdl") -> str:
    """A SAS of the right shape, signed by nothing: the stub validates none of it."""
    return (f"sv=2025-11-05&ss=b&srt=sco&sr=c&sp={permissions}&se=2099-01-01T00:00:00Z&st=2020-01-01T00:00:00Z"
            f"&spr=http&sig=stub-signature-not-checked")


def container_url(port: int, container: str) -> str:
    return f"http://127.0.0.1:{port}/{ACCOUNT}/{container}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.list_stub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--cache-mb", type=int, default=CACHE_BYTES // 2**20, help="page cache size (default %(default)s)")
    args = parser.parse_args(argv)
    server = StubServer(args.port)
    server.cache.limit = args.cache_mb * 2**20
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"LIST_STUB_PORT={server.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
