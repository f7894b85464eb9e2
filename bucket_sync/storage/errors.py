"""Storage failures as bucket_sync errors, from the facts alone (status, error code, what we were doing).

Shared by both HTTP paths (the SDK's in blob_ops.py, our plain list client in list_http.py), so a 403 on
listing says the same thing whichever path listed: that the SAS lacks the list (l) permission, or expired.
What a 403 means is decided here once: :func:`lacks_permission` (final), :func:`refresh_may_cure` (ask for
a fresh SAS and resend once: policies.py, list_http.py) and :func:`retry_may_cure` (watch outlives it).
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..errors import (AuthError, BucketSyncError, NoCredentialsError, NotFoundError, PermissionDeniedError,
                      SasExpiredError, StorageError, TransientError)
from ..redact import redact
from ..retry import RETRY_STATUSES
from ..sas import ContainerSas, SasSource, describe_missing
from ..timefmt import readable_utc

# Storage's error code for a SAS that is valid but lacks the permission: retrying or refreshing won't help.
PERMISSION_MISMATCH = "AuthorizationPermissionMismatch"

# The SAS permission each operation needs, for a 403 that says which one is missing.
NEEDS = {"list": "l", "read": "r", "write": "w", "delete": "d", "metadata": "w"}


def lacks_permission(status: int, code: str | None) -> bool:
    """Storage says the SAS is valid but does not grant what the request needs: no refresh or retry helps."""
    return status == 403 and code == PERMISSION_MISMATCH


def refresh_may_cure(status: int, code: str | None) -> bool:
    """Any other 403 (expired, revoked, or a SAS renewed elsewhere): a fresh SAS may be accepted."""
    return status == 403 and code != PERMISSION_MISMATCH


def retry_may_cure(exc: BucketSyncError, source: SasSource) -> bool:
    """Whether an authorization failure may pass if the work is tried again later: not when the SAS lacks
    the permission, there are no credentials, or the SAS cannot be renewed (a SAS URL given directly)."""
    if isinstance(exc, (PermissionDeniedError, NoCredentialsError)):
        return False
    return getattr(source, "renewable", True)  # SasSource's default; a duck-typed source is taken as one


def where(op: str, name: str) -> str:
    return f"{op} {name!r}" if name else op


def status_error(op: str, name: str, status: int, code: str, *, source: SasSource,
                 container_url: str) -> BucketSyncError:
    at = where(op, name)
    if status == 403:
        return _forbidden(op, at, code, source)
    if status == 404:
        if code == "ContainerNotFound":
            return NotFoundError(f"the container {container_url} does not exist",
                                 hint="check the URL or the iTwin / reality data id")
        return StorageError(f"{at}: not found ({code or 404})")
    if status == 412:
        return TransientError(f"{at}: the blob changed while it was being read; it will be retried")
    if status in RETRY_STATUSES:
        return TransientError(f"{at}: storage answered {status} {code} after retries")
    return StorageError(f"{at}: storage answered {status} {code}".rstrip())


def connection_error(op: str, name: str, detail: str) -> TransientError:
    return TransientError(f"{where(op, name)}: connection to storage failed ({redact(detail)})",
                          hint="check the network; the next run picks up where this one stopped")


def other_error(op: str, name: str, detail: str) -> StorageError:
    return StorageError(f"{where(op, name)}: {redact(detail)}")


def short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def _forbidden(op: str, at: str, code: str, source: SasSource) -> AuthError:
    try:
        sas: ContainerSas | None = source.current()
    except SasExpiredError as exc:
        return exc
    needed = NEEDS.get(op, "")
    if lacks_permission(403, code) or (sas and needed and sas.lacks(needed)):
        lacking = (sas.lacks(needed) if sas else "") or needed
        return PermissionDeniedError(
            f"{at}: the SAS does not grant the {describe_missing(lacking)} permission",
            hint="`bucket-sync check REMOTE` shows what this SAS allows and which commands work with it",
            permission=lacking[:1] or None,
        )
    if sas and sas.expires_at and sas.expires_at <= datetime.now(timezone.utc):
        return SasExpiredError(f"{at}: the SAS expired at {readable_utc(sas.expires_at)}",
                               hint="get a new SAS URL")
    return AuthError(f"{at}: storage refused the SAS (403 {code})".rstrip(),
                     hint="the SAS is invalid, expired or revoked; get a new one")
