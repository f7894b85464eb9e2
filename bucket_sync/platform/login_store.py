"""The saved `auth login` session: in the OS keychain where one exists (Windows Credential Manager, macOS
Keychain, the Secret Service on Linux desktops, through ``keyring``), else a file of mode 0600 in the
user's state directory (headless Linux, containers); and the token source that renews access tokens from it.

``BUCKET_SYNC_LOGIN_STORE`` chooses: ``auto`` (the default: the keychain when keyring finds a usable
backend), ``keyring`` or ``file``. A keychain that fails to read or save is an AuthError (exit 3) that
says so and how to use the file instead: a sign-in is never dropped silently.

The file holds the refresh token (and the last access token, so that runs started close together do not
each spend a refresh). IMS rotates refresh tokens (IdentityServer's one-time-only default): a used one is
dead. Two bucket-sync processes renewing at once would otherwise race, one of them losing its sign-in, so
renewal happens under an exclusive lock on a sibling lock file and re-reads the file first: whoever comes
second finds the fresh token the first one saved.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ensure_private_dir, user_state_dir
from ..errors import AuthError, BucketSyncError, NoCredentialsError, UsageError
from ..private_files import private_lock, write_private
from ..redact import register_secret
from .credentials import RenewingTokenProvider, TokenProvider, identity_digest
from .ims import TokenGrant, request_token

if TYPE_CHECKING:  # http imports httpx: only a token request needs it (see credentials.py)
    from keyring.backend import KeyringBackend

    from .http import ApiTransport

log = logging.getLogger(__name__)

LOGIN_FILE_NAME = "login.json"
STORE_ENV = "BUCKET_SYNC_LOGIN_STORE"
KEYRING_SERVICE = "bucket-sync"
KEYRING_USER = "auth-login"
_FORMAT_VERSION = 1
# A saved access token is reused by a new run only while at least this share of its life is left, so
# the run does not start with a token about to expire.
_REUSE_FRACTION = 0.5
RELOGIN_HINT = "run `bucket-sync auth login` again"


def login_path() -> Path:
    return user_state_dir() / LOGIN_FILE_NAME


@dataclass(frozen=True)
class SavedLogin:
    """What `auth login` keeps. Times are epoch seconds; ``account`` is the email (or subject) it showed."""

    client_id: str
    ims_url: str
    refresh_token: str
    scope: str
    account: str | None = None
    access_token: str | None = None
    access_expires: float = 0.0
    access_lifetime: float = 0.0
    saved_at: float = 0.0

    def with_grant(self, grant: TokenGrant, *, now: float) -> "SavedLogin":
        lifetime = grant.expires_in if grant.expires_in and grant.expires_in > 0 else 3600.0
        return replace(self, refresh_token=grant.refresh_token or self.refresh_token, access_token=grant.access_token,
                       access_expires=now + lifetime, access_lifetime=lifetime, saved_at=now)

    def reusable_access(self, now: float) -> TokenGrant | None:
        """The saved access token, if enough of its life is left to start a run with."""
        if not self.access_token or self.access_lifetime <= 0:
            return None
        left = self.access_expires - now
        if left < self.access_lifetime * _REUSE_FRACTION:
            return None
        return TokenGrant(self.access_token, left, None, self.scope)


def _keyring() -> KeyringBackend | None:
    """keyring's backend when it is usable here, else None (imported only when a sign-in is read or saved)."""
    choice = (os.environ.get(STORE_ENV) or "auto").strip().lower()
    if choice not in ("auto", "keyring", "file"):
        raise UsageError(f"{STORE_ENV}={choice!r} is not understood", hint="use auto, keyring or file")
    if choice == "file":
        return None
    try:
        import keyring

        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - a broken keyring installation: say so when it was asked for
        if choice == "keyring":
            raise AuthError(f"the OS keychain is not usable: {type(exc).__name__}: {exc}",
                            hint=f"set {STORE_ENV}=file to keep the sign-in in a private file") from None
        return None
    if getattr(backend, "priority", 0) <= 0:  # keyring's "fail" and "null" backends: no keychain here
        if choice == "keyring":
            raise AuthError(f"no OS keychain was found ({type(backend).__name__})",
                            hint=f"set {STORE_ENV}=file (or unset it) to keep the sign-in in a private file")
        return None
    return backend


def describe_store(path: Path | None = None) -> str:
    """Where a new sign-in is kept (for `auth status` and `auth login`)."""
    backend = _keyring()
    if backend is not None:
        return f"OS keychain ({type(backend).__module__}.{type(backend).__name__}, service {KEYRING_SERVICE!r})"
    return f"file {path or login_path()} (mode 0600)"


def save_login(login: SavedLogin, path: Path | None = None) -> Path:
    """Keep ``login``: in the keychain when there is one (the file, if any, is then removed), else in the
    file. AuthError when the keychain refuses it."""
    path = path or login_path()
    data = json.dumps({"version": _FORMAT_VERSION, **asdict(login)}, indent=1)
    backend = _keyring()
    if backend is not None:
        try:
            backend.set_password(KEYRING_SERVICE, KEYRING_USER, data)
        except Exception as exc:  # noqa: BLE001 - any keychain backend error becomes an AuthError
            raise AuthError(f"could not save the sign-in in the OS keychain: {type(exc).__name__}: {exc}",
                            hint=f"unlock the keychain and sign in again, or set {STORE_ENV}=file") from None
        _remove_file(path)  # one copy only, the protected one
        return path
    return _save_file(data.encode(), path)


def _save_file(data: bytes, path: Path) -> Path:
    """Write atomically (temp file + rename) with mode 0600, in a directory of mode 0700."""
    ensure_private_dir(path.parent)
    write_private(path, data, prefix=".login-", durable=True)
    return path


def read_login(path: Path | None = None) -> SavedLogin | None:
    """The saved login (the keychain's first, then the file's), None when there is none; AuthError (exit 3)
    when it is unusable."""
    path = path or login_path()
    backend = _keyring()
    if backend is not None:
        try:
            stored = backend.get_password(KEYRING_SERVICE, KEYRING_USER)
        except Exception as exc:  # noqa: BLE001 - any keychain backend error becomes an AuthError
            raise AuthError(f"cannot read the saved sign-in from the OS keychain: {type(exc).__name__}: {exc}",
                            hint=f"unlock the keychain, or set {STORE_ENV}=file and sign in again") from None
        if stored is not None:
            return _parse_login(stored.encode(), "the OS keychain")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthError(f"cannot read the saved sign-in {path}: {exc.strerror}", hint=RELOGIN_HINT) from None
    login = _parse_login(raw, str(path))
    _warn_if_exposed(path)
    return login


def _parse_login(raw: bytes, where: str) -> SavedLogin:
    try:
        data = json.loads(raw)
        fields = {k: data[k] for k in SavedLogin.__dataclass_fields__ if k in data}
        login = SavedLogin(**fields)
        if not (isinstance(login.refresh_token, str) and login.refresh_token and isinstance(login.client_id, str)):
            raise ValueError("no refresh token")
    except (ValueError, TypeError, KeyError):
        raise AuthError(
            f"the saved sign-in in {where} is damaged",
            hint="run `bucket-sync auth logout`, then `bucket-sync auth login`",
        ) from None
    register_secret(login.refresh_token)
    register_secret(login.access_token)
    return login


def delete_login(path: Path | None = None) -> bool:
    """Forget the saved login, in the keychain and in the file; False when there was none."""
    removed = _remove_file(path or login_path())
    try:
        backend = _keyring()
    except BucketSyncError:
        backend = None  # no keychain to clear: the file is all there was
    if backend is not None:
        try:
            if backend.get_password(KEYRING_SERVICE, KEYRING_USER) is not None:
                backend.delete_password(KEYRING_SERVICE, KEYRING_USER)
                removed = True
        except Exception as exc:  # noqa: BLE001 - any keychain backend error becomes an AuthError
            raise AuthError(f"could not remove the sign-in from the OS keychain: {type(exc).__name__}: {exc}",
                            hint="remove the 'bucket-sync' entry with the keychain's own tool") from None
    return removed


def _remove_file(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (filelock: flock on Unix, LockFileEx on Windows, both
    released by the operating system if this process dies)."""
    ensure_private_dir(path.parent)
    with private_lock(path.with_name(path.name + ".lock")):
        yield


def _warn_if_exposed(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if os.name == "posix" and mode & 0o077:
        log.warning("the saved sign-in %s is readable by other users (mode %o): run `chmod 600 %s`", path, mode, path)


class CachedLogin(RenewingTokenProvider):
    """Access tokens from the saved sign-in: the saved one while fresh, else a refresh token grant.

    Rotated refresh tokens are saved at once. A token the API refused (``invalidate``) is never reused
    from the file, even if another process saved it.
    """

    def __init__(
        self,
        login: SavedLogin,
        *,
        path: Path | None = None,
        transport: ApiTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self._login = login
        self._path = path or login_path()
        self._transport = transport  # made on first use
        self._refused: set[str] = set()

    @property
    def account(self) -> str | None:
        return self._login.account

    @property
    def path(self) -> Path:
        return self._path

    def describe(self) -> str:
        who = f" as {self._login.account}" if self._login.account else ""
        return f"saved sign-in from `bucket-sync auth login`{who} ({describe_store(self._path)})"

    def cache_identity(self) -> str | None:
        # Who signed in, through which app and IMS; without a known account, two people signing in on the
        # same machine could not be told apart, so nothing is cached.
        if not self._login.account:
            return None
        return identity_digest("saved-login", self._login.ims_url, self._login.client_id, self._login.account)

    def invalidate(self, token: str) -> None:
        self._refused.add(token)
        super().invalidate(token)

    def _grant(self) -> TokenGrant:
        with _locked(self._path):
            login = read_login(self._path)
            if login is None:
                raise NoCredentialsError("the saved sign-in was removed (`bucket-sync auth logout`?)", hint=RELOGIN_HINT)
            now = self._clock()
            reuse = login.reusable_access(now)
            if reuse is not None and reuse.access_token not in self._refused:
                self._login = login
                return reuse
            if self._transport is None:
                from .http import ApiTransport

                self._transport = ApiTransport()
            grant = request_token(
                self._transport,
                login.ims_url,
                {"grant_type": "refresh_token", "refresh_token": login.refresh_token, "client_id": login.client_id},
                what="renew the access token of the saved sign-in",
                # A resent refresh grant would present an already rotated (dead) token.
                idempotent=False,
            )
            self._login = login.with_grant(grant, now=now)
            save_login(self._login, self._path)
            log.debug("renewed the access token of the saved sign-in")
            return grant


def load_cached_login() -> TokenProvider | None:
    """The `auth login` session as a token source, or None when nobody signed in (no network call)."""
    path = login_path()
    login = read_login(path)
    return None if login is None else CachedLogin(login, path=path)

