"""The scale bench's List Blobs stub answers what Azure would: every blob once, in order, across pages;
a delimiter's folders; a HEAD for a listed name; uploads accepted. Read through bucket-sync's own parser."""

from __future__ import annotations

import http.client
import threading

from bucket_sync.storage.list_pages import parse_page
from bucket_sync.sync.mtime import parse_mtime
from devtools.list_stub import Layout, StubServer, list_page


def pages(layout: Layout, prefix: str = "", delimiter: str = "", max_results: int = 5000):
    marker = ""
    while True:
        page = parse_page(list_page(layout, "c", "http://h/devstoreaccount1", prefix, delimiter, marker, max_results, True))
        yield page
        if not page.next_marker:
            return
        marker = page.next_marker


def test_a_flat_listing_pages_through_every_blob_once_in_name_order():
    layout = Layout("tree", 12_345)
    names = [b[0] for page in pages(layout, max_results=1000) for b in page.blobs]
    assert names == [layout.name(i) for i in range(12_345)] == sorted(names)
    first = next(pages(layout)).blobs[0]
    assert first[1] == 1 and parse_mtime(first[4]) == layout.mtime_ns(0)


def test_prefix_and_delimiter_give_folders_and_direct_blobs():
    layout = Layout("tree", 25_000)
    root = [p for page in pages(layout, delimiter="/", max_results=2) for p in page.folders]
    assert root == ["t000/", "t001/", "t002/"]
    level = list(pages(layout, prefix="t002/", delimiter="/"))
    assert level[0].folders == [f"t002/s{d}/" for d in range(5)] and not level[0].blobs
    leaf = [b[0] for page in pages(layout, prefix="t001/s3/", delimiter="/", max_results=300) for b in page.blobs]
    assert leaf == [layout.name(i) for i in range(13_000, 14_000)]
    assert [b[0] for b in next(pages(Layout("flat", 3), delimiter="/")).blobs] == ["f0000000.dat", "f0000001.dat", "f0000002.dat"]


def test_the_server_answers_head_for_listed_and_uploaded_names_and_404_otherwise():
    server = StubServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)

        def ask(method: str, path: str, body: bytes = b"", headers=None):
            conn.request(method, f"/devstoreaccount1/{path}", body=body, headers=headers or {})
            answer = conn.getresponse()
            answer.read()
            return answer

        listed = ask("HEAD", "tree-10/t000/s0/f0000007.dat?sig=x")
        assert listed.status == 200 and listed.headers["x-ms-meta-mtime"] and listed.headers["Content-Length"] == "1"
        assert ask("HEAD", "tree-10/t000/s0/f0000010.dat?sig=x").status == 404
        assert ask("PUT", "empty/a.bin?sig=x", b"abc", {"x-ms-blob-type": "BlockBlob", "x-ms-meta-mtime": "m"}).status == 201
        uploaded = ask("HEAD", "empty/a.bin?sig=x")
        assert uploaded.status == 200 and uploaded.headers["Content-Length"] == "3"
        assert ask("GET", "tree-10?restype=container&comp=list&sig=x").status == 200
    finally:
        server.shutdown()
        server.server_close()
