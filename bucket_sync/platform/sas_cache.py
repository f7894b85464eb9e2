"""The per-user cache of SAS container URLs the API handed out, so that a run started minutes after the
last one (cron) needs no IMS token and no API call while the SAS it got then is still fresh.

One small JSON file per key, ``<user state dir>/sas-cache/<sha256>.json``, in a folder of mode 0700, each
file mode 0600 (it holds a SAS signature). The file name is a SHA-256 over the API base URL, the target
(iTwin bucket, or reality data + iTwin + read/write access) and the credential's identity digest
(``TokenProvider.cache_identity()``): a SAS minted for one principal is never found by another, and no
token or secret is part of any name. Each entry is written whole, to a temp file renamed into place, so
two runs writing at once leave one complete entry (either SAS is valid); no lock is needed. A damaged,
unreadable or foreign entry is ignored and overwritten by the next fetch: the cache may only save time,
never fail a run.

When a cached SAS is fresh is the resolver's business (the same rule as for refreshing a SAS in a run);
this module only stores and finds them. Nothing here imports httpx.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import user_state_dir
from ..private_files import write_private
from ..sas import ContainerSas

log = logging.getLogger(__name__)

CACHE_DIR_NAME = "sas-cache"
_FORMAT_VERSION = 1
# Entries untouched this long are removed when another is written: API SAS live about an hour, so
# these are long dead (one still alive would merely be fetched again).
_PRUNE_AFTER_S = 24 * 3600.0
# An entry claiming to be fetched later than now (beyond ordinary clock adjustments) is not trusted.
_FUTURE_TOLERANCE_S = 60.0
_SUFFIX = ".json"


def cache_dir() -> Path:
    return user_state_dir() / CACHE_DIR_NAME


@dataclass(frozen=True)
class CachedSas:
    """A SAS as fetched from the API: the container URL and when it arrived (epoch seconds), so that its
    lifetime, and with it the refresh margin, is the original one."""

    sas: ContainerSas
    fetched_at: float


class SasCacheSlot:
    """The cache entry of one (API, target, principal): load what an earlier run stored, store a new SAS."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock

    def load(self) -> CachedSas | None:
        """The stored SAS, or None when there is none or it cannot be used (damaged, foreign, future)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.debug("cannot read the SAS cache entry %s (%s): fetching a new SAS", self.path, exc.strerror)
            return None
        try:
            data = json.loads(raw)
            if data.get("version") != _FORMAT_VERSION:
                raise ValueError("another format version")
            url, fetched_at = data["url"], data["fetched_at"]
            if not isinstance(url, str) or isinstance(fetched_at, bool) or not isinstance(fetched_at, (int, float)):
                raise ValueError("wrong field types")
            sas = ContainerSas.from_url(url)  # also registers the signature for redaction
        except Exception:  # noqa: BLE001 - whatever is wrong with the file, the remedy is a fresh fetch
            log.debug("ignoring the damaged SAS cache entry %s", self.path)
            return None
        if fetched_at > self._clock() + _FUTURE_TOLERANCE_S:
            log.debug("ignoring the SAS cache entry %s: fetched in the future (clock changed?)", self.path)
            return None
        return CachedSas(sas, float(fetched_at))

    def store(self, url: str, *, fetched_at: float) -> None:
        """Write the entry (atomically, mode 0600). Failure only costs the next run a fetch: logged, not raised."""
        try:
            _private_dir(self.path.parent)
            data = json.dumps({"version": _FORMAT_VERSION, "url": url, "fetched_at": fetched_at}).encode()
            write_private(self.path, data, prefix=".sas-")
        except OSError as exc:
            log.debug("could not save the SAS in the cache %s (%s): the next run fetches its own", self.path,
                      exc.strerror)
            return
        _prune(self.path.parent, keep=self.path, now=self._clock())

    def forget(self) -> None:
        _unlink(self.path)


class SasCache:
    """The cache as seen by one principal at one API: ``slot(target_key)`` for each target."""

    def __init__(self, api_url: str, identity: str, *, directory: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.api_url = api_url
        self.identity = identity
        self.directory = directory or cache_dir()
        self._clock = clock

    def slot(self, target_key: str) -> SasCacheSlot:
        return SasCacheSlot(self.directory / entry_name(self.api_url, target_key, self.identity), clock=self._clock)


def entry_name(api_url: str, target_key: str, identity: str) -> str:
    """The entry's file name: a SHA-256 over the key's parts (as a JSON list, so none can run into another)."""
    material = json.dumps([_FORMAT_VERSION, api_url.rstrip("/"), target_key, identity])
    return hashlib.sha256(material.encode()).hexdigest() + _SUFFIX


def clear_cache(directory: Path | None = None) -> int:
    """Delete every entry (``auth logout``); the number of entries removed. Missing folder: 0."""
    directory = directory or cache_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if name.endswith(_SUFFIX) or name.endswith(".tmp"):
            removed += _unlink(directory / name) and name.endswith(_SUFFIX)
    try:
        directory.rmdir()
    except OSError:
        pass  # something else is in it, or another run just wrote an entry: harmless
    return removed


def _private_dir(directory: Path) -> Path:
    """Create the folder (and the state folder above it) private to the user, whoever creates it first."""
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.mkdir(exist_ok=True, mode=0o700)
    if os.name == "posix" and directory.stat().st_mode & 0o077:
        os.chmod(directory, 0o700)  # made by an older version or by hand: the entries hold signatures
    return directory


def _prune(directory: Path, *, keep: Path, now: float) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.path == str(keep) or not (entry.name.endswith(_SUFFIX) or entry.name.endswith(".tmp")):
            continue
        try:
            if now - entry.stat().st_mtime > _PRUNE_AFTER_S:
                os.unlink(entry.path)
        except OSError:
            pass  # removed by another run meanwhile


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:
        return False
    return True
