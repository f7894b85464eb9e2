"""SAS container URLs: split into the container address and the token, read expiry and permissions.

The core only ever handles a :class:`ContainerSas`, asked of a :class:`SasSource`. A SAS URL given on the
command line is a :class:`StaticSasSource`, used as is; one from the iTwin bucket API or a reality data
access call is platform/resolver.py's business.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .errors import SasExpiredError, UsageError
from .redact import REDACTED, redact, register_secret
from .timefmt import readable_utc

_PERMISSION_NAMES = {
    "r": "read (r)",
    "a": "add (a)",
    "c": "create (c)",
    "w": "write (w)",
    "d": "delete (d)",
    "l": "list (l)",
}


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# The form Azure, the SDKs and the iTwin API write se= in, read without strptime: its first use imports
# _strptime and compiles the locale's patterns, ~2 ms of every start-up with a SAS URL. Anything else,
# or a date this reads as impossible, goes through strptime as before.
_SAS_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


def parse_sas_time(value: str) -> datetime | None:
    """Parse ``se=``/``st=`` values: ISO 8601 UTC with or without seconds, or a bare date."""
    value = value.strip()
    common = _SAS_TIME.fullmatch(value)
    if common:
        try:
            year, month, day, hour, minute, second = map(int, common.groups())
            return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
        except ValueError:
            pass
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def permission_name(letter: str) -> str:
    return _PERMISSION_NAMES.get(letter, letter)


@dataclass(frozen=True)
class ContainerSas:
    """A container address plus the SAS token that grants access to it.

    ``container_url`` has no query string; ``token`` is the query string without ``?``.
    """

    container_url: str
    token: str
    expires_at: datetime | None
    permissions: str

    @classmethod
    def from_url(cls, url: str) -> "ContainerSas":
        """Split a SAS container URL. Raises UsageError (never echoing the signature) when malformed."""
        shown = redact(url)
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - a port out of range raises here, not later
        except ValueError as exc:
            raise UsageError(f"not a container URL: {shown} ({exc})", hint="give https://<account>.blob.core.windows.net/<container>?<sas>") from None
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise UsageError(f"not a container URL: {shown}", hint="give https://<account>.blob.core.windows.net/<container>?<sas>")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise UsageError(
                f"refusing plain http:// to a non-loopback host: {shown}",
                hint="use https://; http:// is accepted only for 127.0.0.1/localhost (the Azurite emulator)",
            )
        if not parts.query:
            raise UsageError(f"the URL carries no SAS token: {shown}", hint="append the container SAS query string (?sv=...&sp=...&sig=...)")
        query = parse_qs(parts.query, keep_blank_values=True)
        if "sig" not in query:
            raise UsageError(f"the URL's query has no SAS signature (no sig parameter): {shown}", hint="copy the whole SAS URL, including &sig=...")
        register_secret(query["sig"][0])
        expires = None
        if "se" in query:
            expires = parse_sas_time(query["se"][0])
            if expires is None:
                raise UsageError(f"cannot read the SAS expiry se={query['se'][0]!r}", hint="check the SAS URL")
        container = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        return cls(container_url=container, token=parts.query, expires_at=expires, permissions=query.get("sp", [""])[0])

    @property
    def url(self) -> str:
        """The full URL, secret included: only for handing to storage, never for printing."""
        return f"{self.container_url}?{self.token}"

    @property
    def redacted_url(self) -> str:
        return redact(self.url)

    def lacks(self, letters: str) -> str:
        """The permission letters among ``letters`` that this SAS does not grant ('' when unknown)."""
        if not self.permissions:
            return ""
        return "".join(c for c in letters if c not in self.permissions)


def describe_missing(letters: str) -> str:
    return ", ".join(permission_name(c) for c in letters)


__all__ = ["ContainerSas", "SasSource", "StaticSasSource", "describe_missing", "is_loopback_host",
           "parse_sas_time", "REDACTED"]


class SasSource:
    """Where the core gets the SAS for a container, and asks for a new one.

    ``current()`` returns a SAS that is not about to expire (refreshing first when needed);
    ``refresh(stale)`` is called after storage answered 403 with ``stale``: it returns a newer SAS, or
    ``stale`` itself when no newer one can be had (a SAS URL given directly: ``renewable`` is False).
    Thread-safe.
    """

    renewable = True

    def current(self) -> ContainerSas:  # pragma: no cover - interface
        raise NotImplementedError

    def refresh(self, stale: ContainerSas) -> ContainerSas:  # pragma: no cover - interface
        raise NotImplementedError


class StaticSasSource(SasSource):
    """A SAS URL given directly: used as is, never refreshed."""

    renewable = False

    def __init__(self, sas: ContainerSas, *, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._sas = sas
        self._now = now

    def current(self) -> ContainerSas:
        if self._sas.expires_at is not None and self._sas.expires_at <= self._now():
            raise SasExpiredError(
                f"the SAS URL expired at {readable_utc(self._sas.expires_at)}; get a new one",
                hint="or use itwin:// or reality-data://, for which bucket-sync fetches and refreshes the SAS itself",
            )
        return self._sas

    def refresh(self, stale: ContainerSas) -> ContainerSas:
        return self._sas  # nothing newer to be had: the caller reports storage's 403
