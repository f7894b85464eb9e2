"""The Python API: what the CLI does, for the engineers who automate.

    import bucket_sync

    summary = bucket_sync.upload(["./flight-042"], "itwin://<iTwinId>/raw/flight-042",
                                 on_event=print, credentials=lambda: my_token_source())
    if summary.exit_code:
        ...

Each function takes the same REMOTE forms as the CLI (itwin://, reality-data://, a SAS URL, a named remote
from the config file) and returns the run's :class:`~bucket_sync.sync.listener.Summary` (``uploaded``,
``downloaded``, ``deleted``, ``skipped``, ``failed``, ``bytes``, ``seconds``, ``exit_code``): a run in which
some files failed returns, with ``exit_code`` 1. What stops a run raises the classes of
:mod:`bucket_sync.errors` (a bad REMOTE raises UsageError, missing credentials NoCredentialsError, a SAS
lacking a permission PermissionDeniedError, a guard's refusal SafetyGuardError...), each with its
``exit_code``.

``credentials``: None for the CLI's sources (ITWIN_ACCESS_TOKEN, ITWIN_CLIENT_ID/SECRET, the saved
`auth login`), a callable returning an access token (as Bentley's SDK takes one; called whenever a token is
needed, so it may renew its own), or a :class:`~bucket_sync.platform.credentials.TokenProvider`.
``on_event``: receives every transfer event as the dict ``--json`` prints (``event``, ``op``, ``key``,
``bytes``, ``status``, ``reason``, ``error``, ``time``). No secret ever reaches it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .app.context import DEFAULT_API_URL, DEFAULT_IMS_URL, Globals
from .app.check import CheckReport, check_remote, check_sources
from .app.lock import pair_lock
from .app.render import result_event, with_time
from .app.sync_run import SyncRequest, parse_max_delete, run_sync
from .config import Config
from .errors import UsageError
from .sync.settings import TransferSettings
from .sync.listener import Listener, Summary
from .sync.filters import PathFilter
from .sync.model import Direction, TransferResult
from .targets import looks_remote, parse_remote

if TYPE_CHECKING:
    from .platform.credentials import TokenProvider

__all__ = ["upload", "download", "mirror", "watch", "check", "Summary", "CheckReport", "Credentials"]

# What ``credentials=`` accepts (see the module docstring).
Credentials = Callable[[], str] | Any | None
EventCallback = Callable[[dict[str, Any]], None]


def _token_provider(fetch: Callable[[], str]) -> TokenProvider:
    """A callable that returns an access token, as a TokenProvider (the platform is imported only here)."""
    from .platform.credentials import TokenProvider
    from .redact import register_secret

    class CallableToken(TokenProvider):
        def token(self) -> str:
            value = fetch()
            if not isinstance(value, str) or not value.strip():
                raise UsageError("credentials() returned no access token", hint="return the bearer token as a str")
            register_secret(value)
            return value.strip()

        def describe(self) -> str:
            return "an access token from the caller's credentials()"

        def cache_identity(self) -> str | None:
            return None  # an unknown principal: no cached SAS is ever shared with it

    return CallableToken()


@dataclasses.dataclass(frozen=True)
class _Globals(Globals):
    """The CLI's environment, with the caller's token source when one is given."""

    provider: Any = None

    def credentials(self) -> TokenProvider:
        return self.provider if self.provider is not None else super().credentials()


def _globals(credentials: Credentials, api_url: str, ims_url: str) -> Globals:
    provider = None
    if credentials is not None:
        from .platform.credentials import TokenProvider

        provider = credentials if isinstance(credentials, TokenProvider) else _token_provider(credentials)
    from .platform.login_store import load_cached_login

    return _Globals(api_url=api_url, ims_url=ims_url, config=Config(path=None), env=dict(os.environ),
                    cached_login_loader=load_cached_login, provider=provider)


class _Events(Listener):
    """Hands each transfer event to the caller's callback, as --json would print it."""

    def __init__(self, callback: EventCallback | None, *, unchanged: bool) -> None:
        self.callback = callback
        self.wants_unchanged = unchanged and callback is not None

    def on_result(self, result: TransferResult) -> None:
        if self.callback is not None:
            self.callback(with_time(result_event(result)))

    def on_info(self, message: str) -> None:
        if self.callback is not None:
            self.callback(with_time({"event": "notice", "message": message}))


def _settings(concurrency: int, dry_run: bool, bwlimit: int | None) -> TransferSettings:
    if not 1 <= concurrency <= 256:
        raise UsageError(f"concurrency {concurrency} is out of range", hint="between 1 and 256")
    return TransferSettings(concurrency=concurrency, dry_run=dry_run, bwlimit=bwlimit)


def _filter(include: Iterable[str], exclude: Iterable[str]) -> PathFilter:
    return PathFilter.from_options(include=tuple(include), exclude=tuple(exclude))


def upload(sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], remote: str, *, credentials: Credentials = None,
           on_event: EventCallback | None = None, unchanged_events: bool = False, dry_run: bool = False,
           concurrency: int = 16, include: Iterable[str] = (), exclude: Iterable[str] = (), checksum: bool = False,
           overwrite: bool = False, follow_symlinks: bool = False, bwlimit: int | None = None, itwin: str | None = None,
           api_url: str = DEFAULT_API_URL, ims_url: str = DEFAULT_IMS_URL, stop: threading.Event | None = None) -> Summary:
    """Upload files and folders to ``remote`` (``bucket-sync upload``). ``stop``: set it to end the run
    early (transfers in flight stop at their next block)."""
    local = tuple(os.fspath(p) for p in ([sources] if isinstance(sources, (str, os.PathLike)) else sources))
    if not local:
        raise UsageError("upload needs at least one local file or folder")
    target = parse_remote(remote, itwin_id=itwin)
    g = _globals(credentials, api_url, ims_url)
    req = SyncRequest(command="upload", direction=Direction.UP, local=local, prefix=target.prefix,
                      settings=_settings(concurrency, dry_run, bwlimit), filters=_filter(include, exclude),
                      checksum=checksum, overwrite=overwrite, follow_symlinks=follow_symlinks)
    return run_sync(req, lambda: g.container(target, write=True), _Events(on_event, unchanged=unchanged_events), stop=stop)


def download(remote: str, dest: str | os.PathLike[str], *, files_from: Iterable[str] | None = None,
             credentials: Credentials = None, on_event: EventCallback | None = None, unchanged_events: bool = False,
             dry_run: bool = False, concurrency: int = 16, include: Iterable[str] = (), exclude: Iterable[str] = (),
             checksum: bool = False, overwrite: bool = False, bwlimit: int | None = None, itwin: str | None = None,
             api_url: str = DEFAULT_API_URL, ims_url: str = DEFAULT_IMS_URL, stop: threading.Event | None = None) -> Summary:
    """Download ``remote`` into ``dest`` (``bucket-sync download``): a blob by name, the names in
    ``files_from`` (relative to ``remote``), or every blob under a folder."""
    target = parse_remote(remote, itwin_id=itwin)
    g = _globals(credentials, api_url, ims_url)
    names = None if files_from is None else tuple(n.strip().strip("/") for n in files_from if n.strip())
    req = SyncRequest(command="download", direction=Direction.DOWN, local=(os.fspath(dest),), prefix=target.prefix,
                      settings=_settings(concurrency, dry_run, bwlimit), filters=_filter(include, exclude),
                      checksum=checksum, overwrite=overwrite, files_from=names)
    return run_sync(req, lambda: g.container(target, write=False), _Events(on_event, unchanged=unchanged_events), stop=stop)


def mirror(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, delete: bool = True, max_delete: str | int = "50%",
           force: bool = False, wait_lock: float = 0.0, credentials: Credentials = None,
           on_event: EventCallback | None = None, unchanged_events: bool = False, dry_run: bool = False,
           concurrency: int = 16, include: Iterable[str] = (), exclude: Iterable[str] = (), checksum: bool = False,
           follow_symlinks: bool = False, bwlimit: int | None = None, itwin: str | None = None,
           api_url: str = DEFAULT_API_URL, ims_url: str = DEFAULT_IMS_URL, stop: threading.Event | None = None) -> Summary:
    """Make ``dst`` identical to ``src`` (``bucket-sync mirror``); exactly one is a REMOTE. Holds the pair's
    lock (LockHeldError when another run has it); the guards raise SafetyGuardError unless ``force``."""
    src, dst = os.fspath(src), os.fspath(dst)
    if looks_remote(src) == looks_remote(dst):
        raise UsageError("mirror needs exactly one REMOTE side", hint="mirror(LOCAL_DIR, REMOTE) or mirror(REMOTE, LOCAL_DIR)")
    direction = Direction.UP if looks_remote(dst) else Direction.DOWN
    local_dir, remote_text = (src, dst) if direction is Direction.UP else (dst, src)
    target = parse_remote(remote_text, itwin_id=itwin)
    parse_max_delete(max_delete)
    g = _globals(credentials, api_url, ims_url)
    req = SyncRequest(command="mirror", direction=direction, local=(local_dir,), prefix=target.prefix,
                      settings=_settings(concurrency, dry_run, bwlimit), filters=_filter(include, exclude),
                      checksum=checksum, follow_symlinks=follow_symlinks, mirror=True, delete=delete,
                      max_delete=str(max_delete), force=force)
    with pair_lock(local_dir, target.describe(), wait_s=wait_lock, command="mirror (Python API)"):
        return run_sync(req, lambda: g.container(target, write=direction is Direction.UP),
                        _Events(on_event, unchanged=unchanged_events), stop=stop)


def watch(local_dir: str | os.PathLike[str], remote: str, *, stop: threading.Event, delete: bool = False,
          debounce: float = 1.0, rescan: float = 600.0, polling: bool = False, credentials: Credentials = None,
          on_event: EventCallback | None = None, on_status: EventCallback | None = None, concurrency: int = 16,
          include: Iterable[str] = (), exclude: Iterable[str] = (), checksum: bool = False,
          follow_symlinks: bool = False, itwin: str | None = None, api_url: str = DEFAULT_API_URL,
          ims_url: str = DEFAULT_IMS_URL) -> Summary:
    """Reconcile ``local_dir`` to ``remote``, then keep it up to date (``bucket-sync watch``) until ``stop``
    is set. Meant to run in a thread of its own; installs no signal handler."""
    from .app.watch import WatchRequest, Watcher

    local = os.fspath(local_dir)
    if not os.path.isdir(local):
        raise UsageError(f"{local} is not a folder", hint="watch needs an existing folder to follow")
    target = parse_remote(remote, itwin_id=itwin)
    g = _globals(credentials, api_url, ims_url)
    req = WatchRequest(local_dir=local, prefix=target.prefix, settings=_settings(concurrency, False, None),
                       filters=_filter(include, exclude), checksum=checksum, follow_symlinks=follow_symlinks,
                       delete=delete, debounce_s=debounce, rescan_s=rescan, polling=polling)
    with pair_lock(local, target.describe(), command="watch (Python API)"):
        watcher = Watcher(req, g.container(target, write=True), _Events(on_event, unchanged=False),
                          status=lambda s: on_status(with_time(s)) if on_status else None)
        def relay_stop() -> None:
            stop.wait()
            watcher.stop()

        relay = threading.Thread(target=relay_stop, name="watch-stop", daemon=True)
        relay.start()
        return watcher.run()


def check(remote: str, *, credentials: Credentials = None, itwin: str | None = None, api_url: str = DEFAULT_API_URL,
          ims_url: str = DEFAULT_IMS_URL) -> CheckReport:
    """What ``remote``'s SAS allows and which commands work with it (``bucket-sync check``);
    ``report.as_event()`` is the dict ``--json`` prints."""
    target = parse_remote(remote, itwin_id=itwin)
    return check_remote(target, check_sources(_globals(credentials, api_url, ims_url), target))
