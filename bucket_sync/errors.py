"""The one exception tree of bucket-sync.

Every error knows the exit code it maps to (README.md, "Exit codes") and whether retrying the same
operation could succeed. Foreign exceptions (azure, httpx, OSError) are translated into these where they
enter the program, so the CLI needs only one ``except BucketSyncError``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    LOCKED = 5
    GUARD = 6
    INTERRUPTED = 130  # Ctrl+C (SIGINT), outside watch: the summary is still printed


class BucketSyncError(Exception):
    """Root of every error bucket-sync raises on purpose.

    ``message`` says what went wrong; ``hint`` says what the user can do about it. Neither may contain a
    secret: callers pass text through :func:`bucket_sync.redact.redact` when it came from outside.
    """

    exit_code: ExitCode = ExitCode.FAILED
    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(BucketSyncError):
    """Bad arguments, config, URL or id: nothing was attempted."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The config file is unreadable, not TOML, or holds an unknown or ill-typed key."""


class AuthError(BucketSyncError):
    """Authentication or permission: no credentials, 401/403, expired SAS, missing SAS permission."""

    exit_code = ExitCode.AUTH


class NoCredentialsError(AuthError):
    pass


class SasExpiredError(AuthError):
    pass


class PermissionDeniedError(AuthError):
    """The SAS lacks a permission. ``permission`` is its letter (``l``, ``r``, ``w``, ``d``) when known:
    storage said so (403 AuthorizationPermissionMismatch), or ``sp=`` did."""

    def __init__(self, message: str, *, hint: str | None = None, permission: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.permission = permission


class NotFoundError(BucketSyncError):
    """404 iTwin or reality data, missing container, unsupported data center."""

    exit_code = ExitCode.NOT_FOUND


class ApiError(BucketSyncError):
    """An error answer from the iTwin Platform API or IMS, with what the service said.

    ``status`` is the HTTP status; ``code``, ``target`` and ``details`` come from the documented error body
    when it was there (clients must not assume it is). ``retried_after`` holds the statuses of earlier
    attempts of the same request that were answered and retried (e.g. ``(503,)``): an answer to a retried
    PATCH may describe what the first attempt already did.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        target: str | None = None,
        details: tuple[tuple[str | None, str | None, str | None], ...] = (),
        exit_code: ExitCode = ExitCode.FAILED,
        retryable: bool = False,
        hint: str | None = None,
        retried_after: tuple[int, ...] = (),
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.target = target
        self.details = details  # (code, message, target) triples
        self.exit_code = exit_code
        self.retryable = retryable
        self.retried_after = retried_after


class TransientError(BucketSyncError):
    """Worth retrying: throttling, 5xx, dropped connection, timeout."""

    retryable = True


class StorageError(BucketSyncError):
    """Azure Storage refused an operation for a reason retrying will not fix."""


class LocalFileError(BucketSyncError):
    """A local file could not be read or written, or changed while it was being read."""


class UnsafeBlobNameError(BucketSyncError):
    """A blob name that would be written outside the destination, or cannot be a local path."""


class LockHeldError(BucketSyncError):
    exit_code = ExitCode.LOCKED


class SafetyGuardError(BucketSyncError):
    exit_code = ExitCode.GUARD
