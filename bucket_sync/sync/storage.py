"""One container, reached through a refreshing SAS: the only module that touches azure-storage-blob.

Azure and transport exceptions are translated into bucket_sync errors here, with the operation that
failed, so a 403 on listing can say that the SAS lacks the list (l) permission.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from datetime import datetime, timezone
from typing import Callable, Iterator
from urllib.parse import quote

import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings

from ..errors import (
    AuthError,
    BucketSyncError,
    NotFoundError,
    PermissionDeniedError,
    SasExpiredError,
    StorageError,
    TransientError,
)
from ..redact import redact
from ..sas import ContainerSas, SasSource, describe_missing
from .listing import Lister
from .model import RemoteBlob
from .mtime import datetime_to_ns, format_mtime, parse_mtime
from .policies import RETRY_STATUSES, RetryPolicy, SasPolicy, is_dropped_connection

log = logging.getLogger(__name__)

# The SAS permission each operation needs, for a 403 that says which one is missing.
NEEDS = {"list": "l", "read": "r", "write": "w", "delete": "d", "metadata": "w"}
LIST_PAGE = 5000  # the service maximum: fewer round trips
API_VERSION = "2026-10-06"  # what our own requests (listing, ranged reads) speak: the SDK's own default


class Storage:
    def __init__(self, source: SasSource, *, concurrency: int = 16, retry_attempts: int = 6,
                 cancel: threading.Event | None = None) -> None:
        self.source = source
        sas = source.current()
        self.container_url = sas.container_url
        session = requests.Session()
        # The SDK's default pool holds 10 connections: more threads than that churn connections.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(16, concurrency * 2 + 4), max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        transport = RequestsTransport(session=session, session_owner=True, connection_timeout=20, read_timeout=120,
                                      connection_data_block_size=1024 * 1024)
        self.container = ContainerClient.from_container_url(
            sas.container_url,
            credential=None,
            transport=transport,
            retry_policy=RetryPolicy(attempts=retry_attempts, cancel=cancel),
            _additional_pipeline_policies=[SasPolicy(source)],
            max_single_put_size=256 * 1024 * 1024,
            max_single_get_size=256 * 1024 * 1024,
            max_chunk_get_size=64 * 1024 * 1024,
        )
        self._list_pipeline = Pipeline(transport=transport, policies=[
            RetryPolicy(attempts=retry_attempts, cancel=cancel), SasPolicy(source)])
        self.list_workers = max(2, min(concurrency, 16))

    def close(self) -> None:
        self.container.close()

    # -- listing ---------------------------------------------------------------------------------
    def list(self, prefix: str) -> list[RemoteBlob]:
        """Every blob under ``prefix``, sorted by key (the diff needs one order on both sides)."""
        return list(self.iter_list(prefix))

    def iter_list(self, prefix: str) -> Iterator[RemoteBlob]:
        """The same, streamed: folders are listed in parallel and handed on in key order as they arrive,
        so the diff starts before the listing ends (see listing.py)."""
        try:
            yield from Lister(self._list_body, workers=self.list_workers).blobs(prefix)
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "list", prefix or "/") from None

    def _list_body(self, starts: str | None, marker: str | None, delimiter: str | None) -> bytes:
        """One List Blobs page (XML), with the metadata the diff needs.

        Parsed by listing.py, not the SDK: its generic XML deserializer costs ~0.3 ms per blob. The request
        goes through a pipeline of only our SAS and retry policies: the client's own pipeline would also
        parse every XML body (ContentDecodePolicy), a second parse nobody reads.
        """
        params = {"restype": "container", "comp": "list", "include": "metadata", "maxresults": str(LIST_PAGE)}
        if starts:
            params["prefix"] = starts
        if marker:
            params["marker"] = marker
        if delimiter:
            params["delimiter"] = delimiter
        request = HttpRequest("GET", self.container_url, params=params,
                              headers={"x-ms-version": API_VERSION, "Accept": "application/xml"})
        response = self._list_pipeline.run(request, stream=False).http_response
        if response.status_code != 200:
            raise _response_error(response)
        return response.body()

    def get(self, name: str, key: str) -> RemoteBlob | None:
        try:
            props = self.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "read", name) from None
        return remote_blob(key, props)

    # -- writes ------------------------------------------------------------------------------------
    def put(self, name: str, data: bytes, md5: bytes, mtime_ns: int) -> None:
        try:
            self.container.get_blob_client(name).upload_blob(
                data, length=len(data), overwrite=True, metadata={"mtime": format_mtime(mtime_ns)},
                content_settings=content_settings(name, md5), max_concurrency=1,
            )
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "write", name) from None

    def stage_block(self, name: str, block_id: str, data: bytes) -> None:
        try:
            self.container.get_blob_client(name).stage_block(block_id, data, length=len(data))
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "write", name) from None

    def uncommitted_blocks(self, name: str) -> dict[str, int]:
        """Blocks staged but not committed (an interrupted upload), id -> size; {} when there are none."""
        try:
            _, uncommitted = self.container.get_blob_client(name).get_block_list("uncommitted")
        except ResourceNotFoundError:
            return {}
        except HttpResponseError as exc:
            if exc.status_code in (400, 404, 409):
                return {}
            raise self.translate(exc, "read", name) from None
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "read", name) from None
        return {b.id: b.size for b in uncommitted}

    def commit(self, name: str, block_ids: list[str], md5: bytes, mtime_ns: int) -> None:
        try:
            self.container.get_blob_client(name).commit_block_list(
                [BlobBlock(block_id=b) for b in block_ids], metadata={"mtime": format_mtime(mtime_ns)},
                content_settings=content_settings(name, md5),
            )
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "write", name) from None

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        """Only the mtime differs: rewrite the metadata, keep the content (and its MD5 and type)."""
        blob = self.container.get_blob_client(name)
        try:
            props = blob.get_blob_properties()
            metadata = dict(props.metadata or {})
            metadata["mtime"] = format_mtime(mtime_ns)
            blob.set_blob_metadata(metadata, etag=props.etag, match_condition=MatchConditions.IfNotModified)
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "metadata", name) from None

    def delete(self, name: str) -> None:
        try:
            self.container.get_blob_client(name).delete_blob()
        except ResourceNotFoundError:
            return  # already gone: the goal is reached
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "delete", name) from None

    # -- reads ---------------------------------------------------------------------------------
    def stream_range(self, name: str, offset: int, length: int, etag: str | None,
                     sink: Callable[[int, bytes], None]) -> None:
        """Hand bytes [offset, offset+length) to ``sink(position, piece)`` as they arrive.

        A plain ranged GET through the client's pipeline (SAS, retries): the SDK's downloader holds two or
        three copies of each range on the way (joined pieces, a BytesIO, its value), which tripled the
        memory of parallel downloads; streaming holds one network read per request.
        """
        headers = {"x-ms-version": API_VERSION, "x-ms-range": f"bytes={offset}-{offset + length - 1}"}
        if etag:
            headers["If-Match"] = etag
        url = f"{self.container.url}/{quote(name, safe='/~')}"
        got = 0
        try:
            response = self.container._pipeline.run(HttpRequest("GET", url, headers=headers), stream=True).http_response  # noqa: SLF001
            try:
                if response.status_code not in (200, 206):
                    response.read()
                    raise _response_error(response)
                for piece in response.iter_bytes():
                    if got + len(piece) > length:
                        raise TransientError(f"{name}: storage sent more than the {length} bytes asked for")
                    sink(offset + got, piece)
                    got += len(piece)
            finally:
                response.close()
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "read", name) from None
        if got != length:
            raise TransientError(f"{name}: short read ({got} of {length} bytes)")

    # -- errors --------------------------------------------------------------------------------
    def translate(self, exc: BaseException, op: str, name: str) -> BucketSyncError:
        if isinstance(exc, BucketSyncError):
            return exc
        where = f"{op} {name!r}" if name else op
        if is_dropped_connection(exc):
            return TransientError(f"{where}: connection to storage failed ({redact(_short(exc))})",
                                  hint="check the network; the next run picks up where this one stopped")
        if isinstance(exc, HttpResponseError):
            status = exc.status_code or 0
            code = getattr(exc, "error_code", None) or ""
            if status == 403:
                return self._forbidden(op, where, code)
            if status == 404:
                if code == "ContainerNotFound":
                    return NotFoundError(f"the container {self.container_url} does not exist",
                                         hint="check the URL or the iTwin / reality data id")
                return StorageError(f"{where}: not found ({code or 404})")
            if status == 412:
                return TransientError(f"{where}: the blob changed while it was being read; it will be retried")
            if status in RETRY_STATUSES:
                return TransientError(f"{where}: storage answered {status} {code} after retries")
            return StorageError(f"{where}: storage answered {status} {code}".rstrip())
        return StorageError(f"{where}: {redact(_short(exc))}")

    def _forbidden(self, op: str, where: str, code: str) -> AuthError:
        try:
            sas: ContainerSas | None = self.source.current()
        except SasExpiredError as exc:
            return exc
        needed = NEEDS.get(op, "")
        if code == "AuthorizationPermissionMismatch" or (sas and needed and sas.lacks(needed)):
            lacking = (sas.lacks(needed) if sas else "") or needed
            return PermissionDeniedError(
                f"{where}: the SAS does not grant the {describe_missing(lacking)} permission",
                hint="this container's SAS does not allow that operation; use a SAS (or an account) that grants it",
            )
        if sas and sas.expires_at and sas.expires_at <= datetime.now(timezone.utc):
            return SasExpiredError(f"{where}: the SAS expired at {sas.expires_at:%Y-%m-%d %H:%M:%S} UTC",
                                   hint="get a new SAS URL")
        return AuthError(f"{where}: storage refused the SAS (403 {code})".rstrip(),
                         hint="the SAS is invalid, expired or revoked; get a new one")


def remote_blob(key: str, item) -> RemoteBlob:
    metadata = item.metadata or {}
    mtime = parse_mtime(metadata.get("mtime") or metadata.get("Mtime"))
    settings = item.content_settings
    md5 = bytes(settings.content_md5) if settings is not None and settings.content_md5 else None
    return RemoteBlob(
        key=key, name=item.name, size=item.size or 0,
        mtime_ns=mtime if mtime is not None else datetime_to_ns(item.last_modified),
        md5=md5, etag=item.etag, mtime_from_metadata=mtime is not None,
    )


def content_settings(name: str, md5: bytes) -> ContentSettings:
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return ContentSettings(content_type=content_type, content_md5=bytearray(md5))


def _response_error(response) -> HttpResponseError:
    """What the SDK would raise for an error answer to a request we built ourselves (translate() reads it)."""
    error = HttpResponseError(response=response)
    error.error_code = response.headers.get("x-ms-error-code")
    return error


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
