"""How the watcher's SAS and access token are doing, for the metrics: refreshes, and seconds left.

Both are observed at their interfaces, never changed: :class:`ObservedSas` wraps a SasSource and
:class:`ObservedTokens` a TokenProvider, pass every call through, and note when the value they hand out
changes (a refresh) and when it expires. Only ``watch --metrics`` wraps them. Nothing here keeps or shows
a secret beyond comparing the current value with the previous one in memory.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from ..sas import ContainerSas, SasSource
from ..storage.container import ContainerRef
from .context import Globals

if TYPE_CHECKING:
    from ..platform.credentials import TokenProvider


class _Changes:
    """Counts how often an observed value was replaced by a new one (the first value is no refresh)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: str | None = None
        self.refreshes = 0

    def saw(self, value: str) -> None:
        if value is self._last:  # the common case, every request: the very same object
            return
        with self._lock:
            if value != self._last:
                if self._last is not None:
                    self.refreshes += 1
                self._last = value


class ObservedSas(SasSource):
    def __init__(self, inner: SasSource, access: str) -> None:
        self.inner = inner
        self.access = access  # "write" (signs writes and deletes) or "read" (a reality data's read access)
        self._changes = _Changes()
        self.expires_at: datetime | None = None
        self.seen = False

    def _note(self, sas: ContainerSas) -> ContainerSas:
        self._changes.saw(sas.token)
        self.expires_at = sas.expires_at
        self.seen = True
        return sas

    def current(self) -> ContainerSas:
        return self._note(self.inner.current())

    def refresh(self, stale: ContainerSas) -> ContainerSas:
        return self._note(self.inner.refresh(stale))

    @property
    def refreshes(self) -> int:
        return self._changes.refreshes


class ObservedTokens:
    """A TokenProvider that forwards to another and counts renewals (duck-typed: the platform layer is
    imported only when a token is needed)."""

    def __init__(self, inner: "TokenProvider") -> None:
        self.inner = inner
        self._changes = _Changes()
        self.used = False

    def token(self) -> str:
        value = self.inner.token()
        self._changes.saw(value)
        self.used = True
        return value

    def invalidate(self, token: str) -> None:
        self.inner.invalidate(token)

    def describe(self) -> str:
        return self.inner.describe()

    def cache_identity(self) -> str | None:
        return self.inner.cache_identity()

    @property
    def expires_at(self) -> datetime | None:
        return self.inner.expires_at

    @property
    def app_email(self) -> str | None:
        return self.inner.app_email

    @property
    def refreshes(self) -> int:
        return self._changes.refreshes


class CredentialWatch:
    """The observed SAS sources and token provider of one watch run."""

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self.sas: list[ObservedSas] = []
        self.tokens: ObservedTokens | None = None

    def container(self, ref: ContainerRef) -> ContainerRef:
        """``ref`` with its SAS sources observed."""
        source = ObservedSas(ref.source, "write")
        self.sas.append(source)
        reads = None
        if ref.reads is not None:
            reads = ObservedSas(ref.reads, "read")
            self.sas.append(reads)
        return dataclasses.replace(ref, source=source, reads=reads)

    def globals(self, g: Globals) -> Globals:
        """``g``, handing out observed credentials (when a target needs them at all)."""
        fields = {f.name: getattr(g, f.name) for f in dataclasses.fields(g)}
        return _ObservedGlobals(**fields, credential_watch=self)

    def observe_tokens(self, provider: "TokenProvider") -> ObservedTokens:
        if self.tokens is None or self.tokens.inner is not provider:
            self.tokens = ObservedTokens(provider)
        return self.tokens

    def seconds_left(self, expires_at: datetime | None) -> float | None:
        return None if expires_at is None else expires_at.timestamp() - self._now()


@dataclasses.dataclass(frozen=True)
class _ObservedGlobals(Globals):
    # Globals.sas_sources asks self.credentials() for the token provider: overriding it is the one seam
    # the app layer offers without changing context.py.
    credential_watch: CredentialWatch | None = None

    def credentials(self) -> TokenProvider:
        provider = super().credentials()
        if not self.credential_watch:
            return provider
        return self.credential_watch.observe_tokens(provider)  # type: ignore[return-value]  # a duck-typed TokenProvider


__all__ = ["CredentialWatch", "ObservedSas", "ObservedTokens"]
