"""Storage.list parses List Blobs pages itself: several pages (the next one requested early), metadata
mtime, Content-MD5, and names the service returns percent-encoded. Against the real Azurite."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from azure.storage.blob import ContentSettings

from bucket_sync.sas import StaticSasSource
from bucket_sync.sas import ContainerSas
from bucket_sync.storage import container as storage_module
from bucket_sync.sync.mtime import format_mtime
from bucket_sync.storage.list_pages import next_marker, parse_page
from bucket_sync.storage.container import Storage

pytestmark = pytest.mark.integration


def test_listing_spans_pages_and_keeps_metadata(azurite, monkeypatch):
    name = f"list-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    container = azurite.container_client(name)
    expected = {}
    for i in range(11):
        data = f"blob {i}".encode()
        key = f"d{i % 3}/f{i:02d}.txt"
        container.upload_blob(f"pre/{key}", data, metadata={"mtime": format_mtime(1_700_000_000_123_456_789 + i)},
                              content_settings=ContentSettings(content_md5=bytearray(hashlib.md5(data).digest())))
        expected[key] = (len(data), hashlib.md5(data).digest(), 1_700_000_000_123_456_789 + i)
    container.upload_blob("pre-sibling.txt", b"not under the prefix")
    container.upload_blob("pre/no-mtime.txt", b"x")  # falls back to Last-Modified
    monkeypatch.setattr(storage_module, "LIST_PAGE", 4)  # 12 blobs: 3 pages
    storage = Storage(StaticSasSource(ContainerSas.from_url(azurite.container_sas_url(name))))
    try:
        blobs = storage.list("pre")
    finally:
        storage.close()
    keys = [b.key for b in blobs]
    assert keys == sorted([*expected, "no-mtime.txt"])  # every page, nothing outside the prefix, in order
    by_key = {b.key: b for b in blobs}
    for key, (size, md5, mtime_ns) in expected.items():
        b = by_key[key]
        assert (b.size, b.md5, b.mtime_ns, b.mtime_from_metadata, b.name) == (size, md5, mtime_ns, True, f"pre/{key}")
        assert b.etag
    fallback = by_key["no-mtime.txt"]
    assert not fallback.mtime_from_metadata and fallback.mtime_ns > 1_700_000_000 * 10**9


def test_page_parser_reads_encoded_names_and_the_marker():
    body = (b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>'
            b'<Blob><Name Encoded="true">a%EF%BF%BEb</Name><Properties><Last-Modified>Mon, 23 Nov 2026 10:00:00 GMT'
            b'</Last-Modified><Etag>0x1</Etag><Content-Length>5</Content-Length><Content-MD5 /></Properties>'
            b'<Metadata><Mtime>2026-11-23T10:00:00.5Z</Mtime></Metadata></Blob>'
            b'</Blobs><NextMarker>m&amp;1</NextMarker></EnumerationResults>')
    page = parse_page(body)
    assert page.next_marker == "m&1" == next_marker(body)
    assert page.blobs == [("a\ufffeb", 5, None, "0x1", "2026-11-23T10:00:00.5Z", "Mon, 23 Nov 2026 10:00:00 GMT", None)]
    assert next_marker(body.replace(b"<NextMarker>m&amp;1</NextMarker>", b"<NextMarker />")) is None


def test_folder_split_listing_matches_the_service_flat_listing(azurite, monkeypatch):
    """Delimiter listings, folder prefixes and pages against the real service: the same keys, in order,
    as the SDK's own flat listing."""
    name = f"split-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    container = azurite.container_client(name)
    names = ([f"pre/d{i}/f{j}" for i in range(6) for j in range(5)] + [f"pre/d1/sub/{j}" for j in range(5)]
             + ["pre/d1.txt", "pre/d1-x/y", "pre/a b/c&d", "pre/top", "pre/deep/1/2/3/4", "pre/é/ü", "pre/d2/"]
             + ["pre.txt", "pre-1/z", "other/x"])
    for n in names:
        container.upload_blob(n, n.encode())
    monkeypatch.setattr(storage_module, "LIST_PAGE", 3)
    storage = Storage(StaticSasSource(ContainerSas.from_url(azurite.container_sas_url(name))), concurrency=4)
    try:
        keys = [b.key for b in storage.iter_list("pre")]
    finally:
        storage.close()
    flat = [b.name[len("pre/"):] for b in container.list_blobs(name_starts_with="pre/") if not b.name.endswith("/")]
    assert keys == sorted(flat) and len(keys) == len(names) - 4


def test_behind_a_proxy_listing_goes_through_the_sdk_transport(azurite, monkeypatch):
    """http.client knows no proxies: with one configured, pages go through the SDK's transport (requests,
    which honours HTTP(S)_PROXY). Same answers either way."""
    name = f"proxy-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    container = azurite.container_client(name)
    for n in ["p/a/1", "p/a/2", "p/b", "p/c/d/e"]:
        container.upload_blob(n, b"x")
    monkeypatch.setattr(storage_module, "proxy_configured", lambda url: True)
    monkeypatch.setattr(storage_module, "LIST_PAGE", 1)
    storage = Storage(StaticSasSource(ContainerSas.from_url(azurite.container_sas_url(name))))
    try:
        assert storage._list_client is None  # noqa: SLF001 - the path under test
        assert [b.key for b in storage.iter_list("p")] == ["a/1", "a/2", "b", "c/d/e"]
        assert [b.key for b in storage.iter_list("nothing")] == []
    finally:
        storage.close()


def test_a_no_op_mirror_imports_neither_the_sdk_nor_the_ui_libraries(cli, azurite, tmp_path, make_files):
    """A cron job's no-op run lists and compares: the SDK (azure-core, requests), tqdm and watchdog are
    imported only when a transfer, a progress bar or a watcher needs them (~0.1 s per run)."""
    import subprocess
    import sys

    name = f"lean-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    url = azurite.container_sas_url(name)
    src = make_files(tmp_path / "src", {f"d{i}/f{j}.txt": f"{i}-{j}" for i in range(3) for j in range(3)})
    assert cli("mirror", src, url).returncode == 0  # the uploads need the SDK
    probe = ("import atexit, sys\n"
             "heavy = ('azure', 'requests', 'tqdm', 'watchdog', 'httpx')\n"
             "atexit.register(lambda: print('IMPORTED', sorted({m.split('.')[0] for m in sys.modules if m.startswith(heavy)}),"
             " file=sys.stderr))\n"
             "from bucket_sync.cli.main import main\n"
             "main(sys.argv[1:])\n")
    r = subprocess.run([sys.executable, "-c", probe, "mirror", str(src), url, "--json"], capture_output=True, text=True,
                       env=cli.env_for(), timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"skipped": 9' in r.stdout and '"uploaded": 0' in r.stdout
    assert "IMPORTED []" in r.stderr, r.stderr[-500:]
