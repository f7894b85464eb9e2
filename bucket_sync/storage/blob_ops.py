"""The container through azure-storage-blob: blob reads, writes and deletes (the only module that uses the SDK).

Built by Storage on first use, so a run that only lists never imports the SDK (~0.1 s with azure-core and
requests). Azure and transport exceptions become bucket_sync errors here (storage_errors.py says which).
"""

from __future__ import annotations

import threading
from typing import Callable
from urllib.parse import quote

import requests
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpResponse, RequestsTransport
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobBlock, BlobProperties, ContainerClient, ContentSettings

from ..errors import BucketSyncError, TransientError
from ..sas import SasSource
from .list_http import API_VERSION
from ..sync.content_types import content_type_for
from ..sync.blob_metadata import MTIME_KEY, metadata_for
from ..sync.piece_digest import PIECES_KEY
from ..sync.model import BlobExtras, RemoteBlob
from ..sync.mtime import datetime_to_ns, format_mtime, parse_mtime
from .policies import RetryPolicy, SasPolicy, is_dropped_connection
from .errors import connection_error, other_error, short, status_error


class BlobOps:
    def __init__(self, container_url: str, source: SasSource, *, concurrency: int, retry_attempts: int,
                 cancel: threading.Event | None, reads: SasSource | None = None) -> None:
        self.container_url = container_url
        self.source = source
        self.reads = reads or source
        session = requests.Session()
        # The SDK's default pool holds 10 connections: more threads than that churn connections.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(16, concurrency * 2 + 4), max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        transport = RequestsTransport(session=session, session_owner=True, connection_timeout=20, read_timeout=120,
                                      connection_data_block_size=1024 * 1024)
        self.container = ContainerClient.from_container_url(
            container_url,
            credential=None,
            transport=transport,
            retry_policy=RetryPolicy(attempts=retry_attempts, cancel=cancel),
            _additional_pipeline_policies=[SasPolicy(source, reads)],
            # A redirect to another host must never carry the SAS there: storage does not redirect, so
            # a 3xx is an error (our own requests, http.client and the raw pipeline, never follow one).
            permit_redirects=False,
            max_single_put_size=256 * 1024 * 1024,
            max_single_get_size=256 * 1024 * 1024,
            max_chunk_get_size=64 * 1024 * 1024,
        )
        # Requests we build ourselves (ranged reads; listing pages behind a proxy) go through only our SAS
        # and retry policies: the client's pipeline would also parse every XML body (ContentDecodePolicy)
        # and format a log record per request, CPU a download of 2,000 small files pays per request.
        self._raw = Pipeline(transport=transport, policies=[
            RetryPolicy(attempts=retry_attempts, cancel=cancel), SasPolicy(source, reads)])

    def close(self) -> None:
        self.container.close()

    def list_body(self, params: dict[str, str], headers: dict[str, str]) -> bytes:
        """One List Blobs page through the SDK's transport (used when a proxy is configured)."""
        try:
            response = self._raw.run(HttpRequest("GET", self.container_url, params=params, headers=headers),
                                     stream=False).http_response
            if response.status_code != 200:
                raise _response_error(response)
            body: bytes = response.body()
            return body
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "list", params.get("prefix", "")) from None

    # -- reads and writes ---------------------------------------------------------------------
    def get(self, name: str, key: str) -> RemoteBlob | None:
        try:
            props = self.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "read", name) from None
        return remote_blob(key, props)

    # -- writes ------------------------------------------------------------------------------------
    def put(self, name: str, data: bytes, md5: bytes, mtime_ns: int, extras: BlobExtras = BlobExtras()) -> None:
        try:
            self.container.get_blob_client(name).upload_blob(
                data, length=len(data), overwrite=True, metadata=metadata_for(mtime_ns, extras),
                content_settings=content_settings(name, md5, extras), max_concurrency=1,
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

    def commit(self, name: str, block_ids: list[str], md5: bytes, mtime_ns: int,
               extras: BlobExtras = BlobExtras(), *, digest: str | None = None) -> None:
        try:
            self.container.get_blob_client(name).commit_block_list(
                [BlobBlock(block_id=b) for b in block_ids], metadata=metadata_for(mtime_ns, extras, digest),
                content_settings=content_settings(name, md5, extras),
            )
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "write", name) from None

    def set_mtime(self, name: str, mtime_ns: int) -> None:
        """Only the mtime differs: rewrite the metadata, keep the content (and its MD5 and type)."""
        blob = self.container.get_blob_client(name)
        try:
            props = blob.get_blob_properties()
            metadata = dict(props.metadata or {})
            metadata[MTIME_KEY] = format_mtime(mtime_ns)
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
        url = f"{self.container_url}/{quote(name, safe='/~')}"
        got = 0
        try:
            response = self._raw.run(HttpRequest("GET", url, headers=headers), stream=True).http_response
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
        if is_dropped_connection(exc):
            return connection_error(op, name, short(exc))
        if isinstance(exc, HttpResponseError):
            return status_error(op, name, exc.status_code or 0, getattr(exc, "error_code", None) or "",
                                source=self.reads if op in ("list", "read") else self.source,
                                container_url=self.container_url)
        return other_error(op, name, short(exc))


def remote_blob(key: str, item: BlobProperties) -> RemoteBlob:
    metadata = item.metadata or {}
    mtime = parse_mtime(metadata.get("mtime") or metadata.get("Mtime"))
    settings = item.content_settings
    md5 = bytes(settings.content_md5) if settings is not None and settings.content_md5 else None
    return RemoteBlob(
        key=key, name=item.name, size=item.size or 0,
        mtime_ns=mtime if mtime is not None else datetime_to_ns(item.last_modified),
        md5=md5, etag=item.etag, mtime_from_metadata=mtime is not None, pieces=metadata.get(PIECES_KEY),
    )


def content_settings(name: str, md5: bytes, extras: BlobExtras = BlobExtras()) -> ContentSettings:
    return ContentSettings(content_type=extras.content_type or content_type_for(name), content_md5=bytearray(md5))


def _response_error(response: HttpResponse) -> HttpResponseError:
    """What the SDK would raise for an error answer to a request we built ourselves (translate() reads it)."""
    error = HttpResponseError(response=response)
    # translate() reads it, as it does on the storage SDK's own errors (azure-core's class does not declare it)
    error.error_code = response.headers.get("x-ms-error-code")  # type: ignore[attr-defined]
    return error
