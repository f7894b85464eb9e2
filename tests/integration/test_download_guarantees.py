"""What a download guarantees, on both read paths (http.client, and the SDK's transport when a proxy is
configured), against the real Azurite: exact bytes, a wrong Content-MD5 or a blob rewritten since the
listing fails the file and leaves nothing under its name (nor a partial file), and a SAS refused mid-file
is refreshed and the file completes."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.storage.blob import ContentSettings

from bucket_sync.errors import BucketSyncError, TransientError
from bucket_sync.platform.resolver import StaticSasSource
from bucket_sync.sas import ContainerSas, SasSource
from bucket_sync.storage import container as storage_module
from bucket_sync.storage.container import Storage
from bucket_sync.sync.budget import ByteBudget, MiB
from bucket_sync.sync.download import Downloader
from bucket_sync.sync.scan import PARTIAL_SUFFIX

pytestmark = pytest.mark.integration

CHUNK = 256 * 1024
SIZES = {"small.bin": 5000, "ranged.bin": 5 * CHUNK + 12345}  # one GET; six ranges, the last one short


@pytest.fixture(params=["http.client", "sdk (proxy configured)"])
def read_path(request, monkeypatch):
    if request.param.startswith("sdk"):
        monkeypatch.setattr(storage_module, "proxy_configured", lambda url: True)
    return request.param


class RevocableSource(SasSource):
    """A good SAS until revoked; then a tampered one (storage: 403) until refresh() hands the good one back."""

    def __init__(self, good: ContainerSas, bad: ContainerSas) -> None:
        self.good, self.bad = good, bad
        self.revoked = False
        self.refreshes = 0

    def current(self) -> ContainerSas:
        return self.bad if self.revoked else self.good

    def refresh(self, stale: ContainerSas) -> ContainerSas:
        self.refreshes += 1
        self.revoked = False
        return self.good


def _container(azurite, md5_of=lambda data: hashlib.md5(data).digest()):
    name = f"dl-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    client = azurite.container_client(name)
    contents = {}
    for key, size in SIZES.items():
        data = os.urandom(size)
        blob = client.get_blob_client(f"p/{key}")
        blob.upload_blob(data)
        # Set afterwards: Put Blob checks a Content-MD5 it is sent, Set Blob Properties stores it as given.
        blob.set_http_headers(ContentSettings(content_md5=bytearray(md5_of(data))))
        contents[key] = data
    return name, client, contents


def _download(storage: Storage, root, blobs, on_bytes=lambda n: None) -> dict[str, BaseException | None]:
    outcome = {}
    with ThreadPoolExecutor(4) as pool:
        downloader = Downloader(storage, pool, ByteBudget(4 * MiB), chunk_size=CHUNK, on_bytes=on_bytes,
                                cancel=threading.Event())
        for blob in blobs:
            try:
                downloader.download(blob, str(root))
                outcome[blob.key] = None
            except BucketSyncError as exc:
                outcome[blob.key] = exc
    return outcome


def test_downloads_are_exact_and_md5_checked(azurite, read_path, tmp_path):
    name, _client, contents = _container(azurite)
    storage = Storage(StaticSasSource(ContainerSas.from_url(azurite.container_sas_url(name))))
    try:
        assert (storage._range_client is None) == read_path.startswith("sdk")  # noqa: SLF001 - the path under test
        outcome = _download(storage, tmp_path, storage.list("p"))
    finally:
        storage.close()
    assert outcome == {"ranged.bin": None, "small.bin": None}
    for key, data in contents.items():
        assert (tmp_path / key).read_bytes() == data
    assert not list(tmp_path.glob(f"*{PARTIAL_SUFFIX}"))


def test_a_wrong_content_md5_fails_the_file_and_leaves_nothing(azurite, read_path, tmp_path):
    name, _client, _contents = _container(azurite, md5_of=lambda data: hashlib.md5(data + b"!").digest())
    storage = Storage(StaticSasSource(ContainerSas.from_url(azurite.container_sas_url(name))))
    try:
        outcome = _download(storage, tmp_path, storage.list("p"))
    finally:
        storage.close()
    assert set(outcome) == set(SIZES)
    for key, exc in outcome.items():
        assert exc is not None and "does not match the blob's Content-MD5" in str(exc), key
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial


def test_a_blob_rewritten_since_the_listing_fails_cleanly(azurite, read_path, tmp_path):
    name, client, _contents = _container(azurite)
    storage = Storage(StaticSasSource(ContainerSas.from_url(azurite.container_sas_url(name))))
    try:
        blobs = storage.list("p")
        for key, size in SIZES.items():  # same size, new content: a new ETag
            client.upload_blob(f"p/{key}", os.urandom(size), overwrite=True)
        outcome = _download(storage, tmp_path, blobs)
    finally:
        storage.close()
    for key, exc in outcome.items():
        assert isinstance(exc, TransientError) and "changed while it was being read" in str(exc), key
    assert list(tmp_path.iterdir()) == []


def test_a_sas_refused_mid_file_is_refreshed_and_the_file_completes(azurite, read_path, tmp_path):
    name, _client, contents = _container(azurite)
    good = ContainerSas.from_url(azurite.container_sas_url(name))
    url = azurite.container_sas_url(name)
    bad = ContainerSas.from_url(url.replace("sig=", "sig=AAAA"))
    source = RevocableSource(good, bad)
    storage = Storage(source)
    try:
        blobs = [b for b in storage.list("p") if b.key == "ranged.bin"]

        def revoke_once(_n: int) -> None:
            if not source.refreshes:
                source.revoked = True  # ranges started from now on are signed with a refused SAS

        outcome = _download(storage, tmp_path, blobs, on_bytes=revoke_once)
    finally:
        storage.close()
    assert outcome == {"ranged.bin": None}
    assert source.refreshes >= 1
    assert (tmp_path / "ranged.bin").read_bytes() == contents["ranged.bin"]
