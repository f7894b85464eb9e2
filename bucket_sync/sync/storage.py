"""One container, reached through a refreshing SAS: the only module that touches azure-storage-blob.

Azure and transport exceptions are translated into bucket_sync errors here, with the operation that
failed, so a 403 on listing can say that the SAS lacks the list (l) permission.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from datetime import datetime, timezone
from typing import Iterator

import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import RequestsTransport
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
from .keys import key_from_blob_name
from .model import RemoteBlob
from .mtime import datetime_to_ns, format_mtime, parse_mtime
from .policies import RETRY_STATUSES, RetryPolicy, SasPolicy, is_dropped_connection

log = logging.getLogger(__name__)

# The SAS permission each operation needs, for a 403 that says which one is missing.
NEEDS = {"list": "l", "read": "r", "write": "w", "delete": "d", "metadata": "w"}


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

    def close(self) -> None:
        self.container.close()

    # -- listing ---------------------------------------------------------------------------------
    def list(self, prefix: str) -> list[RemoteBlob]:
        """Every blob under ``prefix``, sorted by key (the diff needs one order on both sides)."""
        starts = f"{prefix}/" if prefix else None
        out: list[RemoteBlob] = []
        try:
            for item in self.container.list_blobs(name_starts_with=starts, include=["metadata"], results_per_page=5000):
                key = key_from_blob_name(prefix, item.name)
                if not key or item.name.endswith("/"):
                    continue  # folder markers written by other tools carry no data
                out.append(remote_blob(key, item))
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "list", prefix or "/") from None
        out.sort(key=lambda b: b.key)
        return out

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
    def read_range(self, name: str, offset: int, length: int, etag: str | None) -> bytes:
        """Bytes [offset, offset+length) of the blob as it was at ``etag`` (a changed blob fails, not mixes)."""
        kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            stream = self.container.get_blob_client(name).download_blob(offset=offset, length=length, max_concurrency=1, **kwargs)
            data = stream.readall()
        except (AzureError, BucketSyncError) as exc:
            raise self.translate(exc, "read", name) from None
        if len(data) != length:
            raise TransientError(f"{name}: short read ({len(data)} of {length} bytes)")
        return data

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


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
