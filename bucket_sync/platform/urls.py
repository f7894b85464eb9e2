"""Checking the API and IMS base URLs, apart from http.py so that choosing credentials (and a run that
finds its SAS in the cache) does not import httpx."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import UsageError
from ..sas import is_loopback_host


def require_secure_url(url: str, *, option: str) -> str:
    """``url`` without a trailing slash; https required unless the host is loopback (tests, emulators)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"{option} {url!r} is not an http(s) URL", hint=f"give {option} https://<host>")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise UsageError(
            f"refusing plain http:// for {option} {url!r}: tokens would travel unencrypted",
            hint="use https://; http:// is accepted only for 127.0.0.1/localhost",
        )
    return url.strip().rstrip("/")
